"""Jenkins and Bamboo through the real sandbox and gateway to local fakes of their APIs:
one line per case. Both manifests say "*" (the admin supplies the server's URL); the
URL fields name the host to the gateway the way the dispatcher does, so the test
server on 127.0.0.1 is reachable with the real manifests."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.builtin_brokers.fakes.modern import BambooFake, JenkinsFake, UnavailableFake
from tests.builtin_brokers.fakes.wire import Fake, Request
from tests.builtin_brokers.harness import BrokerRig

JENKINS = "ci.example.test"
BAMBOO = "bamboo.example.test"
BUILD_TOKEN = "s3cret-build-token"
SECRETS = ("s3cret", "api-t0ken")


@dataclass
class Case:
    broker: str
    variant: str
    service: dict[str, str]  # "{fake}" / "{down}" in a value: the server's base URL
    fake: Callable[[], Fake]
    outcome: str = "succeeded"  # or "skipped" (nothing triggered), or the error kind
    message: str = ""
    sent: int = 1
    check: Callable[[list[Request]], None] | None = None
    id: str = ""


def jenkins(endpoint: str = "{fake}", project: str = "project-x", token: str = BUILD_TOKEN,
            module: str = "") -> dict[str, str]:  # fmt: skip
    return {"Endpoint": endpoint, "Project Name": project, "Token": token, "Module name": module}


def bamboo(plan: str = "PROJ-PLAN", user: str = "builder", password: str = "s3cret-pass",
           url: str = "{fake}") -> dict[str, str]:  # fmt: skip
    return {"URL": url, "Plan Key": plan, "Username": user, "Password": password}


def query(request: Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(request.path).query).items()}


def crumb_then_build(requests: list[Request]) -> None:
    crumb, build = requests
    assert (crumb.method, urlsplit(crumb.path).path) == ("GET", "/crumbIssuer/api/json")
    assert (build.method, urlsplit(build.path).path) == ("POST", "/job/project-x/build")
    assert build.headers["jenkins-crumb"]
    assert "JSESSIONID" in build.headers["cookie"]  # the crumb's session
    assert query(build)["token"] == BUILD_TOKEN
    assert query(build)["cause"].startswith("Push of ")


def with_parameters(requests: list[Request]) -> None:
    paths = [urlsplit(r.path).path for r in requests]
    assert paths[1:] == ["/job/project-x/build", "/job/project-x/buildWithParameters"]
    assert query(requests[2])["token"] == BUILD_TOKEN
    assert requests[2].headers["jenkins-crumb"]


def no_crumb(requests: list[Request]) -> None:
    assert "jenkins-crumb" not in requests[-1].headers
    assert urlsplit(requests[-1].path).path.endswith("/build")


def basic_as(user: str) -> Callable[[list[Request]], None]:
    def check(requests: list[Request]) -> None:
        for request in requests:
            scheme, _, encoded = request.headers["authorization"].partition(" ")
            assert scheme == "Basic"
            assert base64.b64decode(encoded).decode().split(":")[0] == user

    return check


def queued(key: str) -> Callable[[list[Request]], None]:
    def check(requests: list[Request]) -> None:
        (request,) = requests
        assert (request.method, urlsplit(request.path).path) == (
            "POST", f"/rest/api/latest/queue/{key}")  # fmt: skip
        assert query(request) == {"os_authType": "basic"}

    return check


CASES = [
    Case("jenkins", "1_commit", jenkins(), JenkinsFake, sent=2, check=crumb_then_build,
         id="jenkins-1-with-crumb"),
    Case("jenkins", "3_commits", jenkins(), JenkinsFake, sent=2, check=crumb_then_build,
         id="jenkins-3-with-crumb"),
    Case("jenkins", "3_commits", jenkins(module="server"), JenkinsFake, sent=2,
         id="jenkins-module-changed"),
    Case("jenkins", "3_commits", jenkins(module="/server/api/"), JenkinsFake, sent=2,
         id="jenkins-module-slashes"),
    Case("jenkins", "3_commits", jenkins(module="serv"), JenkinsFake, "skipped", sent=0,
         id="jenkins-module-prefix-is-not-a-directory"),
    Case("jenkins", "1_commit", jenkins(module="mobile"), JenkinsFake, "skipped", sent=0,
         id="jenkins-module-untouched"),
    Case("jenkins", "1_commit", jenkins(), lambda: JenkinsFake(csrf=False), sent=2,
         check=no_crumb, id="jenkins-csrf-off"),
    Case("jenkins", "1_commit", jenkins("{auth}", token=""),
         lambda: JenkinsFake(anonymous_read=False), sent=2, check=basic_as("ci"),
         id="jenkins-user-api-token"),
    Case("jenkins", "1_commit", jenkins(project="folder/project-x"),
         lambda: JenkinsFake(job="/job/folder/job/project-x"), sent=2, id="jenkins-folder-job"),
    Case("jenkins", "1_commit", jenkins(), lambda: JenkinsFake(parameterized=True), sent=3,
         check=with_parameters, id="jenkins-parameterized-job"),
    Case("jenkins", "1_commit", jenkins(), lambda: JenkinsFake(disabled=True), "configuration",
         "is disabled", sent=2, id="jenkins-disabled-job"),
    Case("jenkins", "1_commit", jenkins(token="wrong"), JenkinsFake, "configuration",
         "check the Token", sent=2, id="jenkins-bad-token"),
    Case("jenkins", "1_commit", jenkins("{badauth}", token=""), JenkinsFake, "configuration",
         "Jenkins refused to build /job/project-x (401)", sent=2, id="jenkins-bad-password"),
    Case("jenkins", "1_commit", jenkins(), lambda: JenkinsFake(anonymous_read=False),
         "configuration", "CSRF crumb", sent=2, id="jenkins-crumb-refused"),
    Case("jenkins", "1_commit", jenkins(project="nope"), JenkinsFake, "configuration",
         "Project Name: Jenkins has no job at /job/nope", sent=2, id="jenkins-no-such-job"),
    Case("jenkins", "1_commit", jenkins(project=""), JenkinsFake, "configuration",
         "Project Name: required", sent=0, id="jenkins-no-project"),
    Case("jenkins", "1_commit", jenkins("{down}"), JenkinsFake, "transient", "answered 502",
         sent=0, id="jenkins-down"),
    Case("jenkins", "1_commit", jenkins(), UnavailableFake, "transient", "answered 503",
         id="jenkins-503"),
    Case("bamboo", "1_commit", bamboo(), BambooFake, check=queued("PROJ-PLAN"), id="bamboo-1"),
    Case("bamboo", "3_commits", bamboo(), BambooFake, check=basic_as("builder"), id="bamboo-3"),
    Case("bamboo", "1_commit", bamboo(plan=" proj-plan "), BambooFake,
         check=queued("PROJ-PLAN"), id="bamboo-key-normalised"),
    Case("bamboo", "1_commit", bamboo(password="wrong"), BambooFake, "configuration",
         "Username or Password: Bamboo refused the credentials", id="bamboo-bad-password"),
    Case("bamboo", "1_commit", bamboo(plan="PROJ-NONE"), BambooFake, "configuration",
         "Plan Key: Bamboo has no such plan", id="bamboo-no-such-plan"),
    Case("bamboo", "1_commit", bamboo(plan="PROJ-OFF"), BambooFake, "configuration",
         "PROJ-OFF is disabled", id="bamboo-plan-disabled"),
    Case("bamboo", "1_commit", bamboo(plan="my plan"), BambooFake, "configuration",
         "is not a Bamboo plan key", sent=0, id="bamboo-malformed-key"),
    Case("bamboo", "1_commit", bamboo(password=""), BambooFake, "configuration",
         "both required", sent=0, id="bamboo-no-password"),
    Case("bamboo", "1_commit", bamboo(url="{down}"), BambooFake, "transient", "answered 502",
         sent=0, id="bamboo-down"),
    Case("bamboo", "1_commit", bamboo(), UnavailableFake, "transient", "answered 503",
         id="bamboo-503"),
]  # fmt: skip


def fill(case: Case, rig: BrokerRig) -> dict[str, str]:
    host = JENKINS if case.broker == "jenkins" else BAMBOO
    values = {
        "{fake}": rig.url(host, ""),
        "{down}": rig.url(host, "", port=rig.dead_port),
        "{auth}": rig.url(host, "", userinfo="ci:api-t0ken@"),
        "{badauth}": rig.url(host, "", userinfo="ci:s3cret-wrong@"),
    }
    return {k: values.get(v, v) for k, v in case.service.items()}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_ci_broker(rig: BrokerRig, case: Case) -> None:
    result = rig.dispatch(case.broker, case.variant, fill(case, rig), case.fake())
    requests = rig.requests
    assert len(requests) == case.sent, (result.error, result.requests)
    if case.outcome in ("succeeded", "skipped"):
        assert result.status == "succeeded", result.error
        assert result.result is not None
        if case.broker == "jenkins":
            assert result.result["triggered"] is (case.outcome == "succeeded")
            if case.outcome == "succeeded":
                assert result.result["queue_item"].startswith("http://ci.example.test/queue/item/")
        else:
            assert result.result["build_result_key"].startswith("PROJ-PLAN-")
        if case.check:
            case.check(requests)
    else:
        assert result.status == "failed", result
        assert result.error and result.error["kind"] == case.outcome, result.error
        assert case.message in result.error["message"]
        assert not any(secret in json.dumps(result.error) for secret in SECRETS)
