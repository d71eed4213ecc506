"""The platform's tables. Schema changes go through Alembic (``migrations/``)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from brokerage.core.accounts import User
from brokerage.core.tables import Base, utcnow
from brokerage.submissions.models import BrokerType, BrokerVersion


class Scm(StrEnum):
    GIT = "git"
    HG = "hg"


class Repository(Base):
    __tablename__ = "repositories"
    __table_args__ = (UniqueConstraint("owner_id", "slug"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    slug: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(255))
    scm: Mapped[str] = mapped_column(String(3), default=Scm.GIT)
    is_private: Mapped[bool] = mapped_column(Boolean, default=True)
    website: Mapped[str] = mapped_column(String(500), default="")
    fork: Mapped[bool] = mapped_column(Boolean, default=False)
    push_token_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    owner: Mapped[User] = relationship()
    admins: Mapped[list[User]] = relationship(secondary="repository_admins")
    services: Mapped[list[Service]] = relationship(
        back_populates="repository", order_by="Service.id", cascade="all, delete-orphan"
    )

    @property
    def full_name(self) -> str:
        return f"{self.owner.username}/{self.slug}"


class RepositoryAdmin(Base):
    __tablename__ = "repository_admins"

    repository_id: Mapped[int] = mapped_column(
        ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )


class Service(Base):
    """A broker enabled on a repository with its field values (all encrypted at rest)."""

    __tablename__ = "services"

    id: Mapped[int] = mapped_column(primary_key=True)
    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"))
    broker_version_id: Mapped[int] = mapped_column(ForeignKey("broker_versions.id"))
    config_ciphertext: Mapped[str] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str] = mapped_column(Text, default="")
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    branches: Mapped[str] = mapped_column(Text, default="")
    """platform-level branch filter: glob patterns separated by commas; empty: every branch"""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    repository: Mapped[Repository] = relationship(back_populates="services")
    broker_version: Mapped[BrokerVersion] = relationship()

    @property
    def broker_type(self) -> BrokerType:
        return self.broker_version.broker_type


class Push(Base):
    """One push as the hook reported it, with the payload every broker of it receives."""

    __tablename__ = "pushes"
    __table_args__ = (UniqueConstraint("repository_id", "client_push_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"))
    client_push_id: Mapped[str] = mapped_column(String(36))
    user: Mapped[str] = mapped_column(String(255))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    patches: Mapped[dict[str, str] | None] = mapped_column(JSON)
    is_test: Mapped[bool] = mapped_column(Boolean, default=False)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    repository: Mapped[Repository] = relationship()
    deliveries: Mapped[list[Delivery]] = relationship(
        back_populates="push", order_by="Delivery.created_at"
    )


class SeenCommit(Base):
    """Commits a repository has already reported: a commit reaches brokers once."""

    __tablename__ = "seen_commits"

    repository_id: Mapped[int] = mapped_column(
        ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True
    )
    raw_node: Mapped[str] = mapped_column(String(40), primary_key=True)


class Delivery(Base):
    """One push handed to one service: the outbox row. Its id stays the same across
    attempts, so receivers can deduplicate."""

    __tablename__ = "deliveries"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    push_id: Mapped[int] = mapped_column(ForeignKey("pushes.id", ondelete="CASCADE"))
    service_id: Mapped[int | None] = mapped_column(ForeignKey("services.id", ondelete="SET NULL"))
    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"))
    broker_version_id: Mapped[int] = mapped_column(ForeignKey("broker_versions.id"))
    status: Mapped[str] = mapped_column(String(20), index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    push: Mapped[Push] = relationship(back_populates="deliveries")
    service: Mapped[Service | None] = relationship()
    broker_version: Mapped[BrokerVersion] = relationship()
    attempt_log: Mapped[list[DeliveryAttempt]] = relationship(
        back_populates="delivery", order_by="DeliveryAttempt.number", cascade="all, delete-orphan"
    )


class DeliveryAttempt(Base):
    """One run of a delivery in the sandbox and what it did."""

    __tablename__ = "delivery_attempts"
    __table_args__ = (UniqueConstraint("delivery_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column()
    worker: Mapped[str] = mapped_column(String(255), default="")
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    duration_seconds: Mapped[float | None] = mapped_column()
    outcome: Mapped[str] = mapped_column(String(30), default="running")
    run_status: Mapped[str] = mapped_column(String(30), default="")
    exit_code: Mapped[int | None] = mapped_column()
    message: Mapped[str] = mapped_column(Text, default="")
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    logs: Mapped[list[str]] = mapped_column(JSON, default=list)
    requests: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    stdout: Mapped[str] = mapped_column(Text, default="")
    stderr: Mapped[str] = mapped_column(Text, default="")

    delivery: Mapped[Delivery] = relationship(back_populates="attempt_log")


class UpgradeStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    REPLACED = "replaced"  # a newer approved version asked again before anyone answered


class ServiceUpgrade(Base):
    """A newer approved version asks more than the one a service is pinned to (new egress
    hosts, permissions or required fields): the service stays until an admin answers."""

    __tablename__ = "service_upgrades"

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(
        ForeignKey("services.id", ondelete="CASCADE"), index=True
    )
    from_version_id: Mapped[int] = mapped_column(ForeignKey("broker_versions.id"))
    to_version_id: Mapped[int] = mapped_column(ForeignKey("broker_versions.id"))
    status: Mapped[str] = mapped_column(String(20), default=UpgradeStatus.PENDING)
    wider: Mapped[list[str]] = mapped_column(JSON, default=list)
    """what the new version asks for beyond the old one, one sentence each"""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    note: Mapped[str] = mapped_column(Text, default="")

    service: Mapped[Service] = relationship()
    from_version: Mapped[BrokerVersion] = relationship(foreign_keys=[from_version_id])
    to_version: Mapped[BrokerVersion] = relationship(foreign_keys=[to_version_id])
    decided_by: Mapped[User | None] = relationship()


class WebSession(Base):
    """A signed-in web session, server side: the cookie carries its token, only the token's
    SHA-256 is kept here. Signing out deletes the row, so a copied cookie stops working."""

    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    """SHA-256 hex of the session token in the cookie"""
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SignInFailure(Base):
    """One failed password check, counted per account and per client address over a window
    (``signin``): ``key`` is ``account:<name>`` or ``address:<ip>``."""

    __tablename__ = "sign_in_failures"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(120), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
