"""``brokerage worker``: RQ workers that run deliveries in the sandbox.

Each worker is a :class:`rq.SimpleWorker` (jobs run in the worker process itself, not
a fork per job) so that its warm sandbox pools and gateway outlive a job: the sandbox,
not a fork, isolates the broker. The scheduler runs for delayed retries, and a sweeper
thread re-enqueues what Redis lost.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rq import SimpleWorker
from rq.serializers import JSONSerializer

from brokerage.platform.api import broker_access as api_access
from brokerage.platform.app import create_app
from brokerage.platform.deliveries import jobs as tasks
from brokerage.platform.deliveries import sandbox_stats, sweeper
from brokerage.platform.deliveries import verification_jobs as verification_tasks
from brokerage.platform.deliveries.dispatch import Dispatcher
from brokerage.platform.runtime import Runtime
from brokerage.sandbox.backends import backend_from_config
from brokerage.sandbox.egress.gateway import Gateway, GatewayConfig
from brokerage.sandbox.interface import Limits
from brokerage.submissions import bundles
from brokerage.submissions.artifacts import store_from_config

log = logging.getLogger(__name__)


def limits_from_config(config: dict[str, Any]) -> Limits:
    default = Limits()
    return Limits(
        wall_seconds=float(config.get("RUN_WALL_SECONDS", default.wall_seconds)),
        memory_bytes=int(config.get("RUN_MEMORY_BYTES", default.memory_bytes)),
    )


@contextmanager
def dispatcher(runtime: Runtime, name: str) -> Iterator[Dispatcher]:
    """A dispatcher with its own gateway and sandbox backend, closed on exit."""
    forwarder = api_access.AppApiForwarder(create_app(dict(runtime.config)))
    gateway = Gateway(GatewayConfig.from_app_config(runtime.config, api_forwarder=forwarder))
    sandbox = backend_from_config(runtime.config, egress=gateway)
    try:
        yield Dispatcher(
            runtime, sandbox, limits_from_config(runtime.config), worker_name=name, gateway=gateway
        )
    finally:
        sandbox.close()
        gateway.close()


def _sweep_forever(runtime: Runtime, stop: threading.Event, interval: float) -> None:
    while not stop.wait(interval):
        try:
            report = sweeper.sweep(runtime)
            if report.enqueued or report.abandoned:
                log.info(
                    "sweeper: enqueued %d, abandoned %d",
                    len(report.enqueued),
                    len(report.abandoned),
                )
        except Exception:  # a sweep failing must not stop the worker
            log.exception("sweep failed")


def run_worker(runtime: Runtime, name: str, burst: bool = False) -> None:
    """Work the delivery queue until stopped (or, with ``burst``, until it is empty)."""
    stop = threading.Event()
    interval = float(runtime.config.get("SWEEP_INTERVAL") or sweeper.SWEEP_INTERVAL)
    sweeping = threading.Thread(target=_sweep_forever, args=(runtime, stop, interval), daemon=True)
    with dispatcher(runtime, name) as active:
        tasks.install(active)
        bundles.use_store(store_from_config(runtime.config))
        verification_tasks.install(verification_tasks.context_for(runtime))
        sweeper.sweep(runtime)
        sweeping.start()
        sandbox_stats.start_publishing(runtime.redis, name, active.sandbox, stop)
        try:
            worker = SimpleWorker(
                [runtime.queue], connection=runtime.redis, serializer=JSONSerializer, name=name
            )
            worker.work(burst=burst, with_scheduler=True, logging_level="WARNING")
        finally:
            stop.set()
            tasks.install(None)
            verification_tasks.install(None)
            bundles.use_store(None)
