"""Verification as RQ jobs, on the platform's queue (the workers that run deliveries run these
too). The job carries only the version id; the worker supplies the database, the artifact
store and a sandbox backend.

A worker may :func:`install` its context; otherwise the job builds one from the runtime
of the worker's installed delivery dispatcher (``brokerage worker``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from redis.exceptions import RedisError
from rq.job import Job, JobStatus
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from brokerage.core.config import DEFAULTS
from brokerage.core.tables import utcnow
from brokerage.platform.deliveries import jobs as delivery_tasks
from brokerage.platform.errors import PlatformError
from brokerage.platform.runtime import Runtime
from brokerage.submissions.artifacts import ArtifactStore, store_from_config
from brokerage.submissions.dynamic import BackendFactory, backend_factory
from brokerage.submissions.models import BrokerVersion, SubmissionEvent
from brokerage.submissions.verification import verify_version

log = logging.getLogger(__name__)

JOB_FUNCTION = "brokerage.platform.deliveries.verification_jobs.run_verification"
JOB_TIMEOUT = 600
"""seconds RQ lets one verification run (fixtures each have the sandbox's own deadline)"""
VERIFY_LEASE_SECONDS: float = DEFAULTS["VERIFY_LEASE_SECONDS"]
"""a version ``verifying`` for longer than this lost its worker (RQ ends a job at its
timeout): the sweeper has it verified again"""


@dataclass
class Context:
    runtime: Runtime
    store: ArtifactStore
    make_backend: BackendFactory


_context: Context | None = None


def install(context: Context | None) -> None:
    global _context
    _context = context


def context_for(runtime: Runtime) -> Context:
    return Context(runtime, store_from_config(runtime.config), backend_factory(runtime.config))


def _current() -> Context:
    if _context is not None:
        return _context
    dispatcher = getattr(delivery_tasks, "_dispatcher", None)
    if dispatcher is None:
        raise PlatformError("no verification context: start workers with `brokerage worker`")
    return context_for(dispatcher.runtime)


def run_verification(version_id: int, restart: bool = False) -> str:
    """Verify one submitted version (the job ``verify_<id>``); returns the state it ends in.
    ``restart`` (the sweeper's): verify again a version whose verification stopped with its
    worker, unless someone restarted it meanwhile."""
    context = _current()
    with context.runtime.sessions() as session:
        version = session.get(BrokerVersion, version_id)
        if version is None:
            return "skipped: no such version"
        if restart and not stale(context.runtime, session, version_id):
            return "skipped: its verification is alive"
        allowed = context.runtime.config.get("SANDBOX_ALLOWED_IMPORTS") or None
        kwargs = {"allowed_imports": tuple(allowed)} if allowed else {}
        state = verify_version(
            session, version, context.store, context.make_backend, restart=restart, **kwargs
        )
        session.commit()
    return state


def lease_seconds(runtime: Runtime) -> float:
    return float(runtime.config.get("VERIFY_LEASE_SECONDS") or VERIFY_LEASE_SECONDS)


def last_moved(session: Session, version_id: int) -> datetime | None:
    """When the version last changed state (its newest audit row)."""
    found = session.scalar(
        select(func.max(SubmissionEvent.at)).where(SubmissionEvent.broker_version_id == version_id)
    )
    return None if found is None else as_utc(found)


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes (stored as UTC)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def stale(runtime: Runtime, session: Session, version_id: int) -> bool:
    """Whether a ``verifying`` version has been so for longer than any verification runs."""
    moved = last_moved(session, version_id)
    return moved is None or moved < utcnow() - timedelta(seconds=lease_seconds(runtime))


def job_id(version_id: int) -> str:
    return f"verify_{version_id}"


def live_jobs(runtime: Runtime, version_ids: list[int]) -> set[int]:
    """Which of these versions have a waiting or running verification job in Redis (one
    round trip); raises RedisError when Redis cannot be asked."""
    pipe = runtime.redis.pipeline(transaction=False)
    for version_id in version_ids:
        pipe.hget(Job.key_for(job_id(version_id)), "status")
    live = {s.value for s in (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.STARTED)}
    return {version_id for version_id, status in zip(version_ids, pipe.execute(), strict=True)
            if status is not None and status.decode() in live}  # fmt: skip


def enqueue(runtime: Runtime, version_id: int, restart: bool = False) -> bool:
    """Queue the verification of ``version_id``; False when Redis cannot be reached (the
    vendor may ask again: ``POST /1.0/submissions/<id>/verify``; the sweeper does)."""
    try:
        runtime.queue.enqueue(
            JOB_FUNCTION,
            version_id,
            restart,
            job_id=job_id(version_id),
            job_timeout=JOB_TIMEOUT,
            result_ttl=3600,
            failure_ttl=24 * 3600,
            description=f"verify broker version {version_id}",
        )
    except RedisError as exc:
        log.warning("could not enqueue verification of version %s: %s", version_id, exc)
        return False
    return True
