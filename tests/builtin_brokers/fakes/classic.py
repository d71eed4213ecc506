"""Local fakes of the services the classic brokers call: Twitter, FriendFeed, FogBugz,
Basecamp, Lighthouse, CIA.vc, Rietveld and Superfeedr.

The harness's fake server picks one by the request's ``Host`` (``api.twitter.test``,
``lighthouse.test`` ...; the test gateway resolves ``*.test`` to 127.0.0.1); tests give
the brokers an egress list naming that host. Each fake checks a request the way its
real API does — path, method, auth, content type, required fields — and answers the way
it does.
"""

from __future__ import annotations

import re
import time
import uuid
import xmlrpc.client
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email import policy as email_policy
from email.parser import BytesParser
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree

import yaml
from oauthlib.oauth1.rfc5849 import signature as oauth_signature

from tests.builtin_brokers.fakes.wire import Answer, Request, reply

# -- Twitter: POST /2/tweets, OAuth 1.0a user context --------------------------------


DUPLICATE = "You are not allowed to create a Tweet with duplicate content."


@dataclass
class TwitterFake:
    """API v2 ``POST /2/tweets``: OAuth 1.0a HMAC-SHA1 verified with oauthlib (an
    implementation independent of the broker's), JSON ``{"text"}`` of 1-280 characters,
    201 with ``{"data": {"id", "text"}}``; 403 for a duplicate of an earlier text."""

    consumer_key: str = "consumer-key"
    consumer_secret: str = "consumer-secret"
    token: str = "token"
    token_secret: str = "token-secret"
    texts: list[str] = field(default_factory=list)
    nonces: set[str] = field(default_factory=set)

    def answer(self, request: Request) -> Answer:
        if request.route != "/2/tweets" or request.method != "POST":
            return reply(
                404, {"errors": [{"message": "Sorry, that page does not exist", "code": 34}]}
            )
        if not self.authorized(request):
            return reply(401, {"title": "Unauthorized", "type": "about:blank", "status": 401,
                               "detail": "Unauthorized"})  # fmt: skip
        if request.content_type() != "application/json":
            return reply(415, {"title": "Unsupported Media Type", "status": 415})
        text = request.json().get("text")
        if not isinstance(text, str) or not 1 <= len(text) <= 280:
            return reply(400, {"title": "Invalid Request", "status": 400,
                               "detail": "text must be 1 to 280 characters"})  # fmt: skip
        if text in self.texts:
            return reply(403, {"title": "Forbidden", "status": 403, "type": "about:blank",
                               "detail": DUPLICATE})  # fmt: skip
        self.texts.append(text)
        tweet_id = str(1445880548472328192 + len(self.texts))
        return reply(
            201, {"data": {"id": tweet_id, "edit_history_tweet_ids": [tweet_id], "text": text}}
        )

    def authorized(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        if not header.startswith("OAuth "):
            return False
        params = dict(oauth_signature.collect_parameters(
            uri_query=urlsplit(request.path).query, headers={"Authorization": header},
            exclude_oauth_signature=False))  # fmt: skip
        if (params.get("oauth_consumer_key") != self.consumer_key
                or params.get("oauth_token") != self.token
                or params.get("oauth_signature_method") != "HMAC-SHA1"
                or abs(int(params.get("oauth_timestamp", "0")) - time.time()) > 300
                or params.get("oauth_nonce") in self.nonces):  # fmt: skip
            return False
        self.nonces.add(params["oauth_nonce"])
        collected = oauth_signature.collect_parameters(
            uri_query=urlsplit(request.path).query, headers={"Authorization": header}
        )
        base = oauth_signature.signature_base_string(
            request.method, oauth_signature.base_string_uri(request.url),
            oauth_signature.normalize_parameters(collected))  # fmt: skip
        client = SimpleNamespace(
            client_secret=self.consumer_secret, resource_owner_secret=self.token_secret
        )
        expected = oauth_signature.sign_hmac_sha1_with_client(base, client)
        return bool(oauth_signature.safe_string_equals(expected, params["oauth_signature"]))


# -- Lighthouse: POST /projects/{id}/changesets.xml, X-LighthouseToken ------------------


@dataclass
class LighthouseFake:
    """The changesets API: token header, XML changeset with title, body, YAML changes,
    revision and changed-at; 201 with the changeset; 422 for a revision already taken."""

    token: str = "lh-token"
    project: str = "1234"
    changesets: list[dict[str, Any]] = field(default_factory=list)

    def answer(self, request: Request) -> Answer:
        found = re.fullmatch(r"/projects/(\d+)/changesets\.xml", request.route)
        if request.method != "POST" or not found:
            return xml_reply(404, "<errors><error>Not found</error></errors>")
        if request.headers.get("x-lighthousetoken") != self.token:
            return reply(401, "Unauthorized. Please make sure you are logged in.", "text/plain")
        if found.group(1) != self.project:
            return xml_reply(404, "<errors><error>Project not found</error></errors>")
        if request.content_type() != "application/xml":
            return xml_reply(422, "<errors><error>Title can't be blank</error></errors>")
        changeset = self.parse(request.body)
        if isinstance(changeset, str):
            return xml_reply(422, f"<errors><error>{changeset}</error></errors>")
        if any(c["revision"] == changeset["revision"] for c in self.changesets):
            return xml_reply(422, "<errors><error>Revision has already been taken</error></errors>")
        self.changesets.append(changeset)
        return xml_reply(201, request.body.decode().split("?>", 1)[-1])

    @staticmethod
    def parse(body: bytes) -> dict[str, Any] | str:
        root = ElementTree.fromstring(body)
        if root.tag != "changeset":
            return "Title can't be blank"
        values: dict[str, Any] = {child.tag: child.text or "" for child in root}
        for name in ("title", "revision", "changed-at"):
            if not values.get(name):
                return f"{name.capitalize()} can't be blank"
        datetime.strptime(values["changed-at"], "%Y-%m-%dT%H:%M:%SZ")
        values["changes"] = yaml.safe_load(values.get("changes") or "--- []") or []
        return values


def xml_reply(status: int, body: str) -> Answer:
    return reply(status, '<?xml version="1.0" encoding="UTF-8"?>' + body, "application/xml")


# -- FogBugz: GET cvsSubmit.asp?ixBug&sFile&sPrev&sNew&ixRepository ----------------------


@dataclass
class FogBugzFake:
    """cvsSubmit.asp: every parameter required, ixBug and ixRepository numbers; a
    repository it does not have is refused (400)."""

    repository: str = "3"
    checkins: list[dict[str, str]] = field(default_factory=list)

    def answer(self, request: Request) -> Answer:
        if request.route.lower() != "/cvssubmit.asp" or request.method not in ("GET", "POST"):
            return reply(404, "The page cannot be found", "text/html")
        query = request.query if request.method == "GET" else request.form
        names = ("ixBug", "sFile", "sPrev", "sNew", "ixRepository")
        if any(not query.get(name) for name in names) or not query["ixBug"].isdigit():
            return reply(400, "Missing or bad parameters", "text/plain")
        if query["ixRepository"] != self.repository:
            return reply(400, f"No repository {query['ixRepository']}", "text/plain")
        self.checkins.append({name: query[name] for name in names})
        return reply(200, "OK", "text/plain")


# -- Basecamp (Classic API): POST /posts/{id}/comments.xml, HTTP Basic --------------------


@dataclass
class BasecampFake:
    """A comment on a message: Basic auth, XML ``<comment><body>``, 201 + Location."""

    username: str = "marcus"
    password: str = "secret"
    post: str = "5678"
    comments: list[str] = field(default_factory=list)

    def answer(self, request: Request) -> Answer:
        found = re.fullmatch(r"/posts/(\d+)/comments\.xml", request.route)
        if request.method != "POST" or not found:
            return reply(404, "Not found", "text/plain")
        if request.basic_auth() != (self.username, self.password):
            return reply(401, "HTTP Basic: Access denied.", "text/plain",
                         {"WWW-Authenticate": 'Basic realm="Basecamp"'})  # fmt: skip
        if found.group(1) != self.post:
            return reply(404, "Not found", "text/plain")
        if request.content_type() != "application/xml":
            return reply(415, "Unsupported media type", "text/plain")
        root = ElementTree.fromstring(request.body)
        body = root.findtext("body") if root.tag == "comment" else None
        if not body:
            return xml_reply(422, "<errors><error>Body can't be blank</error></errors>")
        self.comments.append(body)
        location = f"/comments/{len(self.comments)}"
        return reply(201, b"", "application/xml", {"Location": location})


# -- FriendFeed (API v1): POST /api/share, HTTP Basic nickname:remote key ----------------


@dataclass
class FriendFeedFake:
    """``/api/share``: Basic auth with the remote key, form ``title`` required, optional
    ``link`` and ``comment``; answers ``{"entries": [entry]}``."""

    nickname: str = "marcus"
    remote_key: str = "remote-key"
    entries: list[dict[str, Any]] = field(default_factory=list)

    def answer(self, request: Request) -> Answer:
        if request.route != "/api/share" or request.method != "POST":
            return reply(404, {"errorCode": "not-found"})
        if request.basic_auth() != (self.nickname, self.remote_key):
            return reply(401, {"errorCode": "unauthorized"})
        if request.content_type() != "application/x-www-form-urlencoded":
            return reply(400, {"errorCode": "bad-request"})
        form = request.form
        if not form.get("title"):
            return reply(400, {"errorCode": "title-required"})
        entry = {"id": str(uuid.uuid4()), "title": form["title"], "link": form.get("link"),
                 "comments": [{"body": form["comment"]}] if form.get("comment") else [],
                 "user": {"nickname": self.nickname}}  # fmt: skip
        self.entries.append(entry)
        return reply(200, {"entries": [entry]})


# -- CIA.vc: XML-RPC hub.deliver(<message>) ----------------------------------------------


@dataclass
class CiaFake:
    """``/RPC2``: an XML-RPC call of ``hub.deliver`` with one string, a CIA ``<message>``
    with generator, source/project, timestamp and body/commit; a fault otherwise."""

    messages: list[Any] = field(default_factory=list)
    refuse: str = ""
    """when set, every message is refused with this fault string (a hub that rejects it)"""

    def answer(self, request: Request) -> Answer:
        if request.route != "/RPC2" or request.method != "POST":
            return reply(404, "Not found", "text/plain")
        if request.content_type() != "text/xml":
            return reply(400, "XML-RPC needs text/xml", "text/plain")
        params, method = xmlrpc.client.loads(request.body)
        if method != "hub.deliver" or len(params) != 1 or not isinstance(params[0], str):
            return rpc_fault(1, f"no method {method} taking one string")
        message = ElementTree.fromstring(params[0])
        problem = self.refuse or self.problem(message)
        if problem:
            return rpc_fault(2, problem)
        self.messages.append(message)
        return rpc_reply(xmlrpc.client.dumps(("Message delivered",), methodresponse=True))

    @staticmethod
    def problem(message: Any) -> str:
        required = ("generator/name", "source/project", "timestamp", "body/commit/author",
                    "body/commit/revision", "body/commit/log")  # fmt: skip
        if message.tag != "message":
            return "not a <message>"
        missing = [path for path in required if not message.findtext(path)]
        if missing:
            return "message lacks " + ", ".join(missing)
        int(message.findtext("timestamp"))
        return ""


def rpc_reply(text: str) -> Answer:
    return reply(200, text.encode(), "text/xml")


def rpc_fault(code: int, text: str) -> Answer:
    return rpc_reply(xmlrpc.client.dumps(xmlrpc.client.Fault(code, text), methodresponse=True))


# -- Superfeedr: PubSubHubbub publish ping ----------------------------------------------


@dataclass
class SuperfeedrFake:
    """A hub: form ``hub.mode=publish`` and ``hub.url`` (an http(s) URL); 204."""

    pings: list[str] = field(default_factory=list)

    def answer(self, request: Request) -> Answer:
        if request.route != "/" or request.method != "POST":
            return reply(404, "Not found", "text/plain")
        if request.content_type() != "application/x-www-form-urlencoded":
            return reply(422, "hub.mode is missing", "text/plain")
        form = request.form
        if form.get("hub.mode") != "publish":
            return reply(422, "hub.mode must be publish", "text/plain")
        if urlsplit(form.get("hub.url", "")).scheme not in ("http", "https"):
            return reply(422, "hub.url is not a valid URL", "text/plain")
        self.pings.append(form["hub.url"])
        return reply(204, b"", "text/plain")


# -- Rietveld: ClientLogin, /_ah/login, /upload ------------------------------------------


@dataclass
class RietveldFake:
    """upload.py's protocol: ClientLogin (Email/Passwd → Auth), ``/_ah/login?auth=``
    (→ a session cookie), then a multipart ``/upload`` with ``subject`` and the diff as
    ``data``; App Engine redirects requests without the cookie to a login page."""

    email: str = "marcus@somedomain.com"
    password: str = "secret"
    auth: str = "AUTH-TOKEN"
    cookie: str = "ACSID-COOKIE"
    site_token: str = ""
    """when set, the token the site's /_ah/login takes instead (login server and site disagree)"""
    issues: list[dict[str, str]] = field(default_factory=list)

    def answer(self, request: Request) -> Answer:
        route = (request.method, request.route)
        if route == ("POST", "/accounts/ClientLogin"):
            return self.client_login(request.form)
        if route == ("GET", "/_ah/login"):
            return self.app_login(request.query)
        if route == ("POST", "/upload"):
            return self.upload(request)
        return reply(404, "Not found", "text/plain")

    def client_login(self, form: Mapping[str, str]) -> Answer:
        if form.get("service") != "ah" or not form.get("accountType"):
            return reply(403, "Error=BadAuthentication\n", "text/plain")
        if (form.get("Email"), form.get("Passwd")) != (self.email, self.password):
            return reply(403, "Error=BadAuthentication\n", "text/plain")
        return reply(200, f"SID=sid\nLSID=lsid\nAuth={self.auth}\n", "text/plain")

    def app_login(self, query: Mapping[str, str]) -> Answer:
        if query.get("auth") != (self.site_token or self.auth):
            return reply(302, b"", "text/plain", {"Location": "/_ah/login_required"})
        headers = {
            "Location": query.get("continue", "/"),
            "Set-Cookie": f"ACSID={self.cookie}; Path=/",
        }
        return reply(302, b"", "text/plain", headers)

    def upload(self, request: Request) -> Answer:
        if f"ACSID={self.cookie}" not in request.headers.get("cookie", ""):
            return reply(302, b"", "text/plain", {"Location": "/_ah/login_required"})
        parts = multipart(request)
        if not parts.get("subject") or len(parts["subject"]) > 100 or not parts.get("data"):
            return reply(200, "Error: subject (1-100 characters) and data are required\n",
                         "text/plain")  # fmt: skip
        self.issues.append(parts)
        number = len(self.issues)
        return reply(200, f"Issue created. URL: {request.url.rsplit('/', 1)[0]}/{number}\n"
                          f"{1000 + number}\n", "text/plain")  # fmt: skip


def multipart(request: Request) -> dict[str, str]:
    """The fields of a multipart/form-data body, by name (files as their text)."""
    head = f"Content-Type: {request.headers.get('content-type', '')}\r\n\r\n".encode()
    message = BytesParser(policy=email_policy.HTTP).parsebytes(head + request.body)
    if not message.is_multipart():
        return {}
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True)
        assert isinstance(data, bytes)
        fields[str(name)] = data.decode("utf-8")
    return fields


def fresh_fakes() -> dict[str, Any]:
    """Every fake, by the host name tests give its service."""
    return {
        "api.twitter.test": TwitterFake(),
        "lighthouse.test": LighthouseFake(),
        "fogbugz.test": FogBugzFake(),
        "basecamp.test": BasecampFake(),
        "friendfeed.test": FriendFeedFake(),
        "cia.test": CiaFake(),
        "superfeedr.test": SuperfeedrFake(),
        "rietveld.test": RietveldFake(),
    }
