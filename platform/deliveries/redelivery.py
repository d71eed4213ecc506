"""Running deliveries again, at any time (the REST API and the web pages share these).

- A **finished** delivery (succeeded, failed, skipped) is *redelivered*: queued again
  with the same id and the next attempt number.
- A **retrying** delivery's pending retry is run *now* ("retry now"): later retries are
  10 to 60 minutes apart. The delivery moves to ``queued`` by a conditional update, and
  its scheduled job (``delivery_<id>_<n>``) is taken off RQ's schedule and queued at once —
  the same job, never a second one, so no attempt runs twice or early. Whoever takes it off
  the schedule owns it: if the scheduler queued it a moment before, it is left alone.
- A delivery that is ``pending``, ``queued`` or ``running`` is already on its way (409).
- :func:`redeliver_failed` queues again every *failed* delivery of one service created
  at or after a time (at most :data:`MAX_BULK` per call), e.g. after fixing and
  re-enabling a service; the service must be enabled.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from brokerage.core.errors import BadRequestError, ConflictError
from brokerage.platform.deliveries import queue as delivery_queue
from brokerage.platform.deliveries.states import FINISHED, DeliveryStatus, move
from brokerage.platform.models import Delivery, Service
from brokerage.platform.runtime import Runtime

MAX_BULK = 1000
"""most deliveries one bulk redelivery queues (call again for more)"""


def run_again(session: Session, runtime: Runtime, delivery: Delivery) -> str:
    """Redeliver a finished delivery or run a retrying one's next attempt now; commits.
    Returns ``"redelivered"`` or ``"retried"``; ConflictError (409) when it is on its way."""
    status = DeliveryStatus(delivery.status)
    if status in FINISHED:
        move(delivery, DeliveryStatus.QUEUED)
        delivery.finished_at = None
        delivery.next_attempt_at = None
        session.commit()
        delivery_queue.enqueue(runtime, delivery.id, delivery.attempts + 1)
        return "redelivered"
    if status is DeliveryStatus.RETRYING:
        attempts = delivery.attempts
        moved = session.execute(
            update(Delivery)
            .where(
                Delivery.id == delivery.id,
                Delivery.status == str(DeliveryStatus.RETRYING),
                Delivery.attempts == attempts,
            )
            .values(status=str(DeliveryStatus.QUEUED), next_attempt_at=None)
        )
        changed = cast(CursorResult[Any], moved).rowcount  # an UPDATE's result
        session.commit()
        session.refresh(delivery)
        if changed:
            delivery_queue.run_now(runtime, delivery.id, attempts + 1)
            return "retried"
        status = DeliveryStatus(delivery.status)  # a worker took it meanwhile
    raise ConflictError(
        f"delivery {delivery.id} is {status}: its next attempt is already on its way; "
        "a finished delivery is redelivered, a retrying one retried now"
    )


def parse_since(text: str | None) -> datetime:
    """``since`` as an ISO 8601 date or date-time (UTC unless it says otherwise)."""
    if not text:
        raise BadRequestError("since: required, an ISO 8601 date or time (2026-12-01T09:00Z)")
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise BadRequestError(f"since: {text!r} is not an ISO 8601 date or time") from exc
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


@dataclass(frozen=True)
class BulkRedelivery:
    since: datetime
    delivery_ids: list[str]
    more: bool
    """True when more than MAX_BULK matched: call again for the rest"""


def redeliver_failed(
    session: Session, runtime: Runtime, service: Service, since: datetime
) -> BulkRedelivery:
    """Queue again every failed delivery of ``service`` created at or after ``since``
    (oldest first, at most MAX_BULK); commits. ConflictError when the service is disabled."""
    if not service.enabled:
        raise ConflictError(
            f"service {service.id} is disabled: enable it first, or its deliveries are skipped"
        )
    chosen = (
        select(Delivery.id)
        .where(
            Delivery.service_id == service.id,
            Delivery.status == str(DeliveryStatus.FAILED),
            Delivery.created_at >= since,
        )
        .order_by(Delivery.created_at, Delivery.id)
        .limit(MAX_BULK + 1)
    )
    ids = list(session.scalars(chosen))
    more = len(ids) > MAX_BULK
    rows = session.execute(
        update(Delivery)
        .where(Delivery.id.in_(ids[:MAX_BULK]), Delivery.status == str(DeliveryStatus.FAILED))
        .values(status=str(DeliveryStatus.QUEUED), finished_at=None, next_attempt_at=None)
        .returning(Delivery.id, Delivery.attempts)
        .execution_options(synchronize_session=False)
    ).all()
    session.commit()
    delivery_queue.enqueue_attempts(runtime, [(row.id, row.attempts + 1) for row in rows])
    order = {delivery_id: n for n, delivery_id in enumerate(ids)}
    return BulkRedelivery(since, sorted((row.id for row in rows), key=order.__getitem__), more)
