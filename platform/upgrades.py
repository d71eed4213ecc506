"""Services on older broker versions: when a newer version is approved, each service of the
broker moves on, or its repository's admin is asked.

A service whose new version asks for no more (same or fewer egress hosts and permissions,
no new required field) moves at once; otherwise a pending :class:`ServiceUpgrade` waits
for its repository's admin (:func:`answer_upgrade`). Moving decrypts and re-encrypts the
service's field values, which is why this is the platform's part and not the submission
lifecycle's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from brokerage.core.accounts import User
from brokerage.core.tables import utcnow
from brokerage.platform import notify
from brokerage.platform.encryption import FieldCipher
from brokerage.platform.models import Service, ServiceUpgrade, UpgradeStatus
from brokerage.platform.runtime import current_runtime
from brokerage.submissions import lifecycle
from brokerage.submissions.errors import NotAllowedError
from brokerage.submissions.models import BrokerVersion
from brokerage.submissions.states import SubmissionState


def decide(
    session: Session,
    version: BrokerVersion,
    reviewer: User,
    decision: SubmissionState,
    comment: str,
    cipher: FieldCipher,
) -> None:
    """A reviewer's decision (:func:`brokerage.submissions.lifecycle.decide`); an approval
    then moves the broker's services on, and the admins of those whose new version asks for
    more are mailed once the caller commits."""
    lifecycle.decide(session, version, reviewer, decision, comment)
    if decision is SubmissionState.APPROVED:
        _mail_after_commit(session, upgrade_services(session, version, cipher))


def _mail_after_commit(session: Session, waiting: list[ServiceUpgrade]) -> None:
    """Mail each pending upgrade's admins (with the page where they answer) after the
    session commits; outside an app (no runtime) the service pages still show them."""
    if not waiting:
        return
    try:
        config = current_runtime().config
    except RuntimeError:
        return
    mails = [mail for upgrade in waiting if (mail := notify.upgrade_waiting(config, upgrade))]
    event.listen(session, "after_commit", lambda _session: notify.send(config, mails), once=True)


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


def upgrade_services(
    session: Session, version: BrokerVersion, cipher: FieldCipher
) -> list[ServiceUpgrade]:
    """Move every service of the broker's older versions to ``version``, or ask its admin;
    returns the upgrades now waiting for an answer."""
    older = [v.id for v in version.broker_type.versions if v.id != version.id]
    if not older:
        return []
    waiting: list[ServiceUpgrade] = []
    services = session.scalars(select(Service).where(Service.broker_version_id.in_(older))).all()
    for service in services:
        wider = wider_permissions(service.broker_version.manifest, version.manifest)
        _replace_pending(session, service)
        if wider:
            upgrade = ServiceUpgrade(
                service=service, from_version=service.broker_version, to_version=version,
                wider=wider,
            )  # fmt: skip
            session.add(upgrade)
            waiting.append(upgrade)
        else:
            repin(service, version, cipher)
    session.flush()
    return waiting


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
