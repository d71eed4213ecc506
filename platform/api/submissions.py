"""Vendor submissions, reviews and service permission upgrades, over REST.

Vendors (role ``vendor``)::

    POST /1.0/submissions                 upload a package archive (body, or multipart
                                          field ``package``); ?draft=true keeps it a draft;
                                          ``notes`` (query or multipart field): notes to
                                          the reviewer
    GET  /1.0/submissions                 my submissions (reviewers: every one; ?state=)
    GET  /1.0/submissions/schema          the manifest's JSON Schema
    GET  /1.0/submissions/<id>            one submission with its audit trail
    GET  /1.0/submissions/<id>/report     the newest verification report (with transcript)
    GET  /1.0/submissions/<id>/files      every file, as text
    GET  /1.0/submissions/<id>/diff       unified diff against the version last decided
                                          on, and the risk summary
    GET  /1.0/vendor/brokers/<name>/runs  my broker's runs on the platform, redacted
    POST /1.0/submissions/<id>/submit     a draft goes to verification
    POST /1.0/submissions/<id>/verify     queue verification again (when Redis was down)
    POST /1.0/submissions/<id>/withdraw   {"reason": ...}

Reviewers (role ``reviewer``)::

    GET  /1.0/reviews                      the queue: versions awaiting review, oldest first
    POST /1.0/submissions/<id>/decision    {"decision": "approve"|"reject"|"request_changes",
                                            "comment": ...}

Repository admins::

    GET  /1.0/repositories/<o>/<s>/services/<id>/upgrade   the pending permission upgrade
    POST /1.0/repositories/<o>/<s>/services/<id>/upgrade   action=accept|decline

A submission is visible to its submitter, reviewers and operators; to anyone else it does
not exist (404). Submission errors answer with a status by kind (``platform.submitted``)
and, for manifest and package problems, every problem in ``error.problems``.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy import select

from brokerage.core.accounts import Role, User
from brokerage.core.errors import BadRequestError, NotFoundError
from brokerage.platform import notify, repositories, services, upgrades, vendor_runs
from brokerage.platform.api.auth import authenticate, require_role
from brokerage.platform.api.support import cipher, flag, json_or_form
from brokerage.platform.db import get_session
from brokerage.platform.deliveries import verification_jobs as tasks
from brokerage.platform.models import ServiceUpgrade, UpgradeStatus
from brokerage.platform.runtime import Runtime
from brokerage.platform.submitted import (
    DECISIONS,
    describe,
    is_staff,
    iso,
    status_of,
    visible_version,
)
from brokerage.submissions import lifecycle, review
from brokerage.submissions.artifacts import ArtifactStore, store_from_config
from brokerage.submissions.errors import (
    ManifestError,
    PackageError,
    SubmissionError,
    TransitionError,
)
from brokerage.submissions.manifest import manifest_schema
from brokerage.submissions.models import BrokerVersion
from brokerage.submissions.package import read_archive
from brokerage.submissions.states import SubmissionState

bp = Blueprint("submissions_api", __name__, url_prefix="/1.0")

NOTES_CHARS = 4000
"""the longest notes to the reviewer a submission may carry"""


@bp.errorhandler(SubmissionError)
def submission_error(exc: SubmissionError) -> Any:
    status = status_of(exc)
    body: dict[str, Any] = {"status": status, "message": str(exc)}
    if isinstance(exc, ManifestError):
        body["problems"] = exc.messages
    elif isinstance(exc, PackageError):
        body["message"], body["problems"] = exc.summary, exc.problems
    get_session().rollback()
    response = jsonify({"error": body})
    response.status_code = status
    return response


def _runtime() -> Runtime:
    found: Runtime = current_app.extensions["brokerage.runtime"]
    return found


def _store() -> ArtifactStore:
    return store_from_config(dict(current_app.config))


def _upload_bytes() -> bytes:
    if request.files:
        upload = request.files.get("package")
        if upload is None:
            raise BadRequestError("multipart upload: put the archive in the field 'package'")
        return upload.read()
    data = request.get_data(cache=False)
    if not data:
        raise BadRequestError("send the package archive (.tar.gz or .zip) as the request body")
    return data


@bp.post("/submissions", strict_slashes=False)
def upload() -> Any:
    vendor = require_role(Role.VENDOR)
    draft = flag(dict(request.args), "draft", False)
    notes = str(request.form.get("notes") or request.args.get("notes") or "")
    if len(notes) > NOTES_CHARS:
        raise BadRequestError(f"notes: at most {NOTES_CHARS} characters, got {len(notes)}")
    pkg = read_archive(_upload_bytes())
    session = get_session()
    version = lifecycle.create_submission(
        session, _store(), vendor, pkg, submit=not draft, notes=notes
    )
    session.commit()
    queued = not draft and tasks.enqueue(_runtime(), version.id)
    response = jsonify({**describe(version, detail=True), "queued": queued})
    response.status_code = 201
    return response


@bp.get("/submissions", strict_slashes=False)
def list_submissions() -> Any:
    user = authenticate()
    query = select(BrokerVersion).where(BrokerVersion.submitted_by_id.is_not(None))
    if not is_staff(user):
        query = query.where(BrokerVersion.submitted_by_id == user.id)
    if request.args.get("state"):
        query = query.where(BrokerVersion.state == request.args["state"])
    found = get_session().scalars(query.order_by(BrokerVersion.id))
    return jsonify([describe(v) for v in found])


@bp.get("/submissions/schema")
def schema() -> Any:
    return jsonify(manifest_schema())


@bp.get("/submissions/<int:version_id>")
def show(version_id: int) -> Any:
    return jsonify(describe(visible_version(authenticate(), version_id), detail=True))


@bp.get("/submissions/<int:version_id>/report")
def report(version_id: int) -> Any:
    version = visible_version(authenticate(), version_id)
    found = review.latest_report(get_session(), version)
    if found is None:
        raise NotFoundError(
            f"submission {version_id} has no verification report yet ({version.state})"
        )
    return jsonify(
        {
            "id": found.id,
            "submission": version.id,
            "passed": found.passed,
            "backend": found.backend,
            "started_at": iso(found.started_at),
            "finished_at": iso(found.finished_at),
            "checks": found.checks,
            "transcript": found.transcript,
            "decision": review.decision_shown(review.decision_of(get_session(), version)),
        }
    )


@bp.get("/submissions/<int:version_id>/files")
def files(version_id: int) -> Any:
    version = visible_version(authenticate(), version_id)
    return jsonify(review.texts_of(review.files_of(version, _store())))


@bp.get("/submissions/<int:version_id>/diff")
def diff(version_id: int) -> Any:
    version = visible_version(authenticate(), version_id)
    session = get_session()
    return jsonify({**review.diff(session, version, _store()),
                    "risk": review.risk_summary(session, version)})  # fmt: skip


@bp.post("/submissions/<int:version_id>/submit")
def submit(version_id: int) -> Any:
    user = authenticate()
    version = visible_version(user, version_id)
    lifecycle.submit_draft(get_session(), version, user)
    get_session().commit()
    return jsonify({**describe(version), "queued": tasks.enqueue(_runtime(), version.id)})


@bp.post("/submissions/<int:version_id>/verify")
def verify(version_id: int) -> Any:
    user = authenticate()
    version = visible_version(user, version_id)
    if version.state != SubmissionState.SUBMITTED:
        raise TransitionError(
            f"only a submitted version is queued for verification; this one is {version.state}"
        )
    return jsonify({**describe(version), "queued": tasks.enqueue(_runtime(), version.id)})


@bp.post("/submissions/<int:version_id>/withdraw")
def withdraw(version_id: int) -> Any:
    user = authenticate()
    version = visible_version(user, version_id)
    reason = str(json_or_form().get("reason", ""))
    lifecycle.withdraw(get_session(), version, user, reason)
    get_session().commit()
    return jsonify(describe(version, detail=True))


@bp.get("/reviews", strict_slashes=False)
def review_queue() -> Any:
    require_role(Role.REVIEWER)
    return jsonify([describe(v) for v in review.queue(get_session())])


@bp.post("/submissions/<int:version_id>/decision")
def decision(version_id: int) -> Any:
    user = authenticate()
    version = visible_version(user, version_id)
    params = json_or_form()
    choice = str(params.get("decision", "")).strip().lower().replace("-", "_").replace(" ", "_")
    if choice not in DECISIONS:
        raise BadRequestError(f"decision: one of {', '.join(DECISIONS)}, got {choice!r}")
    comment = str(params.get("comment", ""))
    upgrades.decide(get_session(), version, user, DECISIONS[choice], comment, cipher())
    get_session().commit()
    mailed = notify.submission_decided(_runtime(), version, comment.strip())
    return jsonify({**describe(version, detail=True), "mailed": mailed})


@bp.get("/vendor/brokers/<name>/runs")
def broker_runs(name: str) -> Any:
    """The vendor's own broker's runs on the platform, newest first, redacted."""
    vendor = require_role(Role.VENDOR)
    limit = vendor_runs.clamp_limit(request.args.get("limit"))
    runs = vendor_runs.runs_of(get_session(), vendor, name, cipher(), limit)
    return jsonify(runs)


# --- permission upgrades of services --------------------------------------------------

UPGRADE_PATH = "/repositories/<account>/<repo_slug>/services/<int:service_id>/upgrade"


def _describe_upgrade(upgrade: ServiceUpgrade) -> dict[str, Any]:
    return {
        "id": upgrade.id,
        "service": upgrade.service_id,
        "status": upgrade.status,
        "from_version": upgrade.from_version.version,
        "to_version": upgrade.to_version.version,
        "wider": upgrade.wider,
        "created_at": upgrade.created_at.isoformat(),
        "decided_at": iso(upgrade.decided_at),
        "decided_by": upgrade.decided_by.username if upgrade.decided_by else None,
    }


def _pending(account: str, repo_slug: str, service_id: int) -> tuple[User, ServiceUpgrade]:
    user = authenticate()
    repo = repositories.get_administered(get_session(), user, account, repo_slug)
    service = services.get_service(repo, service_id)
    pending = upgrades.pending_upgrades(get_session(), service)
    if not pending:
        raise NotFoundError(f"service {service_id} has no pending permission upgrade")
    return user, pending[-1]


@bp.get(UPGRADE_PATH)
def show_upgrade(account: str, repo_slug: str, service_id: int) -> Any:
    _user, upgrade = _pending(account, repo_slug, service_id)
    return jsonify(_describe_upgrade(upgrade))


@bp.post(UPGRADE_PATH)
def answer_upgrade(account: str, repo_slug: str, service_id: int) -> Response:
    user, upgrade = _pending(account, repo_slug, service_id)
    action = str(json_or_form().get("action", "")).strip().lower()
    if action not in ("accept", "decline"):
        raise BadRequestError(f"action: accept or decline, got {action!r}")
    upgrades.answer_upgrade(get_session(), upgrade, user, action == "accept", cipher())
    get_session().commit()
    body = _describe_upgrade(upgrade)
    body["service_version"] = upgrade.service.broker_version.version
    assert body["status"] in (UpgradeStatus.ACCEPTED, UpgradeStatus.DECLINED)
    return jsonify(body)
