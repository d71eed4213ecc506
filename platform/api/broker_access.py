"""The platform API as brokers reach it: per-delivery tokens and the gateway's forwarder.

A broker calls ``http://brokerage.internal/api/<path>``; the gateway hands the
call to its ``api_forwarder``, and :class:`AppApiForwarder` passes it to the
Flask app in-process with ``Authorization: Bearer <delivery token>``. The token
is minted per call and says only *which delivery* and *which permissions the
manifest declared*; the app then checks, in the database, that:

- the delivery exists and is running right now (a token outlives nothing);
- the permissions are among those of the delivery's broker version;
- the repository in the path is the delivery's repository (views that accept
  grants call :meth:`DeliveryGrant.require`).

Only views that call :func:`grant_from_request` accept these tokens; everywhere
else they are unknown bearer tokens (401).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from flask import Flask, current_app, request
from sqlalchemy.orm import Session

from brokerage.core.errors import AuthenticationError, ForbiddenError, NotFoundError
from brokerage.platform.deliveries.states import DeliveryStatus
from brokerage.platform.models import Delivery, Repository
from brokerage.sandbox.egress.relay import ApiCall, ApiReply
from brokerage.submissions.manifest import implied

TOKEN_PREFIX = "bkd_"
"""marks a delivery token (user API tokens have their own prefix)"""
REPLY_HEADERS = ("content-type", "location", "etag")
"""the app's response headers a broker sees"""


@dataclass(frozen=True)
class DeliveryGrant:
    """What a verified delivery token allows."""

    delivery_id: str
    repository_id: int
    broker: str
    permissions: frozenset[str]

    def require(self, repo: Repository | None, permission: str) -> Repository:
        """``repo`` if this grant covers it with ``permission``; 404/403 otherwise."""
        if repo is None or repo.id != self.repository_id:
            raise NotFoundError("this delivery may only reach its own repository")
        if permission not in self.permissions and not implied(permission, self.permissions):
            raise ForbiddenError(f"the broker's manifest does not declare {permission}")
        return repo

    @property
    def actor(self) -> str:
        return f"{self.broker} (broker)"


def _key(secret_key: str) -> bytes:
    return hashlib.sha256(b"brokerage delivery token\0" + secret_key.encode()).digest()


def mint(secret_key: str, delivery_id: str, permissions: Iterable[str]) -> str:
    """A token for ``delivery_id`` carrying ``permissions`` (checked again on use)."""
    body = f"{delivery_id}\n{','.join(sorted(set(permissions)))}".encode()
    signature = hmac.new(_key(secret_key), body, hashlib.sha256).hexdigest()
    return TOKEN_PREFIX + base64.urlsafe_b64encode(body).decode().rstrip("=") + "." + signature


def verify(session: Session, secret_key: str, token: str) -> DeliveryGrant:
    """The grant ``token`` stands for; AuthenticationError (401) when it stands for nothing."""
    delivery_id, permissions = _parse(secret_key, token)
    delivery = session.get(Delivery, delivery_id)
    if delivery is None or delivery.status != DeliveryStatus.RUNNING:
        raise AuthenticationError("delivery token: the delivery is not running")
    declared = set(delivery.broker_version.manifest.get("permissions") or ())
    return DeliveryGrant(
        delivery_id=delivery.id,
        repository_id=delivery.repository_id,
        broker=delivery.broker_version.broker_type.name,
        permissions=frozenset(permissions & declared),
    )


def _parse(secret_key: str, token: str) -> tuple[str, set[str]]:
    encoded, _, signature = token.removeprefix(TOKEN_PREFIX).partition(".")
    try:
        body = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except ValueError:
        raise AuthenticationError("delivery token: malformed") from None
    expected = hmac.new(_key(secret_key), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise AuthenticationError("delivery token: bad signature")
    delivery_id, _, permissions = body.decode().partition("\n")
    return delivery_id, {p for p in permissions.split(",") if p}


def grant_from_request(session: Session) -> DeliveryGrant | None:
    """The request's delivery grant; None when it carries no delivery token."""
    auth = request.authorization
    if auth is None or auth.type != "bearer" or not (auth.token or "").startswith(TOKEN_PREFIX):
        return None
    return verify(session, str(current_app.config["SECRET_KEY"]), str(auth.token))


class AppApiForwarder:
    """The gateway's ``api_forwarder``: the call goes to ``app`` in-process, so the token
    never crosses a network and the worker needs no web server to talk to."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def __call__(self, call: ApiCall) -> ApiReply:
        token = mint(str(self.app.config["SECRET_KEY"]), call.delivery_id, call.permissions)
        headers = dict(call.headers) | {"Authorization": f"Bearer {token}"}
        response = self.app.test_client().open(
            call.path, method=call.method, headers=headers, data=call.body
        )
        kept = {k: v for k, v in response.headers.items() if k.lower() in REPLY_HEADERS}
        return ApiReply(response.status_code, kept, response.get_data())
