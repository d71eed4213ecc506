"""Vendor submissions as the platform shows them, to the API and the pages alike: who may
see a version (its submitter, reviewers, operators; to anyone else it does not exist), how
one is described, the HTTP status of each submission error, and the review decisions by
the names forms and the API use."""

from __future__ import annotations

from typing import Any

from brokerage.core.accounts import Role, User
from brokerage.core.errors import NotFoundError
from brokerage.platform.db import get_session
from brokerage.submissions import review
from brokerage.submissions.errors import (
    ArtifactError,
    ManifestError,
    NotAllowedError,
    PackageError,
    SubmissionError,
    TransitionError,
    VersionError,
)
from brokerage.submissions.models import BrokerVersion
from brokerage.submissions.states import SubmissionState

STATUS: dict[type[SubmissionError], int] = {
    ManifestError: 400,
    PackageError: 400,
    VersionError: 409,
    TransitionError: 409,
    NotAllowedError: 403,
    ArtifactError: 500,
}
"""HTTP status of each submission error (400 for the rest)"""


def status_of(exc: SubmissionError) -> int:
    """The HTTP status a submission error answers with."""
    return next((code for kind, code in STATUS.items() if isinstance(exc, kind)), 400)


DECISIONS = {
    "approve": SubmissionState.APPROVED,
    "reject": SubmissionState.REJECTED,
    "request_changes": SubmissionState.CHANGES_REQUESTED,
}


def visible_version(user: User, version_id: int) -> BrokerVersion:
    version = get_session().get(BrokerVersion, version_id)
    if version is None or not (version.submitted_by_id == user.id or is_staff(user)):
        raise NotFoundError(f"submission {version_id} does not exist")
    return version


def is_staff(user: User) -> bool:
    return user.has_role(Role.REVIEWER) or user.has_role(Role.OPERATOR)


def describe(version: BrokerVersion, detail: bool = False) -> dict[str, Any]:
    session = get_session()
    report = review.latest_report(session, version)
    body: dict[str, Any] = {
        "id": version.id,
        "name": version.broker_type.name,
        "title": version.broker_type.title,
        "version": version.version,
        "state": version.state,
        "submitted_by": version.submitted_by.username if version.submitted_by else "platform",
        "created_at": version.created_at.isoformat(),
        "digest": version.digest,
        "artifact_digest": version.artifact_digest,
        "report": None
        if report is None
        else {"id": report.id, "passed": report.passed, "finished_at": iso(report.finished_at)},
        "decision": review.decision_shown(review.decision_of(session, version)),
    }
    if detail:
        body["notes"] = version.notes
        body["manifest"] = version.manifest
        body["events"] = [
            {
                "from": e.from_state,
                "to": e.to_state,
                "by": e.actor_name,
                "at": e.at.isoformat(),
                "reason": e.reason,
            }
            for e in review.events_of(session, version)
        ]
    return body


def iso(value: Any) -> str | None:
    """A timestamp as ISO 8601, or None."""
    return value.isoformat() if value is not None else None
