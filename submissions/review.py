"""What a reviewer looks at: the queue, a version's files, and the diff against the broker's
last approved version. The REST API serves these; the ``brokerage review`` CLI shows them.
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
from brokerage.submissions.states import SubmissionState

S = SubmissionState
EVER_APPROVED = (str(S.APPROVED), str(S.SUPERSEDED))
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


def diff(session: Session, version: BrokerVersion, store: ArtifactStore) -> dict[str, Any]:
    """A unified diff of every file against the last approved version (or against nothing)."""
    base = last_approved(session, version)
    new = texts_of(files_of(version, store))
    old = texts_of(files_of(base, store)) if base is not None else {}
    old_name = f"{base.version}" if base is not None else "nothing approved yet"
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
    return {
        "against": base.version if base is not None else None,
        "against_id": base.id if base else None,
        "diff": text,
    }


def latest_report(session: Session, version: BrokerVersion) -> VerificationReport | None:
    query = select(VerificationReport).where(VerificationReport.broker_version_id == version.id)
    return session.scalars(query.order_by(VerificationReport.id.desc())).first()


def events_of(session: Session, version: BrokerVersion) -> list[SubmissionEvent]:
    query = select(SubmissionEvent).where(SubmissionEvent.broker_version_id == version.id)
    return list(session.scalars(query.order_by(SubmissionEvent.id)))
