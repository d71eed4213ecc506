"""FogBugz through the real sandbox and gateway against a local fake of ``cvsSubmit.asp``."""

from __future__ import annotations

import pytest

from tests.builtin_brokers.cases import Broker, Failure, failure_id, run_failure
from tests.builtin_brokers.harness import BrokerRig, assert_succeeded, broker_module

HOST = "fogbugz.test"
EGRESS = [HOST, "down.test"]
fogbugz = broker_module("fogbugz")


@pytest.mark.parametrize(("message", "cases"), [
    ("Fix the frobnicator\n\nBugzID: 42\n", [42]),
    ("BugzIDs: 7, 8 and more", [7, 8]),
    ("bugzid:12 bugzid #13, 14", [12, 13, 14]),
    ("Case 99: crash on start", [99]),
    ("see cases 5 6", [5, 6]),
    ("no case here; 42 bugs fixed", []),
    ("BugzID: 3 ... BugzID: 3", [3]),
])  # fmt: skip
def test_case_numbers(message: str, cases: list[int]) -> None:
    assert fogbugz.case_numbers(message) == cases


def service(rig: BrokerRig, **overrides: str) -> dict[str, str]:
    return {"Repository ID": "3", "CVSSubmit URL": rig.url(HOST, "/cvsSubmit.asp"), **overrides}


def test_one_commit_one_case_one_file(rig: BrokerRig) -> None:
    result = assert_succeeded(rig.run("fogbugz", "1_commit", service(rig), EGRESS))
    assert rig.fake(HOST).checkins == [{
        "ixBug": "42", "sFile": "somefile.py", "sPrev": "702c70160afc",
        "sNew": "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678", "ixRepository": "3",
    }]  # fmt: skip
    assert rig.requests[0].method == "GET"
    assert result["cases"] == [42]


def test_three_commits_every_case_times_every_file(rig: BrokerRig) -> None:
    result = assert_succeeded(rig.run("fogbugz", "3_commits", service(rig), EGRESS))
    got = [(c["ixBug"], c["sFile"], c["sPrev"]) for c in rig.fake(HOST).checkins]
    assert got == [
        ("42", "somefile.py", "702c70160afc"),
        ("7", "src/frob.py", "a1b2c3d4e5f6"), ("7", "docs/frob.md", "a1b2c3d4e5f6"),
        ("8", "src/frob.py", "a1b2c3d4e5f6"), ("8", "docs/frob.md", "a1b2c3d4e5f6"),
    ]  # fmt: skip
    assert result["message"] == "5 check-in(s) on case(s) 7, 8, 42"


BROKER = Broker("fogbugz", HOST, service, "checkins")
FAILURES = [
    Failure("unknown-repository", "configuration", "FogBugz refused the check-in (400",
            {"Repository ID": "4"}),
    Failure("repository-not-a-number", "configuration", "Repository ID:",
            {"Repository ID": "three"}),
    Failure("url-without-scheme", "configuration", "CVSSubmit URL:",
            {"CVSSubmit URL": "fogbugz.test/cvsSubmit.asp"}),
    Failure("wrong-page", "configuration", "answered 404", {"CVSSubmit URL": "{url}/wrong.asp"}),
    Failure("fogbugz-failing", "transient", "answered 500", status=500),
    Failure("fogbugz-unreachable", "transient", "502", {"CVSSubmit URL": "{dead}/cvsSubmit.asp"}),
]  # fmt: skip


@pytest.mark.parametrize("case", FAILURES, ids=failure_id)
def test_failures(rig: BrokerRig, case: Failure) -> None:
    run_failure(rig, BROKER, case)
