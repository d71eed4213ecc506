"""The table base every component's models derive from, and the clock they stamp rows with.

One :class:`Base` (one ``MetaData``) holds every table of every component, so that one
Alembic history (``brokerage/platform/migrations``) covers them all.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase


def utcnow() -> datetime:
    """Now, timezone-aware (UTC): the default of every ``created_at``-style column."""
    return datetime.now(UTC)


NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""named constraints, so that migrations can drop and alter them on SQLite too"""


class Base(DeclarativeBase):
    """Declarative base of every model."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
