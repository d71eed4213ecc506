"""Lighthouse through the real sandbox and gateway against a local fake of its changesets
API (``POST /projects/{id}/changesets.xml`` with ``X-LighthouseToken``)."""

from __future__ import annotations

import pytest

from tests.builtin_brokers.cases import Broker, Failure, failure_id, run_failure
from tests.builtin_brokers.harness import BrokerRig, assert_failed, assert_succeeded

HOST = "lighthouse.test"
EGRESS = [HOST, "down.test"]


def service(rig: BrokerRig, **overrides: str) -> dict[str, str]:
    return {"Project ID": "1234", "API Key": "lh-token", "Subdomain": rig.url(HOST), **overrides}


def test_one_commit_is_one_changeset(rig: BrokerRig) -> None:
    result = assert_succeeded(rig.run("lighthouse", "1_commit", service(rig), EGRESS))
    (changeset,) = rig.fake(HOST).changesets
    assert changeset["title"] == "marcus committed changeset [a1b2c3d4e5f6]"
    assert changeset["revision"] == "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
    assert changeset["body"] == "Added some more things to somefile.py [#42]"
    assert changeset["changes"] == [["M", "somefile.py"]]
    assert changeset["changed-at"] == "2012-05-30T03:50:56Z"
    assert result["recorded"] == ["a1b2c3d4e5f6"]
    assert rig.requests[0].headers["accept"] == "application/xml"


def test_three_commits_are_three_changesets(rig: BrokerRig) -> None:
    assert_succeeded(rig.run("lighthouse", "3_commits", service(rig), EGRESS))
    changesets = rig.fake(HOST).changesets
    assert [c["changes"] for c in changesets] == [
        [["M", "somefile.py"]], [["M", "src/frob.py"], ["A", "docs/frob.md"]], [["D", "old.txt"]],
    ]  # fmt: skip
    assert changesets[1]["body"].startswith("Fixed the frobnicator [#7 state:resolved]")
    assert changesets[2]["body"] == "Unicode: naïve café ☕"


def test_a_retry_counts_revisions_lighthouse_has(rig: BrokerRig) -> None:
    assert_succeeded(rig.run("lighthouse", "3_commits", service(rig), EGRESS))
    again = assert_succeeded(rig.run("lighthouse", "3_commits", service(rig), EGRESS))
    assert len(rig.fake(HOST).changesets) == 3
    assert again["message"] == "recorded 0 changeset(s), 3 already recorded"


def test_project_id_may_carry_the_slug(rig: BrokerRig) -> None:
    run = rig.run("lighthouse", "1_commit", service(rig, **{"Project ID": "1234-x"}), EGRESS)
    assert_succeeded(run)


BROKER = Broker("lighthouse", HOST, service, "changesets")
FAILURES = [
    Failure("wrong-key", "configuration", "refused the API Key (401)", {"API Key": "wrong"}),
    Failure("no-key", "configuration", "API Key: required", {"API Key": ""}),
    Failure("no-such-project", "configuration", "no project at", {"Project ID": "99"}),
    Failure("project-not-a-number", "configuration", "Project ID:",
            {"Project ID": "yourproject"}),
    Failure("subdomain-not-a-name", "configuration", "Subdomain:", {"Subdomain": "not a name"}),
    Failure("lighthouse-failing", "transient", "answered 502", status=502),
    Failure("lighthouse-unreachable", "transient", settings={"Subdomain": "{dead}"}),
]  # fmt: skip


@pytest.mark.parametrize("case", FAILURES, ids=failure_id)
def test_failures(rig: BrokerRig, case: Failure) -> None:
    run_failure(rig, BROKER, case)


def test_the_real_manifest_reaches_only_lighthouseapp(rig: BrokerRig) -> None:
    result = rig.run("lighthouse", "1_commit", service(rig), egress=None)
    assert_failed(result, "configuration", "host_not_allowed")
    assert rig.requests == []


def test_markup_in_messages_and_paths_arrives_intact(rig: BrokerRig) -> None:
    assert_succeeded(rig.run("lighthouse", "markup", service(rig), EGRESS))
    (changeset,) = rig.fake(HOST).changesets
    assert changeset["title"] == "o'brien & co committed changeset [a1b2c3d4e5f6]"
    assert changeset["body"] == (
        "Escape <b>this</b> & \"that\" 'too'  ]]> done\n\nSecond line & more <tags>"
    )  # the control character XML 1.0 cannot carry is dropped
    assert changeset["changes"] == [["A", "dir/a&b <c>.txt"]]


def test_a_retry_after_lighthouse_was_down_records_everything(rig: BrokerRig) -> None:
    rig.fail_with(503)
    assert_failed(rig.run("lighthouse", "3_commits", service(rig), EGRESS), "transient")
    rig.fail_with(None)
    again = rig.run("lighthouse", "3_commits", service(rig), EGRESS, attempt=2)
    assert assert_succeeded(again)["recorded"] == ["a1b2c3d4e5f6", "b2c3d4e5f607", "c3d4e5f60718"]
