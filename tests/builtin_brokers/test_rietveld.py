"""Rietveld through the real sandbox and gateway against a local fake of upload.py's
protocol: ClientLogin, ``/_ah/login`` for the session cookie, multipart ``/upload``."""

from __future__ import annotations

import pytest

from tests.builtin_brokers.cases import Broker, Failure, failure_id, run_failure
from tests.builtin_brokers.fixtures import fixture
from tests.builtin_brokers.harness import BrokerRig, assert_failed, assert_succeeded

HOST = "rietveld.test"
EGRESS = [HOST, "down.test"]


def service(rig: BrokerRig, **overrides: str) -> dict[str, str]:
    return {"Email": "marcus@somedomain.com", "Password": "secret", "URL": rig.url(HOST, "/"),
            "Auth URL": rig.url(HOST, "/accounts/ClientLogin"), **overrides}  # fmt: skip


def test_one_commit_is_one_issue_with_its_patch(rig: BrokerRig) -> None:
    result = assert_succeeded(rig.run("rietveld", "1_commit", service(rig), EGRESS))
    (issue,) = rig.fake(HOST).issues
    raw_node = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
    assert issue["subject"] == "Added some more things to somefile.py"
    assert issue["data"] == fixture("rietveld", "1_commit")["patches"][raw_node]
    assert issue["user"] == "marcus@somedomain.com"
    assert issue["description"].endswith(f"marcus master {issue['base']}")
    assert result["issues"] == [rig.url(HOST, "/1")]
    login, app_login, upload = rig.requests
    assert (login.method, login.route, app_login.route, upload.route) == (
        "POST",
        "/accounts/ClientLogin",
        "/_ah/login",
        "/upload",
    )
    assert login.form["service"] == "ah" and login.form["Email"] == "marcus@somedomain.com"


def test_three_commits_are_three_issues(rig: BrokerRig) -> None:
    result = assert_succeeded(rig.run("rietveld", "3_commits", service(rig), EGRESS))
    issues = rig.fake(HOST).issues
    assert [i["subject"] for i in issues] == [
        "Added some more things to somefile.py",
        "Fixed the frobnicator",
        "Unicode: naïve café ☕",
    ]
    assert "-naïve café ☕" in issues[2]["data"]
    assert result["message"] == "uploaded 3 issue(s)"
    assert sum(r.route == "/accounts/ClientLogin" for r in rig.requests) == 1


def test_changesets_without_a_patch_are_skipped(rig: BrokerRig) -> None:
    run = rig.run("rietveld", "3_commits_one_without_patch", service(rig), EGRESS)
    assert "1 changeset(s) without a patch" in assert_succeeded(run)["message"]
    assert len(rig.fake(HOST).issues) == 2
    rig.requests.clear()
    nothing = assert_succeeded(rig.run("rietveld", "no_patches", service(rig), EGRESS))
    assert nothing["issues"] == [] and rig.requests == []  # not even a login


BROKER = Broker("rietveld", HOST, service, "issues")
FAILURES = [
    Failure("wrong-password", "configuration",
            "the login refused the Email and Password (BadAuthentication)", {"Password": "wrong"}),
    Failure("wrong-email", "configuration", "the login refused the Email and Password",
            {"Email": "someone@example.org"}),
    Failure("no-password", "configuration", "Email and Password: both are required",
            {"Password": ""}),
    Failure("url-without-scheme", "configuration", "URL:", {"URL": "rietveld.test"}),
    Failure("wrong-auth-path", "configuration", "answered 404",
            {"Auth URL": "{url}/ClientLogin"}),
    Failure("rietveld-failing", "transient", "answered 500", status=500),
    Failure("rietveld-unreachable", "transient", "502", {"URL": "{dead}/", "Auth URL": "{dead}/a"}),
]  # fmt: skip


@pytest.mark.parametrize("case", FAILURES, ids=failure_id)
def test_failures(rig: BrokerRig, case: Failure) -> None:
    run_failure(rig, BROKER, case)


def test_a_site_that_refuses_the_token_is_a_configuration_error(rig: BrokerRig) -> None:
    rig.fake(HOST).site_token = "ANOTHER-TOKEN"
    result = rig.run("rietveld", "1_commit", service(rig), EGRESS)
    assert_failed(result, "configuration", "did not accept the login")
