"""What verification gives a broker besides the recording receiver: a real SMTP server for
its mail and a stand-in for the platform API (the repository's issue tracker) that answers
as the platform would, records each call and refuses what the manifest does not permit.
The stand-ins are tested directly for speed; the built-in and vendor brokers run in the
real Docker sandbox through the real gateway."""

from __future__ import annotations

import json
import shutil
import smtplib
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from brokerage.sandbox.egress.relay import ApiCall
from brokerage.sandbox.interface import RunResult, RunStatus
from brokerage.submissions.builtins import BUILTIN_DIR
from brokerage.submissions.dynamic import run_fixtures
from brokerage.submissions.package import Package, read_package
from brokerage.submissions.standins import ApiStandIn, MailRecorder, StandInTracker
from brokerage.submissions.verification import verify_package
from tests.submissions.conftest import (
    FIXTURE,
    MANIFEST,
    docker_factory,
    fake_factory,
    package_files,
)

REPO = {"owner": "marcus", "slug": "project-x"}
BASE = "/1.0/repositories/marcus/project-x/issues"


def call(
    method: str,
    path: str,
    document: dict[str, Any] | None = None,
    permissions: tuple[str, ...] = ("issues:write",),
    delivery: str = "d-1",
) -> ApiCall:
    body = json.dumps(document).encode() if document is not None else b""
    headers = {"content-type": "application/json"} if document is not None else {}
    return ApiCall(method, path, headers, body, delivery, "acme-hook", "1.0.0", permissions)


def answer(api: ApiStandIn, *args: Any, **kwargs: Any) -> tuple[int, Any]:
    reply = api(call(*args, **kwargs))
    return reply.status, json.loads(reply.body)


@pytest.fixture
def api() -> ApiStandIn:
    standin = ApiStandIn()
    tracker = StandInTracker.from_fixture(
        REPO, [{"id": 1, "title": "Crash"}, {"id": 4, "title": "Typo", "status": "open"}]
    )
    standin.begin("d-1", tracker)
    return standin


def test_the_tracker_answers_as_the_platform_would(api: ApiStandIn) -> None:
    status, listed = answer(api, "GET", BASE)
    assert status == 200 and [(i["id"], i["status"]) for i in listed["issues"]] == [
        (1, "new"), (4, "open")]  # fmt: skip
    assert answer(api, "GET", f"{BASE}?status=open")[1]["count"] == 1
    changeset = {"command": "resolve", "raw_node": "ab" * 20, "node": "abababababab",
                 "author": "marcus", "message": "fixes #1", "branch": "main"}  # fmt: skip
    status, applied = answer(api, "POST", f"{BASE}/1/changesets", changeset)
    assert status == 201 and applied["applied"] and applied["issue"]["status"] == "resolved"
    status, again = answer(api, "POST", f"{BASE}/1/changesets", changeset)
    assert status == 200 and not again["applied"]
    assert answer(api, "POST", f"{BASE}/9/changesets", changeset)[0] == 404
    assert answer(api, "POST", f"{BASE}/1/changesets", {**changeset, "command": "eat"})[0] == 400
    status, comment = answer(api, "POST", f"{BASE}/4/comments", {"content": "Seen"})
    assert status == 201 and comment["author"] == "acme-hook (broker)"
    status, shown = answer(api, "GET", f"{BASE}/1")
    assert shown["comments"][0]["content"].startswith("Changeset abababababab on branch main")
    status, made = answer(api, "POST", BASE, {"title": "New one"})
    assert status == 201 and made["id"] == 5 and made["reporter"] == "acme-hook (broker)"
    calls, tracker = api.end("d-1")
    assert tracker is not None and tracker.statuses() == {"1": "resolved", "4": "open", "5": "new"}
    assert [(c["method"], c["status"], c["refused"]) for c in calls] == [
        ("GET", 200, None), ("GET", 200, None), ("POST", 201, None), ("POST", 200, None),
        ("POST", 404, None), ("POST", 400, None), ("POST", 201, None), ("GET", 200, None),
        ("POST", 201, None)]  # fmt: skip


