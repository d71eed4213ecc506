"""Tables of brokers and their submissions: broker types and versions, verification
reports and the lifecycle audit.

A submission *is* a :class:`BrokerVersion` (its ``state``, submitter and artifact live
there); the other tables hang off it. Services pin a version (``brokerage.platform``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from brokerage.core.accounts import User
from brokerage.core.tables import Base, utcnow


class BrokerType(Base):
    """A kind of broker repo admins may enable (POST, Email, a vendor's broker...)."""

    __tablename__ = "broker_types"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40), unique=True)
    title: Mapped[str] = mapped_column(String(100))
    builtin: Mapped[bool] = mapped_column(Boolean, default=False)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    """the vendor whose broker this is (None: the platform's, a built-in)"""

    versions: Mapped[list[BrokerVersion]] = relationship(
        back_populates="broker_type", order_by="BrokerVersion.id"
    )
    owner: Mapped[User | None] = relationship()


class BrokerVersion(Base):
    """One version of a broker: its manifest and the digest of its files (the trust unit).

    ``state`` holds a :class:`~brokerage.submissions.states.SubmissionState`; only approved
    versions are offered. A vendor version's files are the artifact ``artifact_digest``
    (the package archive, in the artifact store); a built-in's come from its folder.
    """

    __tablename__ = "broker_versions"
    __table_args__ = (UniqueConstraint("broker_type_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    broker_type_id: Mapped[int] = mapped_column(ForeignKey("broker_types.id"))
    version: Mapped[str] = mapped_column(String(40))
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)
    digest: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(30), default="approved", index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    submitted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    """who submitted it (None: the platform installed it)"""
    artifact_digest: Mapped[str | None] = mapped_column(String(64))
    """sha256 of the package archive in the artifact store (None for built-ins)"""
    notes: Mapped[str] = mapped_column(Text, default="", server_default="")
    """the vendor's notes to the reviewer, given at submission"""

    broker_type: Mapped[BrokerType] = relationship(back_populates="versions")
    submitted_by: Mapped[User | None] = relationship()

    @property
    def fields(self) -> list[dict[str, Any]]:
        return list(self.manifest.get("fields", []))


class VerificationReport(Base):
    """What the automated checks found for one version; the newest one counts."""

    __tablename__ = "verification_reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    broker_version_id: Mapped[int] = mapped_column(
        ForeignKey("broker_versions.id", ondelete="CASCADE"), index=True
    )
    passed: Mapped[bool] = mapped_column(Boolean)
    checks: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    """one entry per check: ``{"name", "passed", "findings": [...]}``"""
    transcript: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    """one entry per fixture run in the sandbox: outcome, output, egress, receiver log"""
    backend: Mapped[str] = mapped_column(String(40), default="")
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    broker_version: Mapped[BrokerVersion] = relationship()


class SubmissionEvent(Base):
    """One lifecycle move of one version: the audit trail (who, when, why)."""

    __tablename__ = "submission_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    broker_version_id: Mapped[int] = mapped_column(
        ForeignKey("broker_versions.id", ondelete="CASCADE"), index=True
    )
    from_state: Mapped[str | None] = mapped_column(String(30))
    to_state: Mapped[str] = mapped_column(String(30))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    """None: the platform itself (verification jobs, built-in installs, supersession)"""
    reason: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    broker_version: Mapped[BrokerVersion] = relationship()
    actor: Mapped[User | None] = relationship()

    @property
    def actor_name(self) -> str:
        return self.actor.username if self.actor is not None else "platform"
