"""The vendor's pages: my brokers (grouped by broker, each led by the reviewer's latest
decision and comment, then every version I submitted, its state and whether it passed
verification), and one version led by the reviewer's decision and comment, then its
verification report, sandbox transcript and audit trail.

Submitting a draft and withdrawing call ``submissions.lifecycle`` as the REST API does;
who may see a submission is the API's rule (``platform.submitted.visible_version``).
"""

from __future__ import annotations

from typing import Any

from flask import flash, render_template, request
from sqlalchemy import select

from brokerage.core.accounts import Role
from brokerage.platform.db import get_session
from brokerage.platform.deliveries import verification_jobs as tasks
from brokerage.platform.paging import paginate
from brokerage.platform.submitted import describe, status_of, visible_version
from brokerage.platform.web.support import (
    back,
    runtime,
    signed_in,
    web_blueprint,
    with_role,
)
from brokerage.submissions import lifecycle, review
from brokerage.submissions.errors import SubmissionError
from brokerage.submissions.models import BrokerVersion
from brokerage.submissions.states import TRANSITIONS, SubmissionState

bp = web_blueprint("web_vendor", __name__, url_prefix="/vendor")


def submission_error_page(exc: SubmissionError) -> Any:
    """A submission error as an HTML page, with the API's status for its kind."""
    status = status_of(exc)
    get_session().rollback()
    return render_template("error.html", status=status, message=str(exc)), status


bp.register_error_handler(SubmissionError, submission_error_page)


def submission_context(version: BrokerVersion) -> dict[str, Any]:
    """What the vendor's and the reviewer's pages both show of one version."""
    session = get_session()
    return {
        "version": version,
        "shown": describe(version, detail=True),
        "report": review.latest_report(session, version),
        "events": review.events_of(session, version),
        "decision": review.decision_shown(review.decision_of(session, version)),
        "may_withdraw": SubmissionState.WITHDRAWN in TRANSITIONS[SubmissionState(version.state)],
    }


@bp.get("/", strict_slashes=False)
def brokers() -> Any:
    vendor = with_role(Role.VENDOR)
    stmt = (
        select(BrokerVersion)
        .where(BrokerVersion.submitted_by_id == vendor.id)
        .order_by(BrokerVersion.id.desc())
    )
    versions = paginate(get_session(), stmt, describe)
    return render_template(
        "vendor/brokers.html", versions=versions, brokers=by_broker(versions.items)
    )


def by_broker(versions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Versions (newest first) grouped by broker, each group with its latest decision."""
    groups: dict[str, dict[str, Any]] = {}
    for shown in versions:
        group = groups.setdefault(
            shown["name"],
            {"name": shown["name"], "title": shown["title"], "versions": [], "decision": None},
        )
        group["versions"].append(shown)
        if group["decision"] is None and shown["decision"] is not None:
            group["decision"] = {
                **shown["decision"],
                "id": shown["id"],
                "version": shown["version"],
            }
    return list(groups.values())


@bp.get("/submissions/<int:version_id>")
def submission(version_id: int) -> Any:
    version = visible_version(signed_in(), version_id)
    return render_template("vendor/submission.html", **submission_context(version))


@bp.post("/submissions/<int:version_id>/submit")
def submit(version_id: int) -> Any:
    user = signed_in()
    version = visible_version(user, version_id)
    lifecycle.submit_draft(get_session(), version, user)
    get_session().commit()
    queued = tasks.enqueue(runtime(), version.id)
    flash(
        "Submitted for verification."
        if queued
        else "Submitted; verification could not be queued yet (Redis is down).",
        "success",
    )
    return back("web_vendor.submission", version_id=version_id)


@bp.post("/submissions/<int:version_id>/withdraw")
def withdraw(version_id: int) -> Any:
    user = signed_in()
    version = visible_version(user, version_id)
    lifecycle.withdraw(get_session(), version, user, request.form.get("reason", "").strip())
    get_session().commit()
    flash(f"Withdrew {version.broker_type.name} {version.version}.", "success")
    return back("web_vendor.submission", version_id=version_id)
