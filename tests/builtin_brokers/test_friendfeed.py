"""FriendFeed through the real sandbox and gateway against a local fake of its API v1
``POST /api/share`` (HTTP Basic with the remote key)."""

from __future__ import annotations

import pytest

from tests.builtin_brokers.cases import Broker, Failure, failure_id, run_failure
from tests.builtin_brokers.harness import BrokerRig, assert_succeeded

HOST = "friendfeed.test"
EGRESS = [HOST, "down.test"]
COMMITS_URL = "https://brokerage.example/marcus/project-x/commits/"


def service(rig: BrokerRig, **overrides: str) -> dict[str, str]:
    return {"Nickname": "marcus", "Remote Key": "remote-key", "API URL": rig.url(HOST, "/api"),
            **overrides}  # fmt: skip


def test_one_commit_is_one_entry_with_the_message_as_first_comment(rig: BrokerRig) -> None:
    result = assert_succeeded(rig.run("friendfeed", "1_commit", service(rig), EGRESS))
    (entry,) = rig.fake(HOST).entries
    assert entry["title"] == "Project X - marcus"
    assert entry["link"] == COMMITS_URL + "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
    assert entry["comments"] == [{"body": "Added some more things to somefile.py"}]
    assert result["entries"] == [entry["id"]]


def test_three_commits_are_three_entries(rig: BrokerRig) -> None:
    fmt = "${repository.name}: ${commit.message} ${commit.tinyurl}"
    run = rig.run("friendfeed", "3_commits", service(rig, Format=fmt), EGRESS)
    assert assert_succeeded(run)["message"] == "shared 3 entries"
    entries = rig.fake(HOST).entries
    assert [e["title"].rsplit(" ", 1)[0] for e in entries] == [
        "Project X: Added some more things to somefile.py",
        "Project X: Fixed the frobnicator",
        "Project X: Unicode: naïve café ☕",
    ]
    assert entries[1]["comments"] == [{"body": "Fixed the frobnicator\n\nIt was broken since 1.0."}]


BROKER = Broker("friendfeed", HOST, service, "entries")
FAILURES = [
    Failure("wrong-key", "configuration", "refused the Nickname and Remote Key (401)",
            {"Remote Key": "wrong"}),
    Failure("wrong-nickname", "configuration", "refused the Nickname and Remote Key (401)",
            {"Nickname": "someone"}),
    Failure("no-key", "configuration", "Nickname and Remote Key: both are required",
            {"Remote Key": ""}),
    Failure("wrong-api-url", "configuration", "answered 404", {"API URL": "{url}/v2"}),
    Failure("friendfeed-failing", "transient", "answered 500", status=500),
    Failure("friendfeed-unreachable", "transient", "502", {"API URL": "{dead}/api"}),
]  # fmt: skip


@pytest.mark.parametrize("case", FAILURES, ids=failure_id)
def test_failures(rig: BrokerRig, case: Failure) -> None:
    run_failure(rig, BROKER, case)
