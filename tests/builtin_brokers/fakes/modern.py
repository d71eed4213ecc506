"""Local fakes of Slack, Discord, Mattermost, Teams, Pivotal Tracker, Geocommit, Jenkins
and Bamboo, each checking a request the way the real API does (path, method, auth,
content type, required fields) and answering the way it does.

A test installs one with the harness's ``rig.dispatch``, which runs the broker with its
*real* manifest: the test gateway resolves the services' real host names
(``hooks.slack.com``, ``www.pivotaltracker.com``, …) to 127.0.0.1 and allows the fake
server's port, and URL fields name their hosts to the gateway as the dispatcher does.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.builtin_brokers.fakes.wire import (
    Reply,
    Request,
    basic_credentials,
    json_body,
    path_of,
    query_of,
)


@dataclass
class UnavailableFake:
    """A service that is up but failing: 503 to everything."""

    def answer(self, request: Request) -> Reply:
        return Reply(503, "Service Unavailable", {"Retry-After": "30"})


# -- chat services -------------------------------------------------------------------


@dataclass
class SlackFake:
    """``POST /services/<team>/<bot>/<secret>``: JSON with ``text`` or ``blocks``; ``ok``.

    Errors as Slack sends them: plain-text codes with 400/403/404/410."""

    secret_path: str = "/services/T0001/B0001/s3cretXXXXXXXXXXXXXXXXXX"
    channels: tuple[str, ...] = ("#general", "#ci")

    def answer(self, request: Request) -> Reply:
        path = path_of(request)
        if request.method != "POST":
            return Reply(405, "invalid_method")
        if not path.startswith("/services/"):
            return Reply(404, "no_service")
        if path != self.secret_path:
            return Reply(403, "invalid_token")
        body = json_body(request)
        if not isinstance(body, dict):
            return Reply(400, "invalid_payload")
        if not body.get("text") and not body.get("blocks"):
            return Reply(400, "no_text")
        blocks = body.get("blocks") or []
        if len(blocks) > 50 or any(len(_block_text(b)) > 3000 for b in blocks):
            return Reply(400, "invalid_blocks")
        if body.get("channel") and body["channel"] not in self.channels:
            return Reply(404, "channel_not_found")
        return Reply(200, "ok", {"Content-Type": "text/html"})


def _block_text(block: Mapping[str, Any]) -> str:
    text = block.get("text") or {}
    return str(text.get("text") or "") if isinstance(text, dict) else ""


@dataclass
class DiscordFake:
    """``POST /api/webhooks/<id>/<token>``: JSON with ``content`` or ``embeds``; 204."""

    webhook_id: str = "1234567890"
    token: str = "s3cret-token"

    def answer(self, request: Request) -> Reply:
        match = re.fullmatch(r"/api/webhooks/(\d+)/([^/]+)", path_of(request))
        if request.method != "POST":
            return Reply(405, {"message": "405: Method Not Allowed", "code": 0})
        if not match or match.group(1) != self.webhook_id:
            return Reply(404, {"message": "Unknown Webhook", "code": 10015})
        if match.group(2) != self.token:
            return Reply(401, {"message": "Invalid Webhook Token", "code": 50027})
        body = json_body(request)
        if not isinstance(body, dict):
            return Reply(400, {"message": "Cannot send an empty message", "code": 50006})
        problems = _discord_problems(body)
        if problems:
            return Reply(400, {"message": "Invalid Form Body", "code": 50035, "errors": problems})
        return Reply(204)


def _discord_problems(body: Mapping[str, Any]) -> list[str]:
    problems = []
    embeds = body.get("embeds") or []
    if not body.get("content") and not embeds:
        problems.append("content or embeds required")
    if len(str(body.get("content") or "")) > 2000:
        problems.append("content longer than 2000")
    if len(embeds) > 10:
        problems.append("more than 10 embeds")
    for embed in embeds:
        if len(str(embed.get("description") or "")) > 4096 or len(str(embed.get("title"))) > 256:
            problems.append("embed too long")
    name = str(body.get("username") or "")
    if "discord" in name.lower() or "clyde" in name.lower() or len(name) > 80:
        problems.append("username not allowed")
    return problems


@dataclass
class MattermostFake:
    """``POST /hooks/<key>``: JSON with ``text``; ``ok``. Errors as JSON app errors."""

    key: str = "xxxs3cretkeyxxx"
    channels: tuple[str, ...] = ("town-square", "ci")

    def answer(self, request: Request) -> Reply:
        match = re.fullmatch(r"/hooks/([^/]+)", path_of(request))
        if request.method != "POST" or not match:
            return Reply(404, _mm_error("api.context.404.app_error", 404))
        if match.group(1) != self.key:
            return Reply(400, _mm_error("web.incoming_webhook.invalid.app_error", 400))
        body = json_body(request)
        if not isinstance(body, dict):
            return Reply(400, _mm_error("web.incoming_webhook.parse.app_error", 400))
        if not body.get("text") and not body.get("attachments"):
            return Reply(400, _mm_error("web.incoming_webhook.text.app_error", 400))
        if body.get("channel") and body["channel"] not in self.channels:
            return Reply(404, _mm_error("web.incoming_webhook.channel.app_error", 404))
        return Reply(200, "ok")


def _mm_error(error_id: str, status: int) -> dict[str, Any]:
    return {"id": error_id, "message": "as the server says", "status_code": status}


@dataclass
class TeamsFake:
    """A Workflows webhook: ``POST /workflows/<id>/triggers/manual/paths/invoke?…&sig=<sig>``
    with a message carrying an Adaptive Card; 202. ``connector=True`` answers like a
    connector's incoming webhook instead (200 ``1``, or 200 with a delivery failure)."""

    workflow: str = "abc123"
    sig: str = "s3cretSIG"
    connector: bool = False
    throttled: bool = False

    def answer(self, request: Request) -> Reply:
        match = re.fullmatch(r"/workflows/([^/]+)/triggers/manual/paths/invoke", path_of(request))
        if request.method != "POST" or not match or match.group(1) != self.workflow:
            return Reply(404, {"error": {"code": "WorkflowNotFound", "message": "not found"}})
        if query_of(request).get("sig") != self.sig:
            return Reply(401, {"error": {"code": "DirectApiAuthorizationRequired",
                                         "message": "signature mismatch"}})  # fmt: skip
        body = json_body(request)
        if not _adaptive_card_message(body):
            return Reply(400, {"error": {"code": "InvalidRequestContent", "message": "bad card"}})
        if self.throttled:
            return Reply(200, "Webhook message delivery failed with error: Microsoft Teams "
                              "endpoint returned HTTP error 429 with ContextId …")  # fmt: skip
        return Reply(200, "1") if self.connector else Reply(202)


