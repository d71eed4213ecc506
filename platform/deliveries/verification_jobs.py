"""Verification as RQ jobs, on the platform's queue (the workers that run deliveries run these
too). The job carries only the version id; the worker supplies the database, the artifact
store and a sandbox backend.

A worker may :func:`install` its context; otherwise the job builds one from the runtime
of the worker's installed delivery dispatcher (``brokerage worker``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from redis.exceptions import RedisError

from brokerage.platform.deliveries import jobs as delivery_tasks
from brokerage.platform.errors import PlatformError
from brokerage.platform.runtime import Runtime
from brokerage.submissions.artifacts import ArtifactStore, store_from_config
from brokerage.submissions.dynamic import BackendFactory, backend_factory
from brokerage.submissions.models import BrokerVersion
from brokerage.submissions.verification import verify_version

log = logging.getLogger(__name__)

JOB_FUNCTION = "brokerage.platform.deliveries.verification_jobs.run_verification"
JOB_TIMEOUT = 600
"""seconds RQ lets one verification run (fixtures each have the sandbox's own deadline)"""


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


def run_verification(version_id: int) -> str:
    """Verify one submitted version (the job ``verify_<id>``); returns the state it ends in."""
    context = _current()
    with context.runtime.sessions() as session:
        version = session.get(BrokerVersion, version_id)
        if version is None:
            return "skipped: no such version"
        allowed = context.runtime.config.get("SANDBOX_ALLOWED_IMPORTS") or None
        kwargs = {"allowed_imports": tuple(allowed)} if allowed else {}
        state = verify_version(session, version, context.store, context.make_backend, **kwargs)
        session.commit()
    return state


def enqueue(runtime: Runtime, version_id: int) -> bool:
    """Queue the verification of ``version_id``; False when Redis cannot be reached (the
    vendor may ask again: ``POST /1.0/submissions/<id>/verify``)."""
    try:
        runtime.queue.enqueue(
            JOB_FUNCTION,
            version_id,
            job_id=f"verify_{version_id}",
            job_timeout=JOB_TIMEOUT,
            result_ttl=3600,
            failure_ttl=24 * 3600,
            description=f"verify broker version {version_id}",
        )
    except RedisError as exc:
        log.warning("could not enqueue verification of version %s: %s", version_id, exc)
        return False
    return True
