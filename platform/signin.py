"""The sign-in rate limit: failed password checks counted per account and per client
address over a sliding window (``SIGNIN_WINDOW`` seconds). Once either count reaches its
limit (``SIGNIN_MAX_ACCOUNT_FAILURES``, ``SIGNIN_MAX_ADDRESS_FAILURES``), password checks
for it are refused (429) without being tried — a right password too — until old failures
leave the window. API tokens and push tokens are long random secrets and are not counted.

Failures are rows in the database (``SignInFailure``), written in their own transaction
(the request's own is rolled back when it fails), so they count across processes and
survive restarts; rows older than the window are deleted as new ones arrive.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from brokerage.core.errors import ApiError
from brokerage.core.tables import utcnow
from brokerage.platform.models import SignInFailure


class TooManySignInsError(ApiError):
    """Too many failed sign-ins for an account or from an address: try again later."""

    status = 429


def _keys(username: str, address: str | None) -> list[str]:
    return [f"account:{username[:100]}", f"address:{(address or 'unknown')[:100]}"]


def check_allowed(
    session: Session, config: dict[str, Any], username: str, address: str | None
) -> None:
    """Raise TooManySignInsError when the account or the address is over its limit."""
    since = utcnow() - timedelta(seconds=float(config["SIGNIN_WINDOW"]))
    limits = (
        int(config["SIGNIN_MAX_ACCOUNT_FAILURES"]),
        int(config["SIGNIN_MAX_ADDRESS_FAILURES"]),
    )
    for key, limit, what in zip(
        _keys(username, address), limits, ("account", "address"), strict=True
    ):
        count = session.scalar(
            select(func.count()).where(SignInFailure.key == key, SignInFailure.at > since)
        )
        if (count or 0) >= limit:
            minutes = max(1, round(float(config["SIGNIN_WINDOW"]) / 60))
            raise TooManySignInsError(
                f"too many failed sign-ins for this {what}: wait up to {minutes} minutes "
                "and try again"
            )


def record_failure(
    sessions: sessionmaker[Session], config: dict[str, Any], username: str, address: str | None
) -> None:
    """Count one failed password check (its own transaction)."""
    since = utcnow() - timedelta(seconds=float(config["SIGNIN_WINDOW"]))
    with sessions() as session:
        session.execute(delete(SignInFailure).where(SignInFailure.at <= since))
        session.add_all(SignInFailure(key=key) for key in _keys(username, address))
        session.commit()
