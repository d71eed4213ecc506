"""The verification stand-ins: what a fixture's broker reaches instead of the world
and the platform, each recording what it got.

What a broker reaches during verification:

- the recording receiver (any host name the manifest declares is refused as
  unresolvable: the gateway resolves the receiver's name to 127.0.0.1 and no other);
- ``POST http://brokerage.internal/mail``: the gateway's own mailer, sending to a real
  SMTP server on 127.0.0.1 started for the run (:class:`MailRecorder`); what it got is
  the transcript's ``mails``;
- ``http://brokerage.internal/api/...``: :class:`ApiStandIn`, which answers the issue
  tracker endpoints as the platform would for the fixture's repository (an in-memory
  tracker seeded by ``tracker``), records each call (``api_calls``) and refuses, as the
  platform does, whatever the manifest's ``permissions`` do not cover.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes
from email import policy as email_policy
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from brokerage.core import issues as rules
from brokerage.core.errors import (
    ApiError,
    AuthenticationError,
    BadRequestError,
    ForbiddenError,
    NotFoundError,
)
from brokerage.sandbox.egress.relay import ApiCall, ApiReply
from brokerage.submissions.manifest import implied

RECEIVER_HOST = "receiver.brokerage.test"
"""the name fixtures reach the recording receiver by (``${receiver}``)"""
RECEIVER_BODY_CHARS = 4000
"""characters of each received body kept in the transcript"""


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: str


class _ReceiverHandler(BaseHTTPRequestHandler):
    server: _ReceiverServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib's name)
        pass

    def _serve(self) -> None:
        length = min(int(self.headers.get("Content-Length") or 0), 1024 * 1024)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items() if k.lower() != "authorization"}
        self.server.received.append(
            Received(
                self.command,
                self.path,
                headers,
                body.decode("utf-8", "replace")[:RECEIVER_BODY_CHARS],
            )
        )
        reply = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


class _ReceiverServer(ThreadingHTTPServer):
    daemon_threads = True
    received: list[Received]


class RecordingReceiver:
    """An HTTP server on 127.0.0.1 that answers 200 to everything and keeps what it got."""

    def __init__(self) -> None:
        self.server = _ReceiverServer(("127.0.0.1", 0), _ReceiverHandler)
        self.server.received = []
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{RECEIVER_HOST}:{self.port}"

    def take(self) -> list[Received]:
        taken = list(self.server.received)
        self.server.received.clear()
        return taken

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- mail: a real SMTP server for the gateway's mailer ----------------------------------

VERIFY_MAIL_DOMAIN = "brokerage.test"
"""the mail domain during verification (From ``commits-noreply@brokerage.test``)"""
MAIL_BODY_CHARS = 4000
"""characters of each mail's text kept in the transcript"""
DELIVERY_HEADER = "X-Brokerage-Delivery"


