"""Prometheus metrics at ``/metrics`` (text exposition format), and the figures the
operator's health page shows.

Every figure is read at scrape time from the shared database and Redis, so any web
process answers for the whole platform (workers on many hosts included) and nothing is
lost when a process restarts:

- ``brokerage_deliveries{status}``                 gauge: deliveries in each status
- ``brokerage_run_duration_seconds``               histogram of attempts' sandbox run times
- ``brokerage_queue_jobs{state}``                  gauge: jobs queued / scheduled / started / failed
- ``brokerage_workers``                            gauge: RQ workers alive
- ``brokerage_gateway_refusals_total{reason}``     counter: egress requests the gateway refused
- ``brokerage_redis_up``                           gauge: 1 when Redis answered this scrape
- ``brokerage_egress_limit_rate{kind}``, ``brokerage_egress_limit_burst{kind}``, and
  ``brokerage_egress_limit_wait_seconds``          gauges: the egress rate limits in force
  (per worker) by kind of key, and the longest a request waits for one
- ``brokerage_sandbox_*{worker}``                  every worker's warm sandbox pool, which
  each worker publishes to Redis (:mod:`brokerage.platform.deliveries.sandbox_stats`)

The counters are derived from stored rows, so deleting a repository (which deletes its
deliveries) lowers them; Prometheus treats that as a counter reset.

``prometheus_client`` writes the format: it is pure Python with no dependencies, and it
gets the escaping, ``le`` labels and ``_bucket``/``_sum``/``_count`` series right.

Set ``METRICS_TOKEN`` to require ``Authorization: Bearer <token>`` from the scraper.
"""

from __future__ import annotations

import hmac
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from redis.exceptions import RedisError
from rq import Worker
from rq.worker import BaseWorker
from sqlalchemy import Text, case, cast, func, select
from sqlalchemy.orm import Session

from brokerage.core.errors import AuthenticationError
from brokerage.platform.deliveries import sandbox_stats
from brokerage.platform.deliveries.states import DeliveryStatus
from brokerage.platform.models import Delivery, DeliveryAttempt
from brokerage.platform.runtime import Runtime
from brokerage.sandbox.egress.limits import KINDS as LIMIT_KINDS

bp = Blueprint("metrics", __name__)

DURATION_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
"""seconds: upper bounds of the run-duration histogram's buckets (+Inf is added)"""


@dataclass
class QueueStats:
    """The delivery queue as Redis sees it; ``error`` is set when Redis did not answer."""

    jobs: dict[str, int] = field(default_factory=dict)
    workers: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""


def queue_stats(runtime: Runtime) -> QueueStats:
    try:
        queue = runtime.queue
        jobs = {
            "queued": queue.count,
            "scheduled": queue.scheduled_job_registry.count,
            "started": queue.started_job_registry.count,
            "failed": queue.failed_job_registry.count,
        }
        workers = [_worker_shown(w) for w in Worker.all(connection=runtime.redis)]
    except (RedisError, OSError) as exc:
        return QueueStats(error=f"Redis did not answer: {exc}")
    return QueueStats(jobs=jobs, workers=sorted(workers, key=lambda w: str(w["name"])))


def _worker_shown(worker: BaseWorker) -> dict[str, Any]:
    return {
        "name": worker.name,
        "hostname": worker.hostname,
        "pid": worker.pid,
        "state": str(worker.get_state()),
        "current_job": worker.get_current_job_id(),
        "last_heartbeat": worker.last_heartbeat,
        "succeeded": worker.successful_job_count,
        "failed": worker.failed_job_count,
        "working_seconds": worker.total_working_time,
    }


def deliveries_by_status(session: Session) -> dict[str, int]:
    """Every status, with zero for those no delivery is in."""
    counts = dict.fromkeys((str(s) for s in DeliveryStatus), 0)
    rows = session.execute(select(Delivery.status, func.count()).group_by(Delivery.status))
    counts.update({status: int(n) for status, n in rows})
    return counts


def run_durations(session: Session) -> tuple[list[tuple[str, float]], float, int]:
    """Cumulative ``(le, count)`` buckets, the sum and the count of attempts' run times."""
    duration = DeliveryAttempt.duration_seconds
    columns = [func.sum(case((duration <= bound, 1), else_=0)) for bound in DURATION_BUCKETS]
    row = session.execute(
        select(func.count(duration), func.coalesce(func.sum(duration), 0.0), *columns)
    ).one()
    total, seconds = int(row[0]), float(row[1])
    counts = zip(DURATION_BUCKETS, row[2:], strict=True)
    buckets = [(str(bound), float(n or 0)) for bound, n in counts]
    return [*buckets, ("+Inf", float(total))], seconds, total


