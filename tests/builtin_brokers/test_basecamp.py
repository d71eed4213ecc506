"""Basecamp through the real sandbox and gateway against a local fake of Basecamp Classic's
``POST /posts/{id}/comments.xml`` (HTTP Basic)."""

from __future__ import annotations

import pytest

from tests.builtin_brokers.cases import Broker, Failure, failure_id, run_failure
from tests.builtin_brokers.harness import BrokerRig, assert_succeeded

HOST = "basecamp.test"
EGRESS = [HOST, "down.test"]
COMMITS_URL = "https://brokerage.example/marcus/project-x/commits/"


def service(rig: BrokerRig, **overrides: str) -> dict[str, str]:
    return {"Username": "marcus", "Password": "secret",
            "Discussion URL": rig.url(HOST, "/projects/1234/posts/5678"), **overrides}  # fmt: skip


def test_one_commit_is_one_comment(rig: BrokerRig) -> None:
    result = assert_succeeded(rig.run("basecamp", "1_commit", service(rig), EGRESS))
    assert rig.fake(HOST).comments == [
        "marcus pushed 1 changeset(s) to Project X:\n"
        "* a1b2c3d4e5f6 marcus: Added some more things to somefile.py "
        f"{COMMITS_URL}a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
    ]
    assert result["comment"] == "/comments/1"


def test_three_commits_are_listed_in_one_comment(rig: BrokerRig) -> None:
    url = service(rig)["Discussion URL"] + "/comments"
    run = rig.run("basecamp", "3_commits", service(rig, **{"Discussion URL": url}), EGRESS)
    assert_succeeded(run)
    (comment,) = rig.fake(HOST).comments
    lines = comment.splitlines()
    assert lines[0] == "marcus pushed 3 changeset(s) to Project X:"
    assert [line.split(" ")[1] for line in lines[1:]] == [
        "a1b2c3d4e5f6",
        "b2c3d4e5f607",
        "c3d4e5f60718",
    ]
    assert "anna: Fixed the frobnicator" in lines[2] and "naïve café ☕" in lines[3]


BROKER = Broker("basecamp", HOST, service, "comments")
FAILURES = [
    Failure("wrong-password", "configuration", "refused the Username and Password (401)",
            {"Password": "wrong"}),
    Failure("wrong-username", "configuration", "refused the Username and Password (401)",
            {"Username": "nobody"}),
    Failure("no-password", "configuration", "Username and Password: both are required",
            {"Password": ""}),
    Failure("no-such-post", "configuration", "answered 404",
            {"Discussion URL": "{url}/projects/1234/posts/1"}),
    Failure("not-a-post-url", "configuration", "Discussion URL:",
            {"Discussion URL": "{url}/projects/1234"}),
    Failure("basecamp-failing", "transient", "answered 503", status=503),
    Failure("basecamp-unreachable", "transient", "502",
            {"Discussion URL": "{dead}/projects/1/posts/5678"}),
]  # fmt: skip


@pytest.mark.parametrize("case", FAILURES, ids=failure_id)
def test_failures(rig: BrokerRig, case: Failure) -> None:
    run_failure(rig, BROKER, case)


def test_markup_in_messages_arrives_intact(rig: BrokerRig) -> None:
    assert_succeeded(rig.run("basecamp", "markup", service(rig), EGRESS))
    (comment,) = rig.fake(HOST).comments
    assert "* a1b2c3d4e5f6 o'brien & co: Escape <b>this</b> & \"that\" 'too'  ]]> done " in comment
