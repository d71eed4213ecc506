"""What every web page shares: the signed-in user, CSRF protection, error pages and
pagination. The web blueprints (``web_*.py``) call these; none of them is a view.

Sessions are Flask's signed cookie holding the user's id, a session token and a
fingerprint of their password hash, so changing a password signs out every other session.
The token's hash is kept server side (``WebSession``) from sign-in to sign-out: signing out
deletes it, so a cookie copied before (or replayed after) no longer signs anyone in. The
cookie never authenticates the REST API (``auth.authenticate`` reads only the Authorization header),
which is why only the web blueprints need CSRF protection.

CSRF: one random token per session, put in every form as ``csrf_token`` (or sent as
``X-CSRF-Token``) and compared in constant time before any POST of a web blueprint runs.
A small token is enough here: the pages are hand-written forms, so a forms library
(Flask-WTF) would add a dependency for a dozen lines.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, current_app, g, redirect, render_template, request, session, url_for
from sqlalchemy import delete
from werkzeug.wrappers import Response

from brokerage.core.accounts import Role, User
from brokerage.core.errors import ApiError, AuthenticationError, ForbiddenError
from brokerage.platform.db import get_session
from brokerage.platform.models import WebSession
from brokerage.platform.runtime import Runtime

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


class CsrfError(ApiError):
    """A web form was posted without this session's CSRF token (a forged or stale form)."""

    status = 400


def runtime() -> Runtime:
    found: Runtime = current_app.extensions["brokerage.runtime"]
    return found


# -- sessions --------------------------------------------------------------------


def _fingerprint(user: User) -> str:
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


def _session_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def sign_in(user: User) -> None:
    """Start a fresh session for ``user`` (a new CSRF token too: no fixation), recorded
    server side (``WebSession``); commits."""
    token = secrets.token_urlsafe(32)
    db = get_session()
    db.add(WebSession(id=_session_key(token), user_id=user.id))
    db.commit()
    session.clear()
    session["uid"] = user.id
    session["sid"] = token
    session["pwf"] = _fingerprint(user)
    session[CSRF_FIELD] = secrets.token_urlsafe(32)


def sign_out() -> None:
    """End this session: its server-side record goes, so the cookie (or a copy of it) no
    longer signs anyone in; commits."""
    token = session.get("sid")
    if isinstance(token, str):
        db = get_session()
        db.execute(delete(WebSession).where(WebSession.id == _session_key(token)))
        db.commit()
    session.clear()


def current_user() -> User | None:
    """The signed-in user of this request, or None (cached in ``g``)."""
    if "web_user" not in g:
        user = None
        uid, token = session.get("uid"), session.get("sid")
        if isinstance(uid, int) and isinstance(token, str):
            record = get_session().get(WebSession, _session_key(token))
            user = get_session().get(User, uid) if record and record.user_id == uid else None
            if user is None or not user.is_active or session.get("pwf") != _fingerprint(user):
                user = None
        g.web_user = user
    found: User | None = g.web_user
    return found


def signed_in() -> User:
    """The signed-in user; AuthenticationError (answered by a redirect to sign in) if none."""
    user = current_user()
    if user is None:
        raise AuthenticationError("sign in to see this page")
    return user


def with_role(role: Role) -> User:
    user = signed_in()
    if not user.has_role(role):
        raise ForbiddenError(f"this page needs the {role} role")
    return user


# -- CSRF ------------------------------------------------------------------------


def csrf_token() -> str:
    token = session.get(CSRF_FIELD)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[CSRF_FIELD] = token
    return token


def check_csrf() -> None:
    """Raise CsrfError unless the request carries this session's token."""
    expected = session.get(CSRF_FIELD)
    given = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or ""
    if not isinstance(expected, str) or not hmac.compare_digest(expected.encode(), given.encode()):
        raise CsrfError("this form is stale or forged (CSRF token missing or wrong): reload it")


def form_fields() -> dict[str, str]:
    """The posted form less the CSRF token."""
    return {k: v for k, v in request.form.items() if k != CSRF_FIELD}


# -- blueprints ------------------------------------------------------------------


def web_blueprint(name: str, import_name: str, **options: Any) -> Blueprint:
    """A blueprint whose POSTs need the CSRF token and whose errors are HTML pages."""
    bp = Blueprint(name, import_name, **options)
    bp.before_request(_guard_post)
    bp.register_error_handler(ApiError, _error_page)
    bp.context_processor(_template_context)
    for function in (csrf_token, has_page, nav_areas):
        bp.add_app_template_global(function)
    return bp


def _guard_post() -> None:
    if request.method == "POST":
        check_csrf()


def _error_page(exc: ApiError) -> Any:
    if isinstance(exc, AuthenticationError) and request.method == "GET":
        return redirect(url_for("web_auth.login", next=request.full_path.rstrip("?")))
    body = render_template("error.html", status=exc.status, message=exc.message)
    return body, exc.status


NAV_AREAS = (
    (Role.VENDOR, "web_vendor.brokers", "My brokers"),
    (Role.REVIEWER, "web_review.queue", "Review queue"),
    (Role.OPERATOR, "web_ops.health", "Operations"),
)
"""role-gated areas in the header, shown when their blueprint is registered"""


def nav_areas() -> list[tuple[Role, str, str]]:
    return [area for area in NAV_AREAS if has_page(area[1])]


def has_page(endpoint: str) -> bool:
    """Whether a page exists (areas that land later link only once they are registered)."""
    return endpoint in current_app.view_functions


def _template_context() -> dict[str, Any]:
    return {"me": current_user()}


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a local path only (no open redirect)."""
    # "//host" and "/\host" both name another site to a browser
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return url_for("web_auth.home")
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else url_for("web_auth.home")


def back(endpoint: str, **values: Any) -> Response:
    return redirect(url_for(endpoint, **values), code=303)
