"""The broker catalogue: the broker types repo admins may enable, with their fields.

A type is offered when it has an approved version; a service is pinned to the version
it was enabled with. Built-in brokers enter through :func:`install_builtin_brokers`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from brokerage.core.errors import BadRequestError
from brokerage.sandbox.interface import BrokerBundle
from brokerage.submissions.builtins import BUILTIN_DIR, builtin_manifests
from brokerage.submissions.bundles import folder_files
from brokerage.submissions.models import BrokerType, BrokerVersion, SubmissionEvent
from brokerage.submissions.package import Package
from brokerage.submissions.states import SubmissionState
from brokerage.submissions.verification import verify_builtin

APPROVED = "approved"


def install_builtin_brokers(session: Session) -> int:
    """Add every built-in broker version not yet in the catalogue; returns how many were added.

    Each new version goes the vendors' way (verified, report kept) and is approved by the
    platform when its checks pass (:func:`~brokerage.submissions.verification.verify_builtin`).
    """
    added = 0
    for manifest in builtin_manifests():
        broker_type = session.scalar(select(BrokerType).where(BrokerType.name == manifest["name"]))
        if broker_type is None:
            broker_type = BrokerType(name=manifest["name"], title=manifest["title"], builtin=True)
            session.add(broker_type)
        if any(v.version == manifest["version"] for v in broker_type.versions):
            continue
        files = folder_files(BUILTIN_DIR / manifest["name"])
        version = BrokerVersion(
            broker_type=broker_type,
            version=manifest["version"],
            manifest=manifest,
            digest=BrokerBundle(manifest["name"], manifest["version"], manifest, files).digest,
            state=str(SubmissionState.DRAFT),
        )
        session.add(version)
        session.flush()
        verify_builtin(session, version, Package(files, manifest))
        added += 1
    session.flush()
    return added


def latest_approved(broker_type: BrokerType) -> BrokerVersion | None:
    approved = [v for v in broker_type.versions if v.state == APPROVED]
    return approved[-1] if approved else None


def offered(session: Session) -> list[BrokerVersion]:
    """The newest approved version of every type, ordered by title."""
    types = session.scalars(select(BrokerType).order_by(func.lower(BrokerType.title))).all()
    return [v for v in (latest_approved(t) for t in types) if v is not None]


def find_offered(session: Session, type_name: str) -> BrokerVersion:
    """The offered version whose title or name matches ``type_name``, ignoring case."""
    wanted = type_name.strip().lower()
    for version in offered(session):
        if wanted in (version.broker_type.title.lower(), version.broker_type.name.lower()):
            return version
    raise BadRequestError(f"unknown service type {type_name!r}")


def describe(version: BrokerVersion) -> dict[str, Any]:
    manifest = version.manifest
    return {
        "name": version.broker_type.name,
        "type": version.broker_type.title,
        "version": version.version,
        "description": manifest.get("description", ""),
        "vendor": manifest.get("vendor", {}),
        "fields": manifest.get("fields", []),
        "egress": manifest.get("egress", []),
    }


PERMISSION_WORDS = {
    "issues:read": "read this repository's issues",
    "issues:write": "read, open, update and comment on this repository's issues",
    "repository:read": "read each pushed commit's full diff (the code that changed)",
}
"""each platform API scope a manifest may ask for, as an admin reads it"""


def egress_in_words(hosts: list[str]) -> list[dict[str, Any]]:
    """Each egress entry as a sentence; ``flagged`` for ``*`` (any public host)."""
    words = []
    for host in hosts:
        if host == "*":
            words.append({"text": "any public host on the internet (the addresses you give "
                          "it in its settings, or any other)", "flagged": True})  # fmt: skip
        elif host.startswith("*."):
            words.append({"text": f"any host under {host[2:]} (not {host[2:]} itself)",
                          "flagged": False})  # fmt: skip
        else:
            words.append({"text": host, "flagged": False})
    return words


def approved_on(session: Session, version: BrokerVersion) -> Any:
    """When a reviewer last approved ``version`` (a datetime), or None."""
    return session.scalar(
        select(SubmissionEvent.at)
        .where(
            SubmissionEvent.broker_version_id == version.id,
            SubmissionEvent.to_state == APPROVED,
        )
        .order_by(SubmissionEvent.at.desc())
        .limit(1)
    )


def consent(session: Session, version: BrokerVersion) -> dict[str, Any]:
    """What an admin agrees to by enabling a vendor's broker: who wrote it, when it was
    approved, where it may connect, what it may do through the platform API and which of
    the service's values it receives (all of them: a run gets the service's fields)."""
    manifest = version.manifest
    permissions = list(manifest.get("permissions", []))
    return {
        **describe(version),
        "account": version.broker_type.owner.username if version.broker_type.owner else None,
        "approved_on": approved_on(session, version),
        "egress_words": egress_in_words(list(manifest.get("egress", []))),
        "permission_words": [
            PERMISSION_WORDS.get(p, f"use the platform API scope {p}") for p in permissions
        ],
        "secret_fields": [f["label"] for f in version.fields if f["type"] == "password"],
    }
