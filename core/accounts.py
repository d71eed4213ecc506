"""Accounts: users, their global roles and their API tokens (the tables).

Who is who: a :class:`User` has global roles (vendor, reviewer, operator); being a
repo admin is a relation to a repository (``brokerage.platform.models``), not a role.
Creating users, checking passwords and issuing tokens: ``brokerage.platform.accounts``.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, DateTime, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from brokerage.core.tables import Base, utcnow


class Role(StrEnum):
    """Global roles. Repository administration is per repository, not a role."""

    VENDOR = "vendor"
    REVIEWER = "reviewer"
    OPERATOR = "operator"


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(40), unique=True)
    email: Mapped[str] = mapped_column(String(254), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    roles_text: Mapped[str] = mapped_column("roles", String(100), default="")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    tokens: Mapped[list[ApiToken]] = relationship(back_populates="user")

    @property
    def roles(self) -> frozenset[Role]:
        return frozenset(Role(r) for r in self.roles_text.split())

    @roles.setter
    def roles(self, roles: set[Role] | frozenset[Role]) -> None:
        self.roles_text = " ".join(sorted(str(r) for r in roles))

    def has_role(self, role: Role) -> bool:
        return role in self.roles


class ApiToken(Base):
    """A revocable API token. Only its SHA-256 is stored; ``prefix`` identifies it to people."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    user: Mapped[User] = relationship(back_populates="tokens")
