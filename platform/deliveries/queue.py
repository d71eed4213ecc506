"""The RQ queue of delivery jobs (JSON serializer, never pickle).

A job's id is ``delivery_<delivery id>_<attempt>``, so enqueueing the same attempt
twice (the sweeper and a retry racing) leaves one job, and the sweeper can ask Redis
whether a delivery's job still exists. Enqueueing never raises for a Redis outage:
the delivery stays in the database and the sweeper enqueues it later.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from redis.exceptions import RedisError
from rq import Queue
from rq.job import Job, JobStatus
from sqlalchemy import update
from sqlalchemy.orm.attributes import set_committed_value

from brokerage.platform.deliveries.states import DeliveryStatus
from brokerage.platform.models import Delivery
from brokerage.platform.runtime import Runtime

log = logging.getLogger(__name__)

JOB_FUNCTION = "brokerage.platform.deliveries.jobs.run_delivery"
JOB_TIMEOUT = 300
"""seconds RQ lets one job run (the sandbox's own deadline is far shorter)"""
LIVE_STATUSES = (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.STARTED, JobStatus.DEFERRED)


def job_id(delivery_id: str, attempt: int) -> str:
    return f"delivery_{delivery_id}_{attempt}"


def _options(delivery_id: str, attempt: int) -> dict[str, Any]:
    return {
        "job_id": job_id(delivery_id, attempt),
        "job_timeout": JOB_TIMEOUT,
        "result_ttl": 0,  # the outcome lives in the database; keeping it in Redis costs writes
        "failure_ttl": 24 * 3600,
        "description": f"delivery {delivery_id} attempt {attempt}",
    }


def enqueue_first_attempts(runtime: Runtime, delivery_ids: list[str]) -> bool:
    """Put the first attempt of each delivery on the queue in one Redis round trip; False
    (and nothing enqueued that the sweeper will not find) if Redis could not be reached."""
    return enqueue_attempts(runtime, [(delivery_id, 1) for delivery_id in delivery_ids])


def enqueue_attempts(runtime: Runtime, attempts: list[tuple[str, int]]) -> bool:
    """Put each (delivery id, attempt) on the queue in one Redis round trip; False if Redis
    could not be reached (the deliveries stay ``queued``: the sweeper enqueues them)."""
    jobs = []
    for delivery_id, attempt in attempts:
        options = _options(delivery_id, attempt)
        options["timeout"] = options.pop("job_timeout")  # prepare_data's name for it
        jobs.append(Queue.prepare_data(JOB_FUNCTION, (delivery_id,), **options))
    try:
        runtime.queue.enqueue_many(jobs)
    except RedisError as exc:
        log.warning("could not enqueue %d deliveries: %s", len(jobs), exc)
        return False
    return True


def enqueue(runtime: Runtime, delivery_id: str, attempt: int, delay: float = 0) -> bool:
    """Put the job for ``attempt`` on the queue (after ``delay`` seconds); False if Redis
    could not be reached."""
    options = _options(delivery_id, attempt)
    try:
        if delay > 0:
            runtime.queue.enqueue_in(timedelta(seconds=delay), JOB_FUNCTION, delivery_id, **options)
        else:
            runtime.queue.enqueue(JOB_FUNCTION, delivery_id, **options)
    except RedisError as exc:
        log.warning("could not enqueue delivery %s: %s", delivery_id, exc)
        return False
    return True


def run_now(runtime: Runtime, delivery_id: str, attempt: int) -> bool:
    """Run a scheduled attempt at once: take its job off RQ's schedule and queue it (the
    same job id: one job). If the scheduler queued it already, or it is running, nothing is
    added; if Redis has no live job for it, it is enqueued. False if Redis could not be
    reached (the sweeper then enqueues the delivery)."""
    key = job_id(delivery_id, attempt)
    try:
        taken = runtime.redis.zrem(runtime.queue.scheduled_job_registry.key, key)
        if not taken and live_jobs(runtime, [(delivery_id, attempt)]):
            return True  # on the queue or running already: do not add a second one
    except RedisError as exc:
        log.warning("could not run delivery %s now: %s", delivery_id, exc)
        return False
    return enqueue(runtime, delivery_id, attempt)


def live_jobs(runtime: Runtime, attempts: list[tuple[str, int]]) -> set[tuple[str, int]]:
    """Which of these (delivery id, attempt) have a waiting, scheduled or running job in
    Redis; one round trip however many. Raises RedisError when Redis cannot be asked (the
    caller then does nothing)."""
    pipe = runtime.redis.pipeline(transaction=False)
    for delivery_id, attempt in attempts:
        pipe.hget(Job.key_for(job_id(delivery_id, attempt)), "status")
    statuses = pipe.execute()
    live = {s.value for s in LIVE_STATUSES}
    return {key for key, status in zip(attempts, statuses, strict=True)
            if status is not None and status.decode() in live}  # fmt: skip


MOVED_JOB_FUNCTIONS = {
    "brokerage.platform.tasks.run_delivery": JOB_FUNCTION,
    "brokerage.submissions.tasks.run_verification": (
        "brokerage.platform.deliveries.verification_jobs.run_verification"
    ),
}
"""job functions under the module paths of the previous release, and where they live now"""


def repoint_moved_jobs(runtime: Runtime) -> int:
    """Point jobs queued or scheduled by the previous release at their functions' new
    paths (``brokerage db upgrade`` runs this); returns how many were changed."""
    queue = runtime.queue
    ids = set(queue.get_job_ids()) | set(queue.scheduled_job_registry.get_job_ids())
    moved = 0
    for job in Job.fetch_many(list(ids), connection=runtime.redis, serializer=queue.serializer):
        if job is not None and job.func_name in MOVED_JOB_FUNCTIONS:
            job.func_name = MOVED_JOB_FUNCTIONS[job.func_name]
            job.save()
            moved += 1
    return moved


def enqueue_stored(rt: Runtime, delivery_ids: list[str]) -> bool:
    """Enqueue the first attempt of each delivery, stored ``queued`` and committed; False if
    Redis could not be reached, after marking them ``pending`` (not on the queue: the sweeper
    enqueues them once Redis is back).

    Deliveries are born ``queued`` so that the common case costs no second transaction. One
    whose job never reaches Redis although this process meant to put it there (it died
    between the commit and the enqueue) is still found: the sweeper re-enqueues a ``queued``
    delivery that Redis holds no live job for, as it does when Redis loses a job."""
    if not delivery_ids or enqueue_first_attempts(rt, delivery_ids):
        return True
    with rt.sessions() as session:
        session.execute(
            update(Delivery)
            .where(
                Delivery.id.in_(delivery_ids),
                Delivery.status == str(DeliveryStatus.QUEUED),
                Delivery.attempts == 0,
            )
            .values(status=str(DeliveryStatus.PENDING))
        )
        session.commit()
    return False


def enqueue_new(rt: Runtime, deliveries: list[Delivery]) -> None:
    """Enqueue the first attempt of new deliveries (``pushes.create_deliveries``, committed);
    those that could not reach Redis are marked ``pending``, here too."""
    if not enqueue_stored(rt, [d.id for d in deliveries]):
        for delivery in deliveries:
            if delivery.status == DeliveryStatus.QUEUED and delivery.attempts == 0:
                set_committed_value(delivery, "status", str(DeliveryStatus.PENDING))
