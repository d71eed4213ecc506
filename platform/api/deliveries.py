"""The delivery log: deliveries per repository, service or push, each attempt with its
outcome, duration, the broker's log lines and result, and the gateway's request log;
redeliver; send a test push; enable a service again.

Lists are newest first and paginated: ``?page=1&pagelen=50`` (pagelen at most 100).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from brokerage.core.errors import BadRequestError
from brokerage.platform import repositories
from brokerage.platform.api.auth import authenticate
from brokerage.platform.db import get_session
from brokerage.platform.deliveries import redelivery
from brokerage.platform.deliveries.log import delivery_shown, find_delivery, queue_test_push
from brokerage.platform.deliveries.states import DeliveryStatus
from brokerage.platform.models import Delivery, Repository
from brokerage.platform.paging import page
from brokerage.platform.runtime import current_runtime
from brokerage.platform.services import get_service, set_enabled

bp = Blueprint("deliveries_api", __name__, url_prefix="/1.0/repositories/<account>/<repo_slug>")


def _repo(account: str, repo_slug: str) -> Repository:
    return repositories.get_administered(get_session(), authenticate(), account, repo_slug)


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


@bp.post("/deliveries/<delivery_id>/redeliver", strict_slashes=False)
def redeliver(account: str, repo_slug: str, delivery_id: str) -> Any:
    """Run a delivery again: a finished one is redelivered (same delivery id, next attempt
    number), a retrying one's pending retry runs now; 409 when it is queued or running."""
    return _run_again(account, repo_slug, delivery_id)


@bp.post("/deliveries/<delivery_id>/retry", strict_slashes=False)
def retry(account: str, repo_slug: str, delivery_id: str) -> Any:
    """Retry now: the same as redeliver, under the name people look for."""
    return _run_again(account, repo_slug, delivery_id)


def _run_again(account: str, repo_slug: str, delivery_id: str) -> Any:
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
