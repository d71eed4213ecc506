"""Who is calling: HTTP Basic (password or API token) and Bearer API tokens.

``authenticate()`` is the one way a view learns its caller; it raises
:class:`AuthenticationError` (401) when credentials are missing or wrong.
"""

from __future__ import annotations

from flask import current_app, g, request

from brokerage.core.accounts import Role, User
from brokerage.core.errors import AuthenticationError, ForbiddenError
from brokerage.platform import accounts, signin
from brokerage.platform.db import get_session


def _user_from_request() -> User | None:
    auth = request.authorization
    if auth is None:
        raise AuthenticationError("authentication required: use HTTP Basic or a Bearer API token")
    session = get_session()
    if auth.type == "bearer" and auth.token:
        return accounts.check_token(session, auth.token)
    if auth.type == "basic" and auth.username is not None and auth.password is not None:
        if auth.password.startswith(accounts.TOKEN_PREFIX):
            user = accounts.check_token(session, auth.password)
            return user if user is not None and user.username == auth.username else None
        return checked_password(auth.username, auth.password)
    raise AuthenticationError(f"unsupported authorization scheme {auth.type!r}")


def checked_password(username: str, password: str) -> User | None:
    """``accounts.check_password`` under the sign-in rate limit (``signin``): 429 once the
    account or the client address has failed too often; a failure is counted."""
    session, config = get_session(), current_app.config
    signin.check_allowed(session, config, username, request.remote_addr)
    user = accounts.check_password(session, username, password)
    if user is None:
        sessions = current_app.extensions["brokerage.sessionmaker"]
        signin.record_failure(sessions, config, username, request.remote_addr)
    return user


def authenticate() -> User:
    """The calling user (cached for the request). Raises 401 on missing or wrong credentials."""
    if "user" not in g:
        user = _user_from_request()
        if user is None:
            raise AuthenticationError("invalid credentials")
        g.user = user
    current: User = g.user
    return current


def require_role(role: Role) -> User:
    """The calling user, who must hold ``role`` (403 otherwise)."""
    user = authenticate()
    if not user.has_role(role):
        raise ForbiddenError(f"this needs the {role} role")
    return user