class MailRecorder:
    """An SMTP server (aiosmtpd) on 127.0.0.1 that accepts every message and keeps it,
    filed by the delivery the gateway's mailer names in ``X-Brokerage-Delivery``."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller  # only verification needs an SMTP server

        class _Controller(Controller):
            def _trigger_server(self) -> None:
                # bound to port 0: learn the real port before aiosmtpd connects to it
                server = self.server
                assert isinstance(server, asyncio.Server)
                self.port = int(server.sockets[0].getsockname()[1])
                super()._trigger_server()

        self._lock = threading.Lock()
        self._mails: list[dict[str, Any]] = []
        self.controller = _Controller(self, hostname="127.0.0.1", port=0)
        self.controller.start()

    @property
    def port(self) -> int:
        return int(self.controller.port)

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802
        message = message_from_bytes(envelope.content, policy=email_policy.default)
        text = message.get_body(("plain",))
        html = message.get_body(("html",))
        mail = {
            "from": envelope.mail_from,
            "to": list(envelope.rcpt_tos),
            "subject": str(message.get("Subject", "")),
            "body": _plain(text)[:MAIL_BODY_CHARS],
            "html": html is not None,
            "broker": str(message.get("X-Brokerage-Broker", "")),
            "delivery": str(message.get(DELIVERY_HEADER, "")),
        }
        with self._lock:
            self._mails.append(mail)
        return "250 OK"

    def take(self, delivery_id: str) -> list[dict[str, Any]]:
        """The mails sent for ``delivery_id`` (forgotten here once taken)."""
        with self._lock:
            taken = [m for m in self._mails if m["delivery"] == delivery_id]
            self._mails = [m for m in self._mails if m["delivery"] != delivery_id]
        return taken

    def close(self) -> None:
        self.controller.stop()


def _plain(part: Any) -> str:
    """A text part as the broker wrote it (SMTP's CRLF line ends undone)."""
    return "" if part is None else str(part.get_content()).replace("\r\n", "\n")


# -- the platform API: the issue tracker of the fixture's repository ----------------------

_ISSUES_PATH = re.compile(
    r"/1\.0/repositories/(?P<owner>[^/]+)/(?P<slug>[^/]+)/issues"
    r"(?:/(?P<issue>[0-9]+)(?:/(?P<sub>comments|changesets))?)?/?"
)
_ENDPOINTS: dict[tuple[str, str], tuple[str, str]] = {
    ("GET", "list"): ("issues:read", "list_issues"),
    ("POST", "list"): ("issues:write", "create_issue"),
    ("GET", "issue"): ("issues:read", "show_issue"),
    ("PUT", "issue"): ("issues:write", "update_issue"),
    ("POST", "comments"): ("issues:write", "comment_issue"),
    ("POST", "changesets"): ("issues:write", "apply_changeset"),
}
"""(method, resource) → (the permission it needs, the stand-in's handler); the endpoints
of ``issues_api`` that accept a delivery's token — no other endpoint does"""
API_BODY_CHARS = 1000
"""characters of each API request body kept in the transcript"""
HEX = frozenset("0123456789abcdef")


class ApiRefusal(StrEnum):
    """Why the stand-in refused an API call (each one fails the fixture)."""

    PERMISSION = "permission"  # the manifest's permissions do not cover the endpoint
    REPOSITORY = "repository"  # another repository than the delivery's
    ENDPOINT = "endpoint"  # not an endpoint brokers can reach


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class StandInTracker:
    """The fixture repository's tracker, in memory, answering as ``tracker`` would."""

    owner: str
    slug: str
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)
    applied: set[tuple[int, str, str]] = field(default_factory=set)
    comment_ids: int = 0

    @classmethod
    def from_fixture(cls, repository: Any, issues: Any) -> StandInTracker:
        """The tracker a fixture describes; ValueError when ``tracker`` is malformed."""
        repository = repository if isinstance(repository, dict) else {}
        found = cls(str(repository.get("owner", "")), str(repository.get("slug", "")))
        if not isinstance(issues, list):
            raise ValueError("'tracker' must be a list of issues")
        for given in issues:
            if not isinstance(given, dict) or not isinstance(given.get("id"), int):
                raise ValueError('each tracker issue needs an integer "id"')
            try:
                status = rules.parse_status(str(given.get("status", "new")))
            except ApiError as exc:
                raise ValueError(f"tracker issue #{given['id']}: {exc.message}") from None
            if given["id"] in found.issues:
                raise ValueError(f"tracker issue #{given['id']} is listed twice")
            found.issues[given["id"]] = _issue(
                given["id"], str(given.get("title") or f"Issue {given['id']}"),
                str(given.get("content", "")), "", str(status))  # fmt: skip
        return found

    def new_issue(self, title: str, content: str, reporter: str, status: str) -> dict[str, Any]:
        local_id = max(self.issues, default=0) + 1
        self.issues[local_id] = _issue(local_id, title, content, reporter, status)
        return self.issues[local_id]

    def statuses(self) -> dict[str, str]:
        return {str(n): str(issue["status"]) for n, issue in sorted(self.issues.items())}

    # -- the endpoints (``issues_api``'s semantics) --------------------------------------

    def get(self, number: int) -> dict[str, Any]:
        if number not in self.issues:
            raise NotFoundError(f"issue #{number} does not exist in {self.owner}/{self.slug}")
        return self.issues[number]

    def list_issues(self, params: Mapping[str, Any], _number: int, actor: str) -> tuple[int, Any]:
        wanted = params.get("status")
        status = rules.parse_status(str(wanted)) if wanted else None
        found = [_shown(i) for _, i in sorted(self.issues.items())
                 if status is None or i["status"] == status]  # fmt: skip
        return 200, {"count": len(found), "issues": found}

    def create_issue(self, params: Mapping[str, Any], _number: int, actor: str) -> tuple[int, Any]:
        title = rules.text_param(params, "title").strip()
        if not title:
            raise BadRequestError("title: required")
        rules.check_length("title", title, rules.TITLE_MAX_CHARS)
        content = rules.text_param(params, "content", "")
        rules.check_length("content", content, rules.CONTENT_MAX_CHARS)
        status = rules.parse_status(str(params.get("status") or "new"))
        return 201, _shown(self.new_issue(title, content, actor, str(status)), with_comments=True)

    def show_issue(self, _params: Mapping[str, Any], number: int, actor: str) -> tuple[int, Any]:
        return 200, _shown(self.get(number), with_comments=True)

    def update_issue(self, params: Mapping[str, Any], number: int, actor: str) -> tuple[int, Any]:
        issue = self.get(number)
        if "status" in params:
            issue["status"] = str(rules.parse_status(rules.text_param(params, "status")))
        if "title" in params:
            issue["title"] = rules.text_param(params, "title").strip() or issue["title"]
        if "content" in params:
            issue["content"] = rules.text_param(params, "content")
        issue["updated_on"] = _now()
        return 200, _shown(issue, with_comments=True)

    def comment_issue(self, params: Mapping[str, Any], number: int, actor: str) -> tuple[int, Any]:
        return 201, self.add_comment(self.get(number), actor, rules.text_param(params, "content"))

    def add_comment(self, issue: dict[str, Any], author: str, content: str) -> dict[str, Any]:
        if not content.strip():
            raise BadRequestError("content: required")
        rules.check_length("content", content, rules.CONTENT_MAX_CHARS)
        self.comment_ids += 1
        added = {"id": self.comment_ids, "author": author, "content": content,
                 "created_on": _now()}  # fmt: skip
        issue["comments"].append(added)
        issue["updated_on"] = _now()
        return added

    def apply_changeset(
        self, params: Mapping[str, Any], number: int, actor: str
    ) -> tuple[int, Any]:
        issue = self.get(number)
        verb = rules.parse_command(rules.text_param(params, "command"))
        raw_node = str(params.get("raw_node") or "").strip().lower()
        if not raw_node or len(raw_node) > 40 or any(c not in HEX for c in raw_node):
            raise BadRequestError("raw_node: a commit hash (hex) is required")
        key = (number, raw_node, str(verb))
        applied = key not in self.applied
        if applied:
            self.applied.add(key)
            self.add_comment(issue, str(params.get("author") or "brokerage"),
                             rules.changeset_comment(verb, params))  # fmt: skip
            status = rules.COMMAND_STATUS[verb]
            if status is not None:
                issue["status"] = str(status)
        return (201 if applied else 200), {"applied": applied, "issue": _shown(issue)}


