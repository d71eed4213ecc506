"""What the service fakes speak: the request one of them received (with the helpers fakes
use to read it) and the two ways a fake answers — an ``Answer`` tuple built with
:func:`reply`, or a :class:`Reply`. The harness's fake server records every request and
accepts either answer."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qs, parse_qsl, urlsplit

Answer = tuple[int, dict[str, str], bytes]


@dataclass
class Request:
    method: str
    host: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def url(self) -> str:
        return f"http://{self.headers.get('host', self.host)}{self.path}"

    @property
    def route(self) -> str:
        return urlsplit(self.path).path

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))

    @property
    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode(), keep_blank_values=True).items()}

    def json(self) -> Any:
        return json.loads(self.body)

    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def basic_auth(self) -> tuple[str, str] | None:
        scheme, _, value = self.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        user, _, password = base64.b64decode(value).decode().partition(":")
        return user, password


def reply(status: int, body: Any = b"", content_type: str = "application/json",
          headers: Mapping[str, str] | None = None) -> Answer:  # fmt: skip
    if not isinstance(body, bytes):
        body = (json.dumps(body) if content_type.endswith("json") else str(body)).encode()
    return status, {"Content-Type": content_type, **(headers or {})}, body


@dataclass
class Reply:
    status: int
    body: bytes | str | Any = b""
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> tuple[bytes, dict[str, str]]:
        headers = dict(self.headers)
        if isinstance(self.body, bytes):
            return self.body, headers
        if isinstance(self.body, str):
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
            return self.body.encode(), headers
        headers.setdefault("Content-Type", "application/json; charset=utf-8")
        return json.dumps(self.body).encode(), headers


class Fake(Protocol):
    def answer(self, request: Request) -> Reply: ...


def path_of(request: Request) -> str:
    return urlsplit(request.path).path


def query_of(request: Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(request.path).query).items()}


def json_body(request: Request) -> Any:
    """The body as JSON when the content type says so; None otherwise (or if unparsable)."""
    if not request.headers.get("content-type", "").startswith("application/json"):
        return None
    try:
        return json.loads(request.body)
    except ValueError:
        return None


def basic_credentials(request: Request) -> tuple[str, str] | None:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    user, _, password = base64.b64decode(encoded).decode().partition(":")
    return user, password
