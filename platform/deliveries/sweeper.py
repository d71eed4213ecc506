"""The sweeper: finds deliveries whose job Redis lost (or never got) and enqueues them.

Runs every ``SWEEP_INTERVAL`` seconds in every worker process; sweeping twice at once is
harmless, because each change is a conditional update and a job id names one attempt.

- ``pending`` for longer than ``GRACE``: the enqueue after ingestion failed -> enqueue.
- ``queued`` or ``retrying`` (and due) with no live job in Redis -> enqueue again. A
  ``queued`` delivery's job may be missing because Redis lost it, or because it never got
  there: ingestion stores deliveries ``queued`` and enqueues right after its commit, so a
  web process that died in between leaves them ``queued`` without a job.
- ``running`` past its lease: the worker died mid-run -> the attempt is marked
  abandoned and the next attempt is enqueued.

Verifications of submitted broker versions, too:

- ``submitted`` for longer than ``GRACE`` with no live ``verify_<id>`` job (Redis lost it,
  or never got it) -> enqueue the verification.
- ``verifying`` for longer than ``VERIFY_LEASE_SECONDS`` (past any job's timeout): its
  worker died -> verify it again from the start.

After Redis restarts empty (queued jobs, scheduled retries and the started-job registry
all gone), one sweep finds every delivery and verification that lost its job.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from redis.exceptions import RedisError
from sqlalchemy import select, update

from brokerage.core.config import DEFAULTS
from brokerage.core.tables import utcnow
from brokerage.platform.deliveries import queue as delivery_queue
from brokerage.platform.deliveries import verification_jobs
from brokerage.platform.deliveries.states import DeliveryStatus
from brokerage.platform.models import Delivery, DeliveryAttempt
from brokerage.platform.runtime import Runtime
from brokerage.submissions.models import BrokerVersion
from brokerage.submissions.states import SubmissionState as S

log = logging.getLogger(__name__)

SWEEP_INTERVAL: float = DEFAULTS["SWEEP_INTERVAL"]
"""seconds between sweeps"""
GRACE = timedelta(seconds=5)
"""how long a delivery may sit before the sweeper doubts its job"""
BATCH = 500
"""most deliveries looked at per status per sweep"""


@dataclass
class SweepReport:
    enqueued: list[str] = field(default_factory=list)
    abandoned: list[str] = field(default_factory=list)
    verifications: list[int] = field(default_factory=list)
    """broker versions whose verification was enqueued (again)"""


def _candidates(runtime: Runtime, status: DeliveryStatus, *conditions: object) -> list[Delivery]:
    with runtime.sessions() as session:
        stmt = select(Delivery).where(Delivery.status == str(status), *conditions).limit(BATCH)  # type: ignore[arg-type]
        return list(session.scalars(stmt))


def _mark_queued(runtime: Runtime, delivery: Delivery, from_status: DeliveryStatus) -> bool:
    with runtime.sessions() as session:
        changed = session.execute(
            update(Delivery)
            .where(
                Delivery.id == delivery.id,
                Delivery.status == str(from_status),
                Delivery.attempts == delivery.attempts,
            )
            .values(status=str(DeliveryStatus.QUEUED), lease_until=None)
        )
        session.commit()
        return bool(changed.rowcount)


def _requeue(
    runtime: Runtime, delivery: Delivery, from_status: DeliveryStatus, report: SweepReport
) -> None:
    attempt = delivery.attempts + 1
    if from_status is not DeliveryStatus.QUEUED and not _mark_queued(
        runtime, delivery, from_status
    ):
        return
    if delivery_queue.enqueue(runtime, delivery.id, attempt):
        report.enqueued.append(delivery.id)


def _without_live_job(runtime: Runtime, deliveries: list[Delivery]) -> list[Delivery]:
    """The deliveries whose next attempt has no live job in Redis (asked in one round trip:
    during a long burst every queued delivery older than GRACE is a candidate)."""
    if not deliveries:
        return []
    live = delivery_queue.live_jobs(runtime, [(d.id, d.attempts + 1) for d in deliveries])
    return [d for d in deliveries if (d.id, d.attempts + 1) not in live]


def _abandon(runtime: Runtime, delivery: Delivery, report: SweepReport) -> None:
    with runtime.sessions() as session:
        changed = session.execute(
            update(Delivery)
            .where(
                Delivery.id == delivery.id,
                Delivery.status == str(DeliveryStatus.RUNNING),
                Delivery.attempts == delivery.attempts,
            )
            .values(
                status=str(DeliveryStatus.QUEUED),
                lease_until=None,
                last_error="the worker running the attempt stopped before it finished",
            )
        )
        if not changed.rowcount:
            return
        session.execute(
            update(DeliveryAttempt)
            .where(
                DeliveryAttempt.delivery_id == delivery.id,
                DeliveryAttempt.number == delivery.attempts,
                DeliveryAttempt.outcome == "running",
            )
            .values(
                outcome="abandoned",
                finished_at=utcnow(),
                message="the worker running this attempt stopped before it finished",
            )
        )
        session.commit()
    report.abandoned.append(delivery.id)
    if delivery_queue.enqueue(runtime, delivery.id, delivery.attempts + 1):
        report.enqueued.append(delivery.id)


def _verifications(runtime: Runtime, report: SweepReport) -> None:
    now = utcnow()
    with runtime.sessions() as session:
        versions = list(session.execute(
            select(BrokerVersion.id, BrokerVersion.state)
            .where(BrokerVersion.state.in_([str(S.SUBMITTED), str(S.VERIFYING)]))
            .limit(BATCH)
        ))  # fmt: skip
        waiting = [
            version_id
            for version_id, state in versions
            if state == S.SUBMITTED
            and (verification_jobs.last_moved(session, version_id) or now) < now - GRACE
        ]
        stuck = [version_id for version_id, state in versions if state == S.VERIFYING
                 and verification_jobs.stale(runtime, session, version_id)]  # fmt: skip
    if waiting:
        live = verification_jobs.live_jobs(runtime, waiting)
        for version_id in waiting:
            if version_id not in live and verification_jobs.enqueue(runtime, version_id):
                report.verifications.append(version_id)
    for version_id in stuck:
        if verification_jobs.enqueue(runtime, version_id, restart=True):
            report.verifications.append(version_id)


def sweep(runtime: Runtime, raise_outages: bool = False) -> SweepReport:
    """One pass over the deliveries and verifications that may have lost their job.

    Redis unreachable: the pass stops early, loses nothing, and logs a warning (or, with
    ``raise_outages``, raises for the caller to log once per outage)."""
    report = SweepReport()
    now = utcnow()
    try:
        for delivery in _candidates(
            runtime, DeliveryStatus.PENDING, Delivery.created_at < now - GRACE
        ):
            _requeue(runtime, delivery, DeliveryStatus.PENDING, report)
        queued = _candidates(runtime, DeliveryStatus.QUEUED, Delivery.created_at < now - GRACE)
        for delivery in _without_live_job(runtime, queued):
            _requeue(runtime, delivery, DeliveryStatus.QUEUED, report)
        retrying = _candidates(
            runtime, DeliveryStatus.RETRYING, Delivery.next_attempt_at < now - GRACE
        )
        for delivery in _without_live_job(runtime, retrying):
            _requeue(runtime, delivery, DeliveryStatus.RETRYING, report)
        for delivery in _candidates(runtime, DeliveryStatus.RUNNING, Delivery.lease_until < now):
            _abandon(runtime, delivery, report)
        _verifications(runtime, report)
    except RedisError as exc:
        if raise_outages:
            raise
        log.warning("sweep stopped early, Redis is unreachable: %s", exc)
    return report