def gateway_refusals(session: Session) -> Counter[str]:
    """Refused egress requests by reason, from the attempts' request logs. The database
    first narrows the scan to logs that contain a refusal at all."""
    refusals: Counter[str] = Counter()
    marker = '%"refused": "%'
    logs = session.scalars(
        select(DeliveryAttempt.requests).where(cast(DeliveryAttempt.requests, Text).like(marker))
    )
    for entries in logs:
        for entry in entries if isinstance(entries, list) else json.loads(entries or "[]"):
            if isinstance(entry, dict) and entry.get("refused"):
                refusals[str(entry["refused"])] += 1
    return refusals


class PlatformCollector:
    """Collects every metric at scrape time (see the module docstring)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        with self.runtime.sessions() as session:
            yield self._deliveries(session)
            yield self._durations(session)
            yield self._refusals(session)
        yield from self._limits()
        yield from self._queue()

    @staticmethod
    def _deliveries(session: Session) -> Metric:
        gauge = GaugeMetricFamily(
            "brokerage_deliveries", "Deliveries in each status.", labels=["status"]
        )
        for status, n in deliveries_by_status(session).items():
            gauge.add_metric([status], n)
        return gauge

    @staticmethod
    def _durations(session: Session) -> Metric:
        buckets, seconds, _count = run_durations(session)
        return HistogramMetricFamily(
            "brokerage_run_duration_seconds",
            "Sandbox run time of each delivery attempt.",
            buckets=buckets,
            sum_value=seconds,
        )

    @staticmethod
    def _refusals(session: Session) -> Metric:
        counter = CounterMetricFamily(
            "brokerage_gateway_refusals",
            "Egress requests the gateway refused, by reason.",
            labels=["reason"],
        )
        for reason, n in sorted(gateway_refusals(session).items()):
            counter.add_metric([reason], n)
        return counter

    def _limits(self) -> Iterator[Metric]:
        config = self.runtime.config
        for part, help_text in (
            ("rate", "Egress requests a second allowed per key of each kind, per worker."),
            ("burst", "Egress requests allowed at once per key of each kind, per worker."),
        ):
            gauge = GaugeMetricFamily(f"brokerage_egress_limit_{part}", help_text, labels=["kind"])
            for kind in LIMIT_KINDS:
                value = config.get(f"EGRESS_{kind.upper()}_{part.upper()}")
                if value is not None:
                    gauge.add_metric([kind], float(value))
            yield gauge
        wait = config.get("EGRESS_LIMIT_WAIT")
        if wait is not None:
            yield GaugeMetricFamily(
                "brokerage_egress_limit_wait_seconds",
                "Longest an egress request waits for a rate limit before its delivery is deferred.",
                value=float(wait),
            )

    def _queue(self) -> Iterator[Metric]:
        stats = queue_stats(self.runtime)
        up = GaugeMetricFamily("brokerage_redis_up", "1 when Redis answered this scrape.")
        up.add_metric([], 0 if stats.error else 1)
        yield up
        if stats.error:
            return
        jobs = GaugeMetricFamily(
            "brokerage_queue_jobs", "Delivery jobs in each queue state.", labels=["state"]
        )
        for state, n in stats.jobs.items():
            jobs.add_metric([state], n)
        yield jobs
        yield GaugeMetricFamily("brokerage_workers", "RQ workers alive.", value=len(stats.workers))
        yield from sandbox_stats.collect(self.runtime.redis)


def exposition(runtime: Runtime) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PlatformCollector(runtime))
    return generate_latest(registry)


def _check_token() -> None:
    expected = current_app.config.get("METRICS_TOKEN")
    if not expected:
        return
    auth = request.authorization
    given = auth.token if auth is not None and auth.type == "bearer" and auth.token else ""
    if not hmac.compare_digest(str(expected).encode(), given.encode()):
        raise AuthenticationError("metrics need the METRICS_TOKEN as a Bearer token")


@bp.get("/metrics")
def metrics() -> Response:
    _check_token()
    runtime: Runtime = current_app.extensions["brokerage.runtime"]
    return Response(exposition(runtime), headers={"Content-Type": CONTENT_TYPE_LATEST})
