"""Every worker's warm sandbox pool in ``/metrics``.

A pool lives in its worker process; the web process that answers ``/metrics`` has
none. Each worker writes its pool's figures (``PoolStats``) to Redis every
``PUBLISH_SECONDS`` under a key of its own that expires after ``KEY_TTL_SECONDS`` (a
dead worker's figures go with it), and the collector reads them all at scrape time:

- ``brokerage_sandbox_blank{worker}``                      gauge: blank sandboxes ready
- ``brokerage_sandbox_bound{worker}``                      gauge: sandboxes bound to a service
- ``brokerage_sandbox_tenants{worker}``                    gauge: services with a bound sandbox
- ``brokerage_sandbox_bindings_total{worker,source}``      counter: bindings (``blank``, ``cold``)
- ``brokerage_sandbox_retirements_total{worker,reason}``   counter: sandboxes retired, by reason
- ``brokerage_egress_limit_waits_total{worker,kind}``      counter: egress requests that waited
  for a rate limit, by the kind of key that held them (destination, service, repository)
- ``brokerage_egress_limit_deferrals_total{worker,kind}``  counter: egress requests refused
  past the longest wait (their deliveries deferred), by kind of key

Counters restart with their worker (Prometheus sees a reset).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from redis import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

KEY_PREFIX = "brokerage:sandbox-pool:"
PUBLISH_SECONDS = 5.0
"""seconds between a worker's updates"""
KEY_TTL_SECONDS = 60
"""seconds a worker's figures outlive its last update"""


def publish(redis: Redis, worker: str, backend: Any) -> None:
    """Write ``backend``'s pool figures under ``worker`` (nothing for a pool-less backend)."""
    pool = getattr(backend, "pool", None)
    if pool is None:
        return
    figures = {**asdict(pool.stats()), **backend_in_use(backend)}
    figures.update(egress_limit_figures(backend))
    redis.set(KEY_PREFIX + worker, json.dumps(figures), ex=KEY_TTL_SECONDS)


def egress_limit_figures(backend: Any) -> dict[str, Any]:
    """The worker's gateway's rate-limit waits and deferrals by kind of key (if it has one)."""
    limits = getattr(getattr(backend, "egress", None), "limits", None)
    return {"egress_limits": limits.stats()} if limits is not None else {}


def backend_in_use(backend: Any) -> dict[str, str]:
    """The backend a worker resolved and, for Docker, its OCI runtime (``/ops`` shows them)."""
    name = str(getattr(backend, "name", "unknown"))
    return {"backend": name, "runtime": (getattr(backend, "runtime", None) or "runc")
            if name == "docker" else ""}  # fmt: skip


def publish_forever(redis: Redis, worker: str, backend: Any, stop: threading.Event) -> None:
    """Publish until ``stop`` is set, then remove the worker's figures."""
    while True:
        try:
            publish(redis, worker, backend)
        except (RedisError, OSError) as exc:  # figures may lag; the worker goes on
            log.warning("sandbox pool figures not published: %s", exc)
        if stop.wait(PUBLISH_SECONDS):
            break
    with contextlib.suppress(RedisError, OSError):
        redis.delete(KEY_PREFIX + worker)


def start_publishing(redis: Redis, worker: str, backend: Any, stop: threading.Event) -> None:
    threading.Thread(target=publish_forever, args=(redis, worker, backend, stop),
                     name="sandbox-stats", daemon=True).start()  # fmt: skip


def read_all(redis: Redis) -> dict[str, dict[str, Any]]:
    """Every live worker's figures, by worker name."""
    keys = sorted(redis.scan_iter(match=KEY_PREFIX + "*", count=1000))
    found = {}
    for key, value in zip(keys, redis.mget(keys) if keys else [], strict=True):
        if value is not None:
            name = (key.decode() if isinstance(key, bytes) else key).removeprefix(KEY_PREFIX)
            found[name] = json.loads(value)
    return found


def collect(redis: Redis) -> Iterator[Metric]:
    try:
        workers = read_all(redis)
    except (RedisError, OSError):  # Redis went away mid-scrape: the other figures still answer
        return
    for name, help_text in (
        ("blank", "Blank warm sandboxes (started, nothing run yet), per worker."),
        ("bound", "Warm sandboxes bound to one service, per worker."),
        ("tenants", "Services with at least one bound sandbox, per worker."),
    ):
        gauge = GaugeMetricFamily(f"brokerage_sandbox_{name}", help_text, labels=["worker"])
        for worker, stats in workers.items():
            gauge.add_metric([worker], stats.get(name, 0))
        yield gauge
    for name, label, help_text in (
        ("bindings", "source", "Sandboxes bound to a service, by source (blank or cold start)."),
        ("retirements", "reason", "Warm sandboxes retired, by reason."),
    ):
        counter = CounterMetricFamily(
            f"brokerage_sandbox_{name}", help_text, labels=["worker", label]
        )
        for worker, stats in workers.items():
            for value, n in sorted(stats.get(name, {}).items()):
                counter.add_metric([worker, value], n)
        yield counter
    for name, help_text in (
        ("waits", "Egress requests that waited for a rate limit, by kind of key."),
        ("deferrals", "Egress requests over a rate limit past the longest wait, by kind of key."),
    ):
        counter = CounterMetricFamily(
            f"brokerage_egress_limit_{name}", help_text, labels=["worker", "kind"]
        )
        for worker, stats in workers.items():
            for kind, n in sorted(stats.get("egress_limits", {}).get(name, {}).items()):
                counter.add_metric([worker, kind], n)
        yield counter
