"""Moving submissions through their lifecycle: submit, verify, decide, withdraw, approve.

Every move goes through :func:`move`, which checks the transition table
(:mod:`~brokerage.submissions.states`) and writes the audit row (who, when, why) in the
same transaction. Who may do what:

- the vendor who owns a broker submits and withdraws its versions;
- the platform (actor ``None``) verifies, approves built-ins and supersedes;
- a reviewer decides (approve, reject, request changes) — never on a version they
  submitted, and only on a version awaiting review.

Approving a version supersedes the broker's earlier approved one; the services pinned to
older versions are the platform's (``brokerage.platform.upgrades``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from brokerage.core.accounts import Role, User
from brokerage.sandbox.interface import BrokerBundle
from brokerage.submissions.artifacts import ArtifactStore
from brokerage.submissions.checks import gate_checks, gate_error
from brokerage.submissions.errors import NotAllowedError, PackageError, VersionError
from brokerage.submissions.manifest import validate_manifest
from brokerage.submissions.models import BrokerType, BrokerVersion, SubmissionEvent
from brokerage.submissions.package import Package, pack
from brokerage.submissions.states import DECISIONS, SubmissionState, check_transition
from brokerage.submissions.versions import require_newer

S = SubmissionState


def move(
    session: Session,
    version: BrokerVersion,
    target: SubmissionState,
    actor: User | None,
    reason: str = "",
) -> SubmissionEvent:
    """Move ``version`` to ``target`` and audit it; TransitionError if the table forbids it."""
    current = check_transition(version.state, target)
    version.state = str(target)
    event = SubmissionEvent(
        broker_version=version,
        from_state=str(current),
        to_state=str(target),
        actor=actor,
        reason=reason,
    )
    session.add(event)
    session.flush()
    return event


def record_creation(
    session: Session, version: BrokerVersion, actor: User | None, reason: str
) -> None:
    """The audit row for a version's first state (it enters the table as a draft)."""
    session.add(
        SubmissionEvent(
            broker_version=version,
            from_state=None,
            to_state=version.state,
            actor=actor,
            reason=reason,
        )
    )


# --- vendor actions --------------------------------------------------------------------


def create_submission(
    session: Session,
    store: ArtifactStore,
    vendor: User,
    pkg: Package,
    *,
    submit: bool = True,
    note: str = "",
    notes: str = "",
) -> BrokerVersion:
    """Store ``pkg`` as a new version of its broker (a draft, then submitted unless
    ``submit`` is False). Everything is checked before anything is written.

    ``notes`` are the vendor's notes to the reviewer. A version number whose earlier
    upload failed verification is not used up: the same number may be sent again, and
    that version (its audit trail and reports kept) takes the new files."""
    if not vendor.has_role(Role.VENDOR):
        raise NotAllowedError("submitting a broker needs the vendor role")
    manifest = validate_manifest(pkg.manifest)
    failed = [c for c in gate_checks(pkg) if not c.passed]
    if failed:
        raise PackageError("the package's code or manifest is refused", gate_error(failed))
    broker_type = _broker_type_for(session, vendor, manifest)
    retry = next(
        (v for v in broker_type.versions
         if v.version == manifest["version"] and v.state == S.VERIFICATION_FAILED),
        None,
    )  # fmt: skip
    counted = [v.version for v in broker_type.versions if v.state != S.VERIFICATION_FAILED]
    require_newer(manifest["name"], manifest["version"], counted)
    digest = store.put(pack(pkg.files))
    bundle = BrokerBundle(manifest["name"], manifest["version"], manifest, pkg.runtime_files())
    if retry is not None:
        retry.manifest, retry.digest, retry.artifact_digest = manifest, bundle.digest, digest
        retry.notes = notes.strip()
        target = S.SUBMITTED if submit else S.DRAFT
        move(session, retry, target, vendor, note or "sent again after failed verification")
        return retry
    version = BrokerVersion(
        broker_type=broker_type,
        version=manifest["version"],
        manifest=manifest,
        digest=bundle.digest,
        state=str(S.DRAFT),
        submitted_by=vendor,
        artifact_digest=digest,
        notes=notes.strip(),
    )
    session.add(version)
    session.flush()
    record_creation(session, version, vendor, note or "uploaded")
    if submit:
        move(session, version, S.SUBMITTED, vendor, note or "submitted for verification")
    return version


def _broker_type_for(session: Session, vendor: User, manifest: Mapping[str, Any]) -> BrokerType:
    name, title = manifest["name"], manifest["title"]
    broker_type = session.scalar(select(BrokerType).where(BrokerType.name == name))
    if broker_type is not None and (broker_type.builtin or broker_type.owner_id != vendor.id):
        owner = "the platform" if broker_type.builtin else "another vendor"
        raise VersionError(f"the broker name {name!r} belongs to {owner}; choose another name")
    _check_title_free(session, name, title)
    if broker_type is None:
        broker_type = BrokerType(name=name, title=title, builtin=False, owner=vendor)
        session.add(broker_type)
    return broker_type


def _check_title_free(session: Session, name: str, title: str) -> None:
    # the services API matches a type by title or name, ignoring case: both must stay unique
    clash = session.scalar(
        select(BrokerType).where(
            BrokerType.name != name,
            func.lower(BrokerType.title).in_([title.lower(), name.lower()])
            | func.lower(BrokerType.name).in_([title.lower()]),
        )
    )
    if clash is not None:
        raise VersionError(f"the title {title!r} is taken by the broker {clash.name!r}")


def submit_draft(session: Session, version: BrokerVersion, vendor: User) -> None:
    _require_owner(version, vendor, "submit")
    move(session, version, S.SUBMITTED, vendor, "submitted for verification")


def withdraw(session: Session, version: BrokerVersion, vendor: User, reason: str = "") -> None:
    _require_owner(version, vendor, "withdraw")
    move(session, version, S.WITHDRAWN, vendor, reason or "withdrawn by the vendor")


def _require_owner(version: BrokerVersion, user: User, action: str) -> None:
    if version.submitted_by_id != user.id:
        raise NotAllowedError(f"only the vendor who submitted {label(version)} may {action} it")


# --- reviewer actions ------------------------------------------------------------------


def decide(
    session: Session,
    version: BrokerVersion,
    reviewer: User,
    decision: SubmissionState,
    comment: str,
) -> None:
    """A reviewer's decision on a version awaiting review, with the reviewer's comment.

    Approving supersedes the broker's earlier approved version; moving its services on
    is the platform's part (``brokerage.platform.upgrades.decide``)."""
    if decision not in DECISIONS:
        raise NotAllowedError(
            f"{decision} is not a review decision (approve, reject, request changes)"
        )
    if not reviewer.has_role(Role.REVIEWER):
        raise NotAllowedError("only reviewers decide on submissions")
    if version.submitted_by_id == reviewer.id:
        raise NotAllowedError(f"nobody reviews their own submission ({label(version)} is yours)")
    if decision is not S.APPROVED and not comment.strip():
        raise NotAllowedError(f"a {decision} decision needs a comment for the vendor")
    move(session, version, decision, reviewer, comment.strip())
    if decision is S.APPROVED:
        supersede_older(session, version)


def supersede_older(session: Session, version: BrokerVersion) -> None:
    """Approving ``version`` supersedes the broker's earlier approved versions."""
    for other in version.broker_type.versions:
        if other.id != version.id and other.state == S.APPROVED:
            move(session, other, S.SUPERSEDED, None, f"superseded by {version.version}")


def label(version: BrokerVersion) -> str:
    return f"{version.broker_type.name} {version.version}"