def _issue(local_id: int, title: str, content: str, reporter: str, status: str) -> dict[str, Any]:
    return {
        "id": local_id,
        "title": title,
        "content": content,
        "status": str(status),
        "reporter": reporter,
        "created_on": _now(),
        "updated_on": _now(),
        "comments": [],
    }


def _shown(issue: Mapping[str, Any], with_comments: bool = False) -> dict[str, Any]:
    """``brokerage.platform.issues.tracker.serialize``'s shape."""
    shown = {k: v for k, v in issue.items() if k != "comments"}
    shown["comment_count"] = len(issue["comments"])
    if with_comments:
        shown["comments"] = [dict(c) for c in issue["comments"]]
    return shown


def _params(call: ApiCall) -> dict[str, Any]:
    """A JSON object body or a form body, as ``views.json_or_form`` reads them (a call
    without a body, such as a GET, reads its query whatever its content type)."""
    if "json" in call.headers.get("content-type", "") and call.body.strip():
        try:
            body = json.loads(call.body or b"null")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise BadRequestError("malformed JSON: expected an object")
        return {str(k): v for k, v in body.items()}
    query = urlsplit(call.path).query
    return dict(parse_qsl(query)) | dict(parse_qsl(call.body.decode("utf-8", "replace")))


class ApiStandIn:
    """The verification gateway's ``api_forwarder``: one :class:`StandInTracker` per run,
    keyed by the delivery the gateway names (so runs never see each other's calls)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._trackers: dict[str, StandInTracker] = {}
        self._calls: dict[str, list[dict[str, Any]]] = {}

    def begin(self, delivery_id: str, standin: StandInTracker) -> None:
        with self._lock:
            self._trackers[delivery_id] = standin
            self._calls[delivery_id] = []

    def end(self, delivery_id: str) -> tuple[list[dict[str, Any]], StandInTracker | None]:
        """The run's calls and its tracker as the run left it."""
        with self._lock:
            return self._calls.pop(delivery_id, []), self._trackers.pop(delivery_id, None)

    def __call__(self, call: ApiCall) -> ApiReply:
        record: dict[str, Any] = {
            "method": call.method, "path": call.path, "status": None, "permission": None,
            "refused": None, "detail": None,
            "body": call.body.decode("utf-8", "replace")[:API_BODY_CHARS],
        }  # fmt: skip
        with self._lock:
            standin = self._trackers.get(call.delivery_id)
            try:
                if standin is None:
                    raise AuthenticationError("delivery token: the delivery is not running")
                status, document = self._answer(call, standin, record)
            except ApiError as exc:
                status, document = exc.status, {"error": {"status": exc.status,
                                                          "message": exc.message}}  # fmt: skip
                record["detail"] = exc.message
            record["status"] = status
            self._calls.setdefault(call.delivery_id, []).append(record)
        body = json.dumps(document).encode()
        return ApiReply(status, {"Content-Type": "application/json"}, body)

    def _answer(
        self, call: ApiCall, standin: StandInTracker, record: dict[str, Any]
    ) -> tuple[int, Any]:
        path = urlsplit(call.path).path
        match = _ISSUES_PATH.fullmatch(path)
        resource = "list" if match is None or not match["issue"] else match["sub"] or "issue"
        endpoint = _ENDPOINTS.get((call.method, resource)) if match else None
        if match is None or endpoint is None:
            record["refused"] = ApiRefusal.ENDPOINT
            raise ForbiddenError(f"{call.method} {path} is not an endpoint brokers may call "
                                 "(they reach the repository's issue tracker)")  # fmt: skip
        permission, handler = endpoint
        record["permission"] = permission
        owner, slug = unquote(match["owner"]), unquote(match["slug"])
        if (owner.lower(), slug.lower()) != (standin.owner.lower(), standin.slug.lower()):
            record["refused"] = ApiRefusal.REPOSITORY
            raise NotFoundError("this delivery may only reach its own repository")
        if permission not in call.permissions and not implied(permission, call.permissions):
            record["refused"] = ApiRefusal.PERMISSION
            raise ForbiddenError(f"the broker's manifest does not declare {permission}")
        answer: Callable[[Mapping[str, Any], int, str], tuple[int, Any]]
        answer = getattr(standin, handler)
        return answer(_params(call), int(match["issue"] or 0), f"{call.broker} (broker)")


@dataclass
class StandIns:
    """What a fixture's broker reaches instead of the world and the platform."""

    receiver: RecordingReceiver
    mail: MailRecorder
    api: ApiStandIn