def test_what_the_manifest_does_not_permit_is_refused(api: ApiStandIn) -> None:
    read_only = ("issues:read",)
    assert answer(api, "GET", f"{BASE}/1", permissions=read_only)[0] == 200
    status, refused = answer(api, "POST", f"{BASE}/1/comments", {"content": "x"}, read_only)
    assert status == 403 and "issues:write" in refused["error"]["message"]
    assert answer(api, "GET", f"{BASE}/1", permissions=("repository:read",))[0] == 403
    other = "/1.0/repositories/eve/open/issues"
    assert answer(api, "GET", other)[0] == 404
    assert answer(api, "GET", "/1.0/repositories/marcus/project-x/services")[0] == 403
    assert answer(api, "DELETE", f"{BASE}/1")[0] == 403
    assert answer(api, "GET", BASE, delivery="not-running")[0] == 401
    calls, tracker = api.end("d-1")
    assert [(c["status"], c["refused"], c["permission"]) for c in calls] == [
        (200, None, "issues:read"), (403, "permission", "issues:write"),
        (403, "permission", "issues:read"), (404, "repository", "issues:read"),
        (403, "endpoint", None), (403, "endpoint", None)]  # fmt: skip
    assert tracker is not None and tracker.issues[1]["comments"] == []


def test_the_mail_recorder_files_mail_by_delivery() -> None:
    recorder = MailRecorder()
    try:
        assert recorder.port > 0
        for delivery in ("d-1", "d-2"):
            message = EmailMessage()
            message["From"], message["To"] = "commits-noreply@brokerage.test", "dev@example.org"
            message["Subject"], message["X-Brokerage-Delivery"] = f"for {delivery}", delivery
            message.set_content("hello")
            with smtplib.SMTP("127.0.0.1", recorder.port, timeout=10) as smtp:
                smtp.send_message(message)
        [mail] = recorder.take("d-2")
        assert (mail["subject"], mail["to"], mail["body"]) == (
            "for d-2", ["dev@example.org"], "hello\n")  # fmt: skip
        assert recorder.take("d-2") == [] and len(recorder.take("d-1")) == 1
    finally:
        recorder.close()


def _package(
    fixtures: dict[str, dict[str, Any]], code: str | None = None, **manifest: Any
) -> Package:
    files = package_files(
        code=code or "x = 1\n",
        extra={f"fixtures/push__{k}.json": json.dumps(v).encode() for k, v in fixtures.items()},
        **manifest,
    )
    del files["fixtures/push__one_commit.json"]
    return Package(files, json.loads(files["manifest.json"]))


def test_expectations_on_mails_calls_and_issues_and_bad_fixtures() -> None:
    def handler(bundle, envelope, limits):
        return RunResult(RunStatus.SUCCEEDED, requests=[{"method": "POST", "url": "http://x/"}])

    pkg = _package({
        "counts": {**FIXTURE, "expect": {"mails": 1, "api_calls": 0, "issues": {"1": "resolved"}},
                   "tracker": [{"id": 1, "title": "one"}]},
        "bad_tracker": {**FIXTURE, "tracker": [{"title": "no id"}]},
        "bad_count": {**FIXTURE, "expect": {"mails": "one"}},
    })  # fmt: skip
    runs = {r.variant: r for r in run_fixtures(pkg, MANIFEST, fake_factory(handler))[0]}
    assert runs["counts"].problems == [
        "attempted x, which the manifest's egress does not declare",
        "sent 0 mail(s), expected 1",
        "issue #1 ended new, expected resolved",
    ]
    assert runs["counts"].issues == {"1": "new"}
    assert runs["bad_tracker"].problems == [
        'fixture is not usable: each tracker issue needs an integer "id"'
    ]
    assert runs["bad_count"].problems == [
        "fixture is not usable: 'expect.mails' must be a whole number"
    ]


# -- the real sandbox --------------------------------------------------------------------------


