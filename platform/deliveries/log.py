"""The delivery log as people read it, through the API and the pages alike: a delivery
and its attempts (outcome, duration, the broker's log lines and result, every request the
gateway relayed with what the receiver answered), found within its repository; and a
sample push queued for one service ("Test")."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from brokerage.core.errors import NotFoundError
from brokerage.platform import pushes
from brokerage.platform.db import get_session
from brokerage.platform.deliveries import queue as delivery_queue
from brokerage.platform.models import Delivery, DeliveryAttempt, Repository, Service
from brokerage.platform.runtime import current_runtime


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


def queue_test_push(session: Session, service: Service, username: str) -> Delivery:
    """Store a sample push (the payload's shape) for one service and queue it; commits."""
    delivery = pushes.send_test_push(
        session, service, current_runtime().config["CANON_URL"], username
    )
    session.commit()
    delivery_queue.enqueue_new(current_runtime(), [delivery])
    return delivery