def _adaptive_card_message(body: Any) -> bool:
    if not isinstance(body, dict) or body.get("type") != "message":
        return False
    attachments = body.get("attachments") or []
    if len(attachments) != 1:
        return False
    attachment = attachments[0]
    card = attachment.get("content") or {}
    return bool(
        attachment.get("contentType") == "application/vnd.microsoft.card.adaptive"
        and card.get("type") == "AdaptiveCard"
        and card.get("version")
        and isinstance(card.get("body"), list)
        and card["body"]
    )


# -- trackers ------------------------------------------------------------------------


@dataclass
class TrackerFake:
    """Pivotal Tracker v5: ``POST /services/v5/source_commits`` with ``X-TrackerToken``
    and ``{"source_commit": {"commit_id", "message", ...}}``; 200 with the comments made."""

    token: str = "s3cret-tracker-token"

    def answer(self, request: Request) -> Reply:
        if path_of(request) != "/services/v5/source_commits":
            return Reply(404, _tracker_error("route_not_found", "The path is not valid."))
        if request.method != "POST":
            return Reply(405, _tracker_error("invalid_method", "Method not allowed."))
        given = request.headers.get("x-trackertoken")
        if not given:
            return Reply(403, _tracker_error("unauthenticated", "Authorization failure."))
        if given != self.token:
            why = "Invalid authentication credentials were presented."
            return Reply(403, _tracker_error("invalid_authentication", why))
        body = json_body(request)
        commit = body.get("source_commit") if isinstance(body, dict) else None
        if not isinstance(commit, dict) or not commit.get("commit_id") or not commit.get("message"):
            return Reply(400, _tracker_error("invalid_parameter", "source_commit is malformed"))
        stories = re.findall(r"#(\d+)", " ".join(re.findall(r"\[[^\]]*\]", commit["message"])))
        comments = [
            {"kind": "comment", "story_id": int(s), "commit_identifier": commit["commit_id"]}
            for s in stories
        ]
        return Reply(200, comments)


def _tracker_error(code: str, error: str) -> dict[str, str]:
    return {"code": code, "kind": "error", "error": error}


@dataclass
class GeocommitFake:
    """geocommit.com's hook: ``POST /api/<origin>`` with a form field ``payload`` holding
    Bitbucket's JSON (it recognises Bitbucket by ``repository.slug``); 201."""

    def answer(self, request: Request) -> Reply:
        if request.method != "POST" or not path_of(request).startswith("/api/"):
            return Reply(404, "not a valid request")
        if request.headers.get("content-type") != "application/x-www-form-urlencoded":
            return Reply(400, "")
        try:
            payload = json.loads(request.form["payload"])
        except (KeyError, ValueError):
            return Reply(400, "")
        if not (payload.get("repository") or {}).get("slug") or not payload.get("commits"):
            return Reply(400, "")
        return Reply(201, "")


# -- CI servers ----------------------------------------------------------------------