def test_the_issues_broker_changes_the_fixture_s_tracker(tmp_path: Path) -> None:
    folder = shutil.copytree(BUILTIN_DIR / "issues", tmp_path / "issues")
    fixture_path = folder / "fixtures" / "push__seed_examples.json"
    fixture = json.loads(fixture_path.read_text())
    fixture["tracker"] = [{"id": n, "title": f"Issue {n}", "status": "new"} for n in range(1, 6)]
    fixture["expect"] = {"api_calls": 5, "issues": {"1": "resolved", "2": "open", "3": "new"}}
    fixture_path.write_text(json.dumps(fixture))
    pkg = read_package(folder)
    runs = {r.variant: r for r in run_fixtures(pkg, pkg.manifest, docker_factory())[0]}
    run = runs["seed_examples"]
    assert run.passed, run.problems
    assert run.issues == {"1": "resolved", "2": "open", "3": "new", "4": "new", "5": "new"}
    assert run.result["applied"] and len(run.result["applied"]) == 5
    assert [c["status"] for c in run.api_calls] == [201] * 5


MAILING = """from brokerage_sdk import BaseBroker, send_mail


class HookBroker(BaseBroker):
    def handle(self, payload):
        answer = send_mail(self.get_local("Email"), "%d commit(s)" % len(payload["commits"]),
                           "pushed by " + payload["user"])
        return {"message": "mailed", "to": answer["to"]}
"""

COMMENTING = """from brokerage_sdk import BaseBroker, RepositoryApi


class HookBroker(BaseBroker):
    def handle(self, payload):
        api = RepositoryApi(payload)
        open_issues = api.issues()
        api.comment(1, "pushed by " + payload["user"])
        return {"message": "commented", "seen": len(open_issues)}
"""

EMAIL_FIELD = [{"label": "Email", "type": "email", "required": True}]


def test_a_vendor_broker_that_mails_passes_verification() -> None:
    fixture = {**FIXTURE, "service": {"Email": "dev@example.org"}, "expect": {"mails": 1}}
    pkg = _package({"mail": fixture}, MAILING, fields=EMAIL_FIELD, egress=[])
    outcome = verify_package(pkg, docker_factory())
    assert outcome.passed, [c.as_dict() for c in outcome.checks]
    [run] = outcome.runs
    [mail] = run.mails
    assert mail["to"] == ["dev@example.org"] and mail["subject"] == "1 commit(s)"
    assert mail["from"] == "commits-noreply@brokerage.test"
    assert mail["body"].strip() == "pushed by marcus" and mail["broker"] == "acme-hook 1.0.0"
    assert "1 mail(s) sent" in outcome.checks[-1].summary


@pytest.mark.parametrize(
    ("permissions", "problem"),
    [
        (["issues:read"], "called the platform API POST /1.0/repositories/marcus/project-x/"
         "issues/1/comments, which needs issues:write: the manifest's permissions "
         "(issues:read) do not cover it"),
        ([], "called the platform API (http://brokerage.internal/api/1.0/repositories/marcus/"
         "project-x/issues), but the manifest declares no permissions"),
    ],
)  # fmt: skip
def test_a_vendor_broker_calling_the_api_beyond_its_permissions_is_reported(
    permissions: list[str], problem: str
) -> None:
    fixture = {**FIXTURE, "service": {}, "tracker": [{"id": 1, "title": "one"}]}
    pkg = _package({"comment": fixture}, COMMENTING, fields=[], egress=[],
                   permissions=permissions)  # fmt: skip
    outcome = verify_package(pkg, docker_factory())
    assert not outcome.passed
    [run] = outcome.runs
    assert problem in run.problems, run.problems
    dynamic = outcome.checks[-1]
    assert dynamic.name == "dynamic" and any(problem == f.message for f in dynamic.findings)

    granted = _package({"comment": fixture}, COMMENTING, fields=[], egress=[],
                       permissions=["issues:write"])  # fmt: skip
    allowed = verify_package(granted, docker_factory())
    assert allowed.passed, allowed.runs[0].problems
    assert allowed.runs[0].issues == {"1": "new"}
    assert [c["status"] for c in allowed.runs[0].api_calls] == [200, 201]
