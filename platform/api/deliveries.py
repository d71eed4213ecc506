"""The delivery log: deliveries per repository, service or push, each attempt with its
outcome, duration, the broker's log lines and result, and the gateway's request log;
redeliver; send a test push; enable a service again.

Lists are newest first and paginated: ``?page=1&pagelen=50`` (pagelen at most 100).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from sqlalchemy.orm import Session

from brokerage.core.errors import BadRequestError, NotFoundError
from brokerage.platform import pushes, repositories
from brokerage.platform.api.auth import authenticate
from brokerage.platform.db import get_session
from brokerage.platform.deliveries import queue as delivery_queue
from brokerage.platform.deliveries import redelivery
from brokerage.platform.deliveries.states import DeliveryStatus
from brokerage.platform.models import Delivery, DeliveryAttempt, Repository, Service
from brokerage.platform.paging import page
from brokerage.platform.runtime import current_runtime
from brokerage.platform.services import get_service

bp = Blueprint("deliveries_api", __name__, url_prefix="/1.0/repositories/<account>/<repo_slug>")


def _repo(account: str, repo_slug: str) -> Repository:
    return repositories.get_administered(get_session(), authenticate(), account, repo_slug)


def attempt_shown(attempt: DeliveryAttempt) -> dict[str, Any]:
    return {
        "number": attempt.number,
        "worker": attempt.worker,
        "outcome": attempt.outcome,
        "run_status": attempt.run_status,
        "exit_code": attempt.exit_code,
        "started_at": attempt.started_at.isoformat(),
        "finished_at": attempt.finished_at.isoformat() if attempt.finished_at else None,
        "duration_seconds": attempt.duration_seconds,
        "message": attempt.message,
        "result": attempt.result,
        "logs": attempt.logs,
        "requests": attempt.requests,
        "stdout": attempt.stdout,
        "stderr": attempt.stderr,
    }


def delivery_shown(delivery: Delivery, with_attempts: bool = False) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "id": delivery.id,
        "push": delivery.push_id,
        "service": delivery.service_id,
        "type": delivery.broker_version.broker_type.title,
        "broker_version": delivery.broker_version.version,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "last_error": delivery.last_error,
        "created_at": delivery.created_at.isoformat(),
        "next_attempt_at": delivery.next_attempt_at.isoformat()
        if delivery.next_attempt_at
        else None,
        "finished_at": delivery.finished_at.isoformat() if delivery.finished_at else None,
        "test": delivery.push.is_test,
    }
    if with_attempts:
        shown["attempt_log"] = [attempt_shown(a) for a in delivery.attempt_log]
    return shown


def find_delivery(repo: Repository, delivery_id: str) -> Delivery:
    delivery = get_session().get(Delivery, delivery_id)
    if delivery is None or delivery.repository_id != repo.id:
        raise NotFoundError(f"delivery {delivery_id} does not exist on repository {repo.full_name}")
    return delivery


@bp.get("/deliveries", strict_slashes=False)
def list_deliveries(account: str, repo_slug: str) -> Any:
    """Filter with ``?service=<id>``, ``?push=<id>``, ``?status=<status>``."""
    repo = _repo(account, repo_slug)
    query = get_session().query(Delivery).filter(Delivery.repository_id == repo.id)
    for name, column in (("service", Delivery.service_id), ("push", Delivery.push_id)):
        if request.args.get(name):
            if not request.args[name].isdigit():
                raise BadRequestError(f"{name} must be an id")
            query = query.filter(column == int(request.args[name]))
    if request.args.get("status"):
        try:
            query = query.filter(Delivery.status == str(DeliveryStatus(request.args["status"])))
        except ValueError as exc:
            raise BadRequestError(f"status: one of {', '.join(DeliveryStatus)}") from exc
    query = query.order_by(Delivery.created_at.desc(), Delivery.id)
    return jsonify([delivery_shown(d) for d in page(query)])


@bp.get("/deliveries/<delivery_id>", strict_slashes=False)
def show_delivery(account: str, repo_slug: str, delivery_id: str) -> Any:
    return jsonify(
        delivery_shown(find_delivery(_repo(account, repo_slug), delivery_id), with_attempts=True)
    )


def queue_test_push(session: Session, service: Service, username: str) -> Delivery:
    """Store a sample push (the payload's shape) for one service and queue it; commits."""
    delivery = pushes.send_test_push(
        session, service, current_runtime().config["CANON_URL"], username
    )
    session.commit()
    delivery_queue.enqueue_new(current_runtime(), [delivery])
    return delivery


def set_enabled(session: Session, service: Service, enabled: bool, username: str) -> None:
    """Enable a service again (its failure count cleared) or disable it by hand; commits."""
    service.enabled = enabled
    service.disabled_reason = "" if enabled else f"disabled by {username}"
    if enabled:
        service.consecutive_failures = 0
    session.commit()


@bp.post("/deliveries/<delivery_id>/redeliver", strict_slashes=False)
@bp.post("/deliveries/<delivery_id>/retry", strict_slashes=False)
def redeliver(account: str, repo_slug: str, delivery_id: str) -> Any:
    """Run a delivery again: a finished one is redelivered (same delivery id, next attempt
    number), a retrying one's pending retry runs now; 409 when it is queued or running."""
    delivery = find_delivery(_repo(account, repo_slug), delivery_id)
    done = redelivery.run_again(get_session(), current_runtime(), delivery)
    response = jsonify(delivery_shown(delivery) | {"action": done})
    response.status_code = 202
    return response


@bp.post("/services/<int:service_id>/redeliver", strict_slashes=False)
def redeliver_failed(account: str, repo_slug: str, service_id: int) -> Any:
    """Queue again every failed delivery of the service created at or after ``?since=``
    (ISO 8601; also a form or JSON field), at most 1,000 per call (``more``: call again)."""
    service = get_service(_repo(account, repo_slug), service_id)
    body = request.get_json(silent=True) if request.is_json else None
    given = request.args.get("since") or request.form.get("since")
    if given is None and isinstance(body, dict) and isinstance(body.get("since"), str):
        given = body["since"]
    since = redelivery.parse_since(given)
    done = redelivery.redeliver_failed(get_session(), current_runtime(), service, since)
    response = jsonify({"service": service.id, "since": since.isoformat(),
                        "redelivered": len(done.delivery_ids), "deliveries": done.delivery_ids,
                        "more": done.more})  # fmt: skip
    response.status_code = 202
    return response


@bp.post("/services/<int:service_id>/test", strict_slashes=False)
def send_test_push(account: str, repo_slug: str, service_id: int) -> Any:
    """Send a sample push (the payload's shape) to one service."""
    service = get_service(_repo(account, repo_slug), service_id)
    delivery = queue_test_push(get_session(), service, authenticate().username)
    response = jsonify(delivery_shown(delivery))
    response.status_code = 202
    return response


@bp.post("/services/<int:service_id>/enable", strict_slashes=False)
def enable_service(account: str, repo_slug: str, service_id: int) -> Any:
    """Enable a service again (after an auto-disable): one call."""
    service = get_service(_repo(account, repo_slug), service_id)
    set_enabled(get_session(), service, True, authenticate().username)
    return jsonify({"id": service.id, "enabled": True})


@bp.post("/services/<int:service_id>/disable", strict_slashes=False)
def disable_service(account: str, repo_slug: str, service_id: int) -> Any:
    service = get_service(_repo(account, repo_slug), service_id)
    set_enabled(get_session(), service, False, authenticate().username)
    return jsonify({"id": service.id, "enabled": False})
