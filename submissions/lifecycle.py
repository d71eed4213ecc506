"""Moving submissions through their lifecycle: submit, verify, decide, withdraw, approve.

Every move goes through :func:`move`, which checks the transition table
(:mod:`~brokerage.submissions.states`) and writes the audit row (who, when, why) in the
same transaction. Who may do what:

- the vendor who owns a broker submits and withdraws its versions;
- the platform (actor ``None``) verifies, approves built-ins and supersedes;
- a reviewer decides (approve, reject, request changes) — never on a version they
  submitted, and only on a version awaiting review.

Approving a version supersedes the broker's earlier approved one and moves services on
(:func:`upgrade_services`): a service whose new version asks for no more (same or fewer
egress hosts and permissions, no new required field) moves at once; otherwise a pending
:class:`~brokerage.submissions.models.ServiceUpgrade` waits for its repository's admin.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from brokerage.core.accounts import Role, User
from brokerage.core.tables import utcnow
from brokerage.platform.encryption import FieldCipher
from brokerage.platform.models import Service, ServiceUpgrade, UpgradeStatus
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
) -> BrokerVersion:
    """Store ``pkg`` as a new version of its broker (a draft, then submitted unless
    ``submit`` is False). Everything is checked before anything is written."""
    if not vendor.has_role(Role.VENDOR):
        raise NotAllowedError("submitting a broker needs the vendor role")
    manifest = validate_manifest(pkg.manifest)
    failed = [c for c in gate_checks(pkg) if not c.passed]
    if failed:
        raise PackageError("the package's code or manifest is refused", gate_error(failed))
    broker_type = _broker_type_for(session, vendor, manifest)
    require_newer(manifest["name"], manifest["version"], [v.version for v in broker_type.versions])
    digest = store.put(pack(pkg.files))
    bundle = BrokerBundle(manifest["name"], manifest["version"], manifest, pkg.runtime_files())
    version = BrokerVersion(
        broker_type=broker_type,
        version=manifest["version"],
        manifest=manifest,
        digest=bundle.digest,
        state=str(S.DRAFT),
        submitted_by=vendor,
        artifact_digest=digest,
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
    cipher: FieldCipher,
) -> None:
    """A reviewer's decision on a version awaiting review, with the reviewer's comment."""
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
        approved(session, version, cipher)


def approved(session: Session, version: BrokerVersion, cipher: FieldCipher) -> None:
    """What approval brings: earlier approved versions superseded, services moved on."""
    for other in version.broker_type.versions:
        if other.id != version.id and other.state == S.APPROVED:
            move(session, other, S.SUPERSEDED, None, f"superseded by {version.version}")
    upgrade_services(session, version, cipher)


# --- services on older versions ---------------------------------------------------------


def wider_permissions(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What ``new`` asks for beyond ``old``: egress hosts, permissions, required fields."""
    wider = []
    old_egress, new_egress = set(old.get("egress", [])), set(new.get("egress", []))
    if "*" not in old_egress:
        for host in sorted(new_egress - old_egress):
            wider.append(f"egress to {'any public host' if host == '*' else host}")
    for scope in sorted(set(new.get("permissions", [])) - set(old.get("permissions", []))):
        wider.append(f"permission {scope}")
    old_required = {f["label"].lower() for f in old.get("fields", []) if f.get("required")}
    for f in new.get("fields", []):
        if f.get("required") and f["label"].lower() not in old_required:
            wider.append(f"required field {f['label']}")
    return wider


def upgrade_services(session: Session, version: BrokerVersion, cipher: FieldCipher) -> None:
    """Move every service of the broker's older versions to ``version``, or ask its admin."""
    older = [v.id for v in version.broker_type.versions if v.id != version.id]
    if not older:
        return
    services = session.scalars(select(Service).where(Service.broker_version_id.in_(older))).all()
    for service in services:
        wider = wider_permissions(service.broker_version.manifest, version.manifest)
        _replace_pending(session, service)
        if wider:
            session.add(
                ServiceUpgrade(
                    service=service,
                    from_version=service.broker_version,
                    to_version=version,
                    wider=wider,
                )
            )
        else:
            repin(service, version, cipher)
    session.flush()


def _replace_pending(session: Session, service: Service) -> None:
    for upgrade in pending_upgrades(session, service):
        upgrade.status = str(UpgradeStatus.REPLACED)
        upgrade.decided_at = utcnow()


def pending_upgrades(session: Session, service: Service) -> list[ServiceUpgrade]:
    return list(
        session.scalars(
            select(ServiceUpgrade).where(
                ServiceUpgrade.service_id == service.id,
                ServiceUpgrade.status == str(UpgradeStatus.PENDING),
            )
        )
    )


def repin(service: Service, version: BrokerVersion, cipher: FieldCipher) -> None:
    """Pin ``service`` to ``version``, keeping the values of fields both versions have."""
    values = cipher.decrypt(service.config_ciphertext)
    by_label = {label.lower(): value for label, value in values.items()}
    kept: dict[str, Any] = {}
    for f in version.fields:
        default = f.get("default")
        fallback = default if default is not None else (False if f["type"] == "boolean" else "")
        kept[f["label"]] = by_label.get(f["label"].lower(), fallback)
    service.config_ciphertext = cipher.encrypt(kept)
    service.broker_version = version


def answer_upgrade(
    session: Session, upgrade: ServiceUpgrade, admin: User, accept: bool, cipher: FieldCipher
) -> None:
    """The repository admin's answer to a pending permission upgrade."""
    if upgrade.status != UpgradeStatus.PENDING:
        raise NotAllowedError(f"this upgrade is {upgrade.status}, not pending")
    upgrade.status = str(UpgradeStatus.ACCEPTED if accept else UpgradeStatus.DECLINED)
    upgrade.decided_at = utcnow()
    upgrade.decided_by = admin
    if accept:
        repin(upgrade.service, upgrade.to_version, cipher)
    session.flush()


def label(version: BrokerVersion) -> str:
    return f"{version.broker_type.name} {version.version}"
