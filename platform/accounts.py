"""Accounts: users, their passwords (scrypt via Werkzeug) and their API tokens.

API tokens look like ``brk_<43 url-safe characters>``; only their SHA-256 is stored
(they are long random secrets, so a fast hash is enough; passwords get a slow KDF).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from brokerage.core.accounts import ApiToken, Role, User
from brokerage.core.errors import BadRequestError, ConflictError, NotFoundError

USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
TOKEN_PREFIX = "brk_"
MIN_PASSWORD_LENGTH = 8
"""characters"""
MAX_PASSWORD_LENGTH = 1024
"""characters"""
EMAIL_PATTERN = re.compile(r"^[^\s@<>,;\"]{1,200}@[^\s@<>,;\"]{1,200}$")
"""one address, no spaces or line breaks (it goes into mail headers); at most 254 in all"""
MAX_TOKEN_NAME = 100
"""characters"""


def hash_secret(secret: str) -> str:
    """SHA-256 hex of a high-entropy secret (API and push tokens)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def create_user(
    session: Session, username: str, password: str, email: str = "", roles: set[Role] | None = None
) -> User:
    if not USERNAME_PATTERN.match(username):
        raise BadRequestError(
            f"username {username!r}: use 1-40 lowercase letters, digits, '-' or '_'"
        )
    if len(password) < MIN_PASSWORD_LENGTH:
        raise BadRequestError(f"password: at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise BadRequestError(f"password: at most {MAX_PASSWORD_LENGTH} characters")
    if email and (len(email) > 254 or not EMAIL_PATTERN.match(email)):
        raise BadRequestError(f"email {email[:60]!r}: one address, name@domain (at most 254)")
    if session.scalar(select(User).where(User.username == username)):
        raise ConflictError(f"user {username!r} already exists")
    user = User(
        username=username,
        email=email,
        password_hash=generate_password_hash(password, method="scrypt"),
    )
    user.roles = set(roles or ())
    session.add(user)
    session.flush()
    return user


def get_user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFoundError(f"user {username!r} does not exist")
    return user


def check_password(session: Session, username: str, password: str) -> User | None:
    """The active user with this username and password, or None."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None or not user.is_active:
        # Same work as a real check, so timing does not tell which usernames exist.
        check_password_hash(_DUMMY_HASH, password)
        return None
    return user if check_password_hash(user.password_hash, password) else None


_DUMMY_HASH = generate_password_hash("not-a-real-password", method="scrypt")


def issue_token(session: Session, user: User, name: str) -> tuple[ApiToken, str]:
    """A new token for ``user``; the clear secret is returned once and never stored."""
    if len(name) > MAX_TOKEN_NAME:
        raise BadRequestError(f"name: at most {MAX_TOKEN_NAME} characters")
    secret = new_secret()
    token = ApiToken(user=user, name=name, prefix=secret[:10], token_hash=hash_secret(secret))
    session.add(token)
    session.flush()
    return token, secret


def check_token(session: Session, secret: str) -> User | None:
    """The active user owning this unrevoked token, or None."""
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_secret(secret)))
    if token is None or token.revoked_at is not None or not token.user.is_active:
        return None
    token.last_used_at = datetime.now(UTC)
    return token.user


def revoke_token(session: Session, user: User, token_id: int) -> None:
    token = session.get(ApiToken, token_id)
    if token is None or token.user_id != user.id:
        raise NotFoundError(f"token {token_id} does not exist")
    token.revoked_at = datetime.now(UTC)