@dataclass
class JenkinsFake:
    """A Jenkins with one job: remote trigger ``/job/<path>/build?token=``, an API-token
    user, and optionally CSRF protection (crumbs bound to the session cookie)."""

    job: str = "/job/project-x"
    token: str = "s3cret-build-token"
    users: dict[str, str] = field(default_factory=lambda: {"ci": "api-t0ken"})
    csrf: bool = True
    anonymous_read: bool = True
    parameterized: bool = False
    disabled: bool = False
    sessions: dict[str, str] = field(default_factory=dict)
    """crumb by JSESSIONID"""
    queue: int = 7

    def answer(self, request: Request) -> Reply:
        credentials = basic_credentials(request)
        if credentials and self.users.get(credentials[0]) != credentials[1]:
            return Reply(401, "Invalid password/token for user: " + credentials[0])
        path = path_of(request)
        if path == "/crumbIssuer/api/json" and request.method == "GET":
            return self._crumb(credentials is not None)
        for action in ("/build", "/buildWithParameters"):
            if path.startswith("/job/") and path.endswith(action):
                job = path.removesuffix(action)
                return self._build(request, job, action, credentials is not None)
        return Reply(404, "Not Found")

    def _crumb(self, authenticated: bool) -> Reply:
        if not self.csrf:
            return Reply(404, "Not Found")
        if not authenticated and not self.anonymous_read:
            return Reply(403, "Authentication required")
        session, crumb = uuid.uuid4().hex, uuid.uuid4().hex
        self.sessions[session] = crumb
        body = {"_class": "hudson.security.csrf.DefaultCrumbIssuer", "crumb": crumb,
                "crumbRequestField": "Jenkins-Crumb"}  # fmt: skip
        return Reply(200, body, {"Set-Cookie": f"JSESSIONID.abc={session}; Path=/; HttpOnly"})

    def _build(self, request: Request, job: str, action: str, authenticated: bool) -> Reply:
        if request.method != "POST":
            return Reply(405, "This URL requires POST")
        if self.csrf and not self._crumb_ok(request):
            return Reply(403, "No valid crumb was included in the request")
        if job != self.job:
            return Reply(404, "Not Found")
        if query_of(request).get("token") != self.token and not authenticated:
            return Reply(403, "Authentication required")
        if self.disabled:
            return Reply(409, "project-x is currently disabled")
        if action == "/build" and self.parameterized:
            return Reply(400, "Nothing is submitted")  # /build wants the parameters form
        if action == "/buildWithParameters" and not self.parameterized:
            return Reply(500, "java.lang.IllegalStateException: not parameterized")
        self.queue += 1
        return Reply(201, b"", {"Location": f"http://ci.example.test/queue/item/{self.queue}/"})

    def _crumb_ok(self, request: Request) -> bool:
        cookies = dict(
            part.strip().split("=", 1)
            for part in request.headers.get("cookie", "").split(";")
            if "=" in part
        )
        crumb = request.headers.get("jenkins-crumb")
        return bool(crumb) and self.sessions.get(cookies.get("JSESSIONID.abc", "")) == crumb


@dataclass
class BambooFake:
    """Bamboo's ``POST /rest/api/latest/queue/<planKey>`` with HTTP Basic, the XSRF
    opt-out header and ``Accept: application/json``; 200 with the queued result."""

    plans: dict[str, bool] = field(default_factory=lambda: {"PROJ-PLAN": True, "PROJ-OFF": False})
    """plan key → enabled"""
    users: dict[str, str] = field(default_factory=lambda: {"builder": "s3cret-pass"})
    build_number: int = 41

    def answer(self, request: Request) -> Reply:
        match = re.fullmatch(r"/rest/api/latest/queue/([A-Z0-9-]+)", path_of(request))
        if not match:
            return Reply(404, {"message": "Not found", "status-code": 404})
        credentials = basic_credentials(request)
        if not credentials or self.users.get(credentials[0]) != credentials[1]:
            return Reply(401, b"", {"WWW-Authenticate": 'Basic realm="Atlassian Bamboo"'})
        if request.method != "POST":
            return Reply(405, {"message": "Method not allowed", "status-code": 405})
        if request.headers.get("x-atlassian-token") not in ("no-check", "nocheck"):
            return Reply(403, "XSRF check failed")
        if request.headers.get("accept") != "application/json":
            return Reply(406, "")
        key = match.group(1)
        if key not in self.plans:
            return Reply(404, {"message": f"Plan {key} not found.", "status-code": 404})
        if not self.plans[key]:
            return Reply(400, {"message": f"Plan {key} is disabled", "status-code": 400})
        self.build_number += 1
        return Reply(200, {"planKey": key, "buildNumber": self.build_number,
                           "buildResultKey": f"{key}-{self.build_number}",
                           "triggerReason": "Manual build"})  # fmt: skip
