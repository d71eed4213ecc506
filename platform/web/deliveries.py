"""A repository's deliveries: the list (by service and status, paginated), one delivery
with every attempt (outcome, duration, the broker's log lines, the gateway's request log,
stdout and stderr), the redeliver / "retry now" button, and on a service's list the
"redeliver every failed delivery since" form.

The rows are the REST API's own (``deliveries.log.delivery_shown`` / ``attempt_shown``)
and running again is :mod:`brokerage.platform.deliveries.redelivery`'s, as in the API:
one code path per action.
"""

from __future__ import annotations

from typing import Any

from flask import flash, render_template, request
from sqlalchemy import select

from brokerage.core.errors import BadRequestError
from brokerage.platform import repositories
from brokerage.platform.db import get_session
from brokerage.platform.deliveries import redelivery
from brokerage.platform.deliveries.log import delivery_shown, find_delivery
from brokerage.platform.deliveries.states import DeliveryStatus
from brokerage.platform.models import Delivery, Repository
from brokerage.platform.paging import paginate
from brokerage.platform.services import get_service
from brokerage.platform.web.support import back, runtime, signed_in, web_blueprint

bp = web_blueprint("web_deliveries", __name__, url_prefix="/repos/<account>/<repo_slug>")


def delivery_row(delivery: Delivery) -> dict[str, Any]:
    """The API's view of a delivery plus its latest attempt's duration and message."""
    last = delivery.attempt_log[-1] if delivery.attempt_log else None
    return {
        **delivery_shown(delivery),
        "duration_seconds": last.duration_seconds if last else None,
        "message": last.message if last else "",
    }


def _repo(account: str, repo_slug: str) -> Repository:
    return repositories.get_administered(get_session(), signed_in(), account, repo_slug)


def _status_filter() -> str:
    wanted = request.args.get("status", "")
    if wanted and wanted not in set(DeliveryStatus):
        raise BadRequestError(f"status: one of {', '.join(DeliveryStatus)}")
    return wanted


@bp.get("/deliveries")
def list_deliveries(account: str, repo_slug: str) -> Any:
    repo = _repo(account, repo_slug)
    status = _status_filter()
    stmt = select(Delivery).where(Delivery.repository_id == repo.id)
    if status:
        stmt = stmt.where(Delivery.status == status)
    service = request.args.get("service", "")
    if service.isdigit():
        stmt = stmt.where(Delivery.service_id == int(service))
    stmt = stmt.order_by(Delivery.created_at.desc(), Delivery.id)
    return render_template(
        "repos/deliveries.html",
        repo=repo,
        status=status,
        service=service,
        statuses=list(DeliveryStatus),
        deliveries=paginate(get_session(), stmt, delivery_row),
    )


@bp.get("/deliveries/<delivery_id>")
def show_delivery(account: str, repo_slug: str, delivery_id: str) -> Any:
    repo = _repo(account, repo_slug)
    delivery = find_delivery(repo, delivery_id)
    return render_template(
        "repos/delivery.html",
        repo=repo,
        delivery=delivery,
        shown=delivery_shown(delivery, with_attempts=True),
    )


@bp.post("/deliveries/<delivery_id>/redeliver")
def redeliver(account: str, repo_slug: str, delivery_id: str) -> Any:
    delivery = find_delivery(_repo(account, repo_slug), delivery_id)
    done = redelivery.run_again(get_session(), runtime(), delivery)
    what = "queued again" if done == "redelivered" else "retried now"
    flash(f"Delivery {delivery.id} {what} (attempt {delivery.attempts + 1}).", "success")
    return back(
        "web_deliveries.show_delivery",
        account=account,
        repo_slug=repo_slug,
        delivery_id=delivery.id,
    )


@bp.post("/services/<int:service_id>/redeliver")
def redeliver_failed(account: str, repo_slug: str, service_id: int) -> Any:
    """The service's list: "Redeliver every failed delivery since <date>" (UTC)."""
    service = get_service(_repo(account, repo_slug), service_id)
    since = redelivery.parse_since(request.form.get("since"))
    done = redelivery.redeliver_failed(get_session(), runtime(), service, since)
    count = len(done.delivery_ids)
    more = f" There are more: press again for the next {redelivery.MAX_BULK}." if done.more else ""
    flash(f"{count} failed deliver{'y' if count == 1 else 'ies'} since "
          f"{since:%Y-%m-%d %H:%M} UTC queued again.{more}", "success")  # fmt: skip
    return back("web_deliveries.list_deliveries", account=account, repo_slug=repo_slug,
                service=service.id)  # fmt: skip
