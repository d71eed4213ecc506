"""What a reviewer looks at: the queue, a version's files, the diff against the version
of the same broker a reviewer last decided on (approved, rejected or changes requested),
the decisions and comments of earlier versions, and a risk summary. The REST API serves
these; the ``brokerage review`` CLI and the review pages show them.
"""

from __future__ import annotations

import difflib
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from brokerage.submissions.artifacts import ArtifactStore
from brokerage.submissions.builtins import BUILTIN_DIR
from brokerage.submissions.bundles import folder_files
from brokerage.submissions.models import BrokerVersion, SubmissionEvent, VerificationReport
from brokerage.submissions.package import read_archive
from brokerage.submissions.states import DECISIONS, SubmissionState

S = SubmissionState
EVER_APPROVED = (str(S.APPROVED), str(S.SUPERSEDED))
DECIDED = tuple(str(state) for state in DECISIONS)
BINARY = "(binary file, {size} bytes)"


def queue(session: Session) -> list[BrokerVersion]:
    """Versions awaiting review, oldest first."""
    query = select(BrokerVersion).where(BrokerVersion.state == str(S.AWAITING_REVIEW))
    return list(session.scalars(query.order_by(BrokerVersion.id)))


def files_of(version: BrokerVersion, store: ArtifactStore) -> dict[str, bytes]:
    """Every file of the version's package (fixtures and tests included)."""
    if version.broker_type.builtin:
        return folder_files(BUILTIN_DIR / version.broker_type.name)
    return dict(read_archive(store.get(version.artifact_digest or "")).files)


def texts_of(files: dict[str, bytes]) -> dict[str, str]:
    """Files as text; binary ones as a one-line placeholder."""
    shown = {}
    for path, data in sorted(files.items()):
        try:
            shown[path] = data.decode("utf-8")
        except UnicodeDecodeError:
            shown[path] = BINARY.format(size=len(data))
    return shown


def last_approved(session: Session, version: BrokerVersion) -> BrokerVersion | None:
    """The newest other version of the same broker that was approved (it may be superseded)."""
    query = select(BrokerVersion).where(
        BrokerVersion.broker_type_id == version.broker_type_id,
        BrokerVersion.id != version.id,
        BrokerVersion.state.in_(EVER_APPROVED),
    )
    return session.scalars(query.order_by(BrokerVersion.id.desc())).first()


def decision_of(session: Session, version: BrokerVersion) -> SubmissionEvent | None:
    """The reviewer's decision on ``version`` (its newest decision event), if any."""
    query = select(SubmissionEvent).where(
        SubmissionEvent.broker_version_id == version.id,
        SubmissionEvent.to_state.in_(DECIDED),
    )
    return session.scalars(query.order_by(SubmissionEvent.id.desc())).first()


def last_decided(session: Session, version: BrokerVersion) -> BrokerVersion | None:
    """The newest earlier version of the same broker a reviewer decided on (approved,
    rejected or changes requested), whatever became of it since."""
    query = (
        select(BrokerVersion)
        .join(SubmissionEvent, SubmissionEvent.broker_version_id == BrokerVersion.id)
        .where(
            BrokerVersion.broker_type_id == version.broker_type_id,
            BrokerVersion.id < version.id,
            SubmissionEvent.to_state.in_(DECIDED),
        )
    )
    found = session.scalars(query.order_by(BrokerVersion.id.desc())).first()
    return found if found is not None else last_approved(session, version)


def earlier_decisions(session: Session, version: BrokerVersion) -> list[dict[str, Any]]:
    """Every earlier version of the broker, newest first, with the reviewer's decision and
    comment on it (``None`` when nobody decided)."""
    query = select(BrokerVersion).where(
        BrokerVersion.broker_type_id == version.broker_type_id, BrokerVersion.id < version.id
    )
    shown = []
    for other in session.scalars(query.order_by(BrokerVersion.id.desc())):
        event = decision_of(session, other)
        shown.append(
            {
                "id": other.id,
                "version": other.version,
                "state": other.state,
                "decision": decision_shown(event),
            }
        )
    return shown


def decision_shown(event: SubmissionEvent | None) -> dict[str, Any] | None:
    if event is None:
        return None
    return {
        "decision": event.to_state,
        "by": event.actor_name,
        "at": event.at.isoformat(),
        "comment": event.reason,
    }


def risk_summary(session: Session, version: BrokerVersion) -> dict[str, Any]:
    """What a reviewer weighs first: egress (all of it, what is new against the version
    last decided on, ``"*"``), new permissions, password fields, and the vendor's history
    with this broker (earlier versions and their decisions)."""
    base = last_decided(session, version)
    old = base.manifest if base is not None else {}
    egress = list(version.manifest.get("egress", []))
    old_egress = set(old.get("egress", []))
    permissions = list(version.manifest.get("permissions", []))
    return {
        "against": base.version if base is not None else None,
        "egress": egress,
        "any_public_host": "*" in egress,
        "new_egress": [host for host in egress if host not in old_egress],
        "permissions": permissions,
        "new_permissions": [p for p in permissions if p not in set(old.get("permissions", []))],
        "password_fields": [f["label"] for f in version.fields if f.get("type") == "password"],
        "history": earlier_decisions(session, version),
    }


def diff(session: Session, version: BrokerVersion, store: ArtifactStore) -> dict[str, Any]:
    """A unified diff of every file against the version last decided on (or against
    nothing), with that version's state and the reviewer's comment on it."""
    base = last_decided(session, version)
    new = texts_of(files_of(version, store))
    old = texts_of(files_of(base, store)) if base is not None else {}
    old_name = f"{base.version}" if base is not None else "nothing decided yet"
    chunks: list[str] = []
    for path in sorted(set(old) | set(new)):
        chunks.extend(
            difflib.unified_diff(
                old.get(path, "").splitlines(keepends=True),
                new.get(path, "").splitlines(keepends=True),
                fromfile=f"a/{path} ({old_name})" if path in old else "/dev/null",
                tofile=f"b/{path} ({version.version})" if path in new else "/dev/null",
            )
        )
    text = "".join(line if line.endswith("\n") else line + "\n" for line in chunks)
    decision = decision_shown(decision_of(session, base)) if base is not None else None
    return {
        "against": base.version if base is not None else None,
        "against_id": base.id if base else None,
        "against_state": base.state if base is not None else None,
        "against_decision": decision,
        "diff": text,
    }


def latest_report(session: Session, version: BrokerVersion) -> VerificationReport | None:
    query = select(VerificationReport).where(VerificationReport.broker_version_id == version.id)
    return session.scalars(query.order_by(VerificationReport.id.desc())).first()


def events_of(session: Session, version: BrokerVersion) -> list[SubmissionEvent]:
    query = select(SubmissionEvent).where(SubmissionEvent.broker_version_id == version.id)
    return list(session.scalars(query.order_by(SubmissionEvent.id)))
