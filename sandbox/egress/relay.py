"""The platform API as the gateway forwards it: a broker's call, the reply, the default forwarder.

A broker's ``http://brokerage.internal/api/<path>`` request becomes an
:class:`ApiCall` (see :mod:`brokerage.sandbox.egress.proxy`); the gateway's
``api_forwarder`` answers it with an :class:`ApiReply`.
"""

from __future__ import annotations

import http.client
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from brokerage.sandbox.egress.errors import GatewayError, UpstreamError


@dataclass(frozen=True)
class ApiCall:
    """A broker's request to ``http://brokerage.internal/api/<path>``, with who made it."""

    method: str
    path: str
    """the part after ``/api``, starting with ``/``, query included"""
    headers: Mapping[str, str]
    body: bytes
    delivery_id: str
    broker: str
    version: str
    permissions: tuple[str, ...]


@dataclass(frozen=True)
class ApiReply:
    status: int
    headers: Mapping[str, str]
    body: bytes


ApiForwarder = Callable[[ApiCall], ApiReply]
"""The platform's hook for ``/api``: it scopes the call to the delivery's repository."""

API_FORWARDED_HEADERS = ("content-type", "accept", "if-match", "if-none-match")
"""the only broker headers an API call keeps (never Authorization or Cookie)"""


class GatewayApiForwarder:
    """The default ``api_forwarder``: HTTP to the platform with a per-delivery scoped token.

    ``mint_token(call)`` is the platform's: it returns a token scoped to the
    delivery's repository and ``call.permissions``; the gateway sends it as
    ``Authorization: Bearer <token>`` (whatever the broker sent is dropped)."""

    def __init__(
        self, base_url: str, mint_token: Callable[[ApiCall], str], timeout: float = 15.0
    ) -> None:
        self.base = urlsplit(base_url)
        if self.base.scheme not in ("http", "https"):
            raise GatewayError(f"platform API base URL must be http(s): {base_url}")
        self.mint_token = mint_token
        self.timeout = timeout

    def __call__(self, call: ApiCall) -> ApiReply:
        cls = (
            http.client.HTTPSConnection
            if self.base.scheme == "https"
            else http.client.HTTPConnection
        )
        connection = cls(self.base.netloc, timeout=self.timeout)
        headers = dict(call.headers) | {
            "Authorization": f"Bearer {self.mint_token(call)}",
            "X-Brokerage-Delivery": call.delivery_id,
        }
        try:
            connection.request(
                call.method, self.base.path.rstrip("/") + call.path, call.body or None, headers
            )
            response = connection.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise UpstreamError(f"platform API: {exc}") from exc
        finally:
            connection.close()
        keep = ("content-type", "location", "etag")
        return ApiReply(
            response.status, {k: v for k, v in response.getheaders() if k.lower() in keep}, body
        )
