"""Delivery states, their allowed transitions, the retry schedule and auto-disable.

A delivery is one push handed to one service. It keeps one id across attempts (the
``delivery.id`` brokers see, so receivers can deduplicate). Each attempt is claimed
atomically in the database before it runs, so two workers never run the same attempt
at once, whatever Redis does.

Retry schedule (seconds after the failed attempt), each delay jittered by ±20%::

    10, 30, 120, 600, 1800, 3600     (then the delivery has failed: 7 attempts in all)

A failed delivery counts against its service; ``AUTO_DISABLE_AFTER`` failed deliveries
in a row disable the service and mail its admins. A configuration error (the broker says
its fields are wrong) is not retried.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import Connection, bindparam, insert, update

from brokerage.core.config import DEFAULTS
from brokerage.core.tables import utcnow
from brokerage.platform.errors import PlatformError
from brokerage.platform.models import Delivery, DeliveryAttempt


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # stored, not yet known to be on the queue
    QUEUED = "queued"  # a job for its next attempt is on the queue, or about to be (the
    # sweeper enqueues again when Redis has no live job for it)
    RUNNING = "running"  # an attempt holds the lease
    RETRYING = "retrying"  # an attempt failed; the next one is due at next_attempt_at
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # gave up: retries used up, configuration error, or a broken broker
    SKIPPED = "skipped"  # the service was removed or disabled before it could run


TRANSITIONS: dict[DeliveryStatus, frozenset[DeliveryStatus]] = {
    DeliveryStatus.PENDING: frozenset({DeliveryStatus.QUEUED, DeliveryStatus.RUNNING}),
    DeliveryStatus.QUEUED: frozenset(
        {DeliveryStatus.RUNNING, DeliveryStatus.PENDING}  # PENDING: Redis was unreachable
    ),
    DeliveryStatus.RUNNING: frozenset(
        {
            DeliveryStatus.SUCCEEDED,
            DeliveryStatus.RETRYING,
            DeliveryStatus.FAILED,
            DeliveryStatus.SKIPPED,
            DeliveryStatus.QUEUED,  # the lease ran out: the worker died mid-run
        }
    ),
    DeliveryStatus.RETRYING: frozenset({DeliveryStatus.QUEUED, DeliveryStatus.RUNNING}),
    DeliveryStatus.SUCCEEDED: frozenset({DeliveryStatus.QUEUED}),  # redeliver
    DeliveryStatus.FAILED: frozenset({DeliveryStatus.QUEUED}),  # redeliver
    DeliveryStatus.SKIPPED: frozenset({DeliveryStatus.QUEUED}),  # redeliver
}
"""Every allowed move; anything else is a bug and raises InvalidTransitionError. The moves
into RUNNING (claim) and back to QUEUED (sweeper) are conditional SQL updates that follow
this table too."""

CLAIMABLE = (DeliveryStatus.PENDING, DeliveryStatus.QUEUED, DeliveryStatus.RETRYING)
FINISHED = (DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED, DeliveryStatus.SKIPPED)

RETRY_DELAYS: tuple[float, ...] = tuple(DEFAULTS["RETRY_DELAYS"])
"""seconds to wait after failed attempt 1, 2, ...; config RETRY_DELAYS overrides"""
RETRY_JITTER = 0.2
"""fraction by which each delay is randomly stretched or shrunk"""
AUTO_DISABLE_AFTER: int = DEFAULTS["AUTO_DISABLE_AFTER"]
"""failed deliveries in a row that disable a service"""
LEASE_SECONDS: float = DEFAULTS["LEASE_SECONDS"]
"""how long a claimed attempt may run before the sweeper assumes its worker died"""


class InvalidTransitionError(PlatformError):
    """A delivery was asked to move to a status its current one does not allow."""


def move(delivery: Delivery, to: DeliveryStatus) -> None:
    check_move(delivery.id, DeliveryStatus(delivery.status), to)
    delivery.status = to


def check_move(delivery_id: str, current: DeliveryStatus, to: DeliveryStatus) -> None:
    if to not in TRANSITIONS[current]:
        raise InvalidTransitionError(f"delivery {delivery_id}: {current} -> {to} is not allowed")


def retry_delay(attempt: int, delays: tuple[float, ...] = RETRY_DELAYS) -> float | None:
    """Seconds before the attempt after ``attempt`` (1-based), jittered; None: give up."""
    if attempt > len(delays):
        return None
    base = delays[attempt - 1]
    return base * random.uniform(1 - RETRY_JITTER, 1 + RETRY_JITTER)


@dataclass(frozen=True)
class Claim:
    """An attempt a worker holds: its row and its number (1 for the first)."""

    attempt_id: int
    number: int


DELIVERIES = Delivery.__table__
ATTEMPTS = DeliveryAttempt.__table__
_TAKE_ATTEMPT = (
    update(DELIVERIES)
    .where(
        DELIVERIES.c.id == bindparam("delivery_id"),
        DELIVERIES.c.status.in_([str(s) for s in CLAIMABLE]),
    )
    .values(
        status=str(DeliveryStatus.RUNNING),
        attempts=DELIVERIES.c.attempts + 1,
        lease_until=bindparam("lease_ends"),
    )
    .returning(DELIVERIES.c.attempts)
)
_RECORD_ATTEMPT = insert(ATTEMPTS).returning(ATTEMPTS.c.id)
"""built once: a claim runs for every attempt, and a built statement keeps its cache key"""


def claim(
    conn: Connection, delivery_id: str, worker: str, lease_seconds: float = LEASE_SECONDS
) -> Claim | None:
    """Atomically take the next attempt of a delivery and record it as running; None if
    another worker holds it or it has finished. The caller commits, so what it reads in
    the same transaction costs no extra commit."""
    now = utcnow()
    lease_ends = now + timedelta(seconds=lease_seconds)
    number = conn.execute(
        _TAKE_ATTEMPT, {"delivery_id": delivery_id, "lease_ends": lease_ends}
    ).scalar_one_or_none()
    if number is None:
        return None
    attempt_id = conn.execute(
        _RECORD_ATTEMPT,
        {"delivery_id": delivery_id, "number": number, "worker": worker, "started_at": now},
    ).scalar_one()
    return Claim(attempt_id, number)


def due_at(delay: float, now: datetime | None = None) -> datetime:
    return (now or utcnow()) + timedelta(seconds=delay)
