"""``brokerage worker``: RQ workers that run deliveries in the sandbox.

Each worker is a :class:`rq.SimpleWorker` (jobs run in the worker process itself, not
a fork per job) so that its warm sandbox pools and gateway outlive a job: the sandbox,
not a fork, isolates the broker. The scheduler runs for delayed retries, and a sweeper
thread re-enqueues what Redis lost.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import SimpleWorker
from rq.serializers import JSONSerializer
from rq.utils import as_text

from brokerage.platform.api import broker_access as api_access
from brokerage.platform.app import create_app
from brokerage.platform.deliveries import jobs as tasks
from brokerage.platform.deliveries import outages, sandbox_stats, sweeper
from brokerage.platform.deliveries import verification_jobs as verification_tasks
from brokerage.platform.deliveries.dispatch import Dispatcher
from brokerage.platform.runtime import Runtime
from brokerage.sandbox.backends import backend_from_config
from brokerage.sandbox.egress.config import GatewayConfig
from brokerage.sandbox.egress.gateway import Gateway
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
    """Sweep every ``interval`` seconds until ``stop``; through an outage of Redis or the
    database it keeps trying (with backoff), so what an emptied Redis lost is enqueued again
    as soon as both answer."""
    outage = outages.Outage("sweeper", log)
    wait = 0.0
    while not stop.wait(wait):
        wait = interval
        try:
            report = sweeper.sweep(runtime, raise_outages=True)
        except Exception as exc:  # a sweep failing must not stop the worker
            if not outages.is_outage(exc):
                log.exception("sweep failed")
                continue
            wait = max(interval, outage.failed(exc))
            continue
        outage.recovered()
        if report.enqueued or report.abandoned or report.verifications:
            log.info(
                "sweeper: enqueued %d, abandoned %d, verifications %d",
                len(report.enqueued),
                len(report.abandoned),
                len(report.verifications),
            )


class _Outage(Exception):
    """Redis stopped answering inside RQ's loop (raised so that RQ's own endless, noisy
    reconnect loop gives way to :func:`_work`'s)."""


class _Quiet(logging.Filter):
    """Drops RQ's per-retry and traceback lines about an outage this module logs once."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(
            record.exc_info[1], _Outage | RedisConnectionError | RedisTimeoutError
        ):
            return False
        return "could not connect to Redis instance" not in str(record.msg)


_QUIET = _Quiet()


class _Worker(SimpleWorker):
    """RQ's SimpleWorker that tells how its loop ended (a stop signal, an empty queue in
    burst mode, or an outage) and takes no remote commands (workers stop on signals)."""

    stopping = False
    drained = False

    def register_birth(self) -> None:
        try:
            super().register_birth()
        except ValueError:  # RQ: "There exists an active worker named ..."
            if not self._previous_life_ended():
                raise
            log.warning("worker %s: its previous process on this host died without "
                        "unregistering; taking over its name", self.name)  # fmt: skip
            self.connection.delete(self.key)
            super().register_birth()

    def _previous_life_ended(self) -> bool:
        """Whether the worker registered under this name was a process of this host that is
        gone (killed, say, and started again under the same ``--name`` by systemd)."""
        host, pid = self.connection.hmget(self.key, ["hostname", "pid"])
        if host is None or pid is None or as_text(host) != self.hostname:
            return False
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except (OSError, ValueError):
            return False
        return int(pid) == os.getpid()  # only a process of ours is the same pid again

    def handle_warm_shutdown_request(self) -> None:
        self.stopping = True
        super().handle_warm_shutdown_request()

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        try:
            super().heartbeat(timeout, pipeline)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise _Outage(str(exc)) from exc

    def execute_job(self, job: Any, queue: Any) -> None:
        super().execute_job(job, queue)
        if outages.database_dropped.is_set():  # the job failed on it: take no more for now
            raise _Outage("the database dropped during a job")

    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None
                                     ) -> Any:  # fmt: skip
        result = super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        self.drained = result is None
        return result

    def subscribe(self) -> None:
        pass

    def unsubscribe(self) -> None:
        pass


MAINTENANCE_INTERVAL = 30
"""seconds between RQ's maintenance runs, which also restart a scheduler an outage stopped"""


def _signals_set(stop: threading.Event) -> None:
    """Between two runs of RQ's loop, SIGTERM and SIGINT just ask to stop."""
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())


def _reachable(runtime: Runtime) -> None:
    """Raises unless Redis and the database both answer."""
    runtime.redis.ping()
    with runtime.engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")


def _work(runtime: Runtime, name: str, burst: bool, stop: threading.Event) -> None:
    """RQ's work loop, run again after every outage (Redis or the database unreachable,
    anywhere: birth, dequeue, heartbeat, a job's bookkeeping, death) until a stop signal or,
    with ``burst``, an empty queue. One log line when an outage starts, one when it ends."""
    outage = outages.Outage(f"worker {name}", log)
    logging.getLogger("rq.worker").addFilter(_QUIET)
    previous: _Worker | None = None
    while not stop.is_set():
        try:
            _reachable(runtime)
            outages.database_dropped.clear()
            if previous is not None:  # its death could not be registered during the outage
                previous.register_death()
        except Exception as exc:
            if not outages.is_outage(exc):
                raise
            _signals_set(stop)
            stop.wait(outage.failed(exc))
            continue
        outage.recovered()
        worker = _Worker([runtime.queue], connection=runtime.redis, serializer=JSONSerializer,
                         name=name, maintenance_interval=MAINTENANCE_INTERVAL)  # fmt: skip
        previous = None
        try:
            worker.work(burst=burst, with_scheduler=True, logging_level="WARNING")
        except Exception as exc:  # raised by RQ's teardown (registering its death)
            if not outages.is_outage(exc):
                raise
        if worker.stopping or (burst and worker.drained):
            return
        previous = worker  # the loop broke on an error: wait for Redis, then start anew
        _signals_set(stop)
        try:
            _reachable(runtime)
        except Exception as exc:
            if not outages.is_outage(exc):
                raise
            stop.wait(outage.failed(exc))
        else:
            log.warning("worker %s: RQ's loop stopped on an error; starting it again", name)
            stop.wait(outage.backoff.next_delay())


def _start_up_line(runtime: Runtime, name: str, active: Dispatcher) -> str:
    from sqlalchemy.engine import make_url

    database = make_url(str(runtime.engine.url)).render_as_string(hide_password=True)
    redis = runtime.redis.connection_pool.connection_kwargs
    return (f"worker {name} started: sandbox backend {active.sandbox.name}, egress gateway "
            f"{'on' if active.gateway is not None else 'off'}, queues {runtime.queue.name}, "
            f"Redis {redis.get('host')}:{redis.get('port')}/{redis.get('db')}, "
            f"database {database.split('?', 1)[0]}")  # fmt: skip


def run_worker(runtime: Runtime, name: str, burst: bool = False) -> None:
    """Work the delivery queue until stopped (or, with ``burst``, until it is empty).

    Outages of Redis or the database never end it: it waits them out with backoff and
    resumes; the sweeper goes on sweeping (and enqueues again whatever Redis lost)."""
    stop = threading.Event()
    interval = float(runtime.config.get("SWEEP_INTERVAL") or sweeper.SWEEP_INTERVAL)
    sweeping = threading.Thread(target=_sweep_forever, args=(runtime, stop, interval), daemon=True)
    with dispatcher(runtime, name) as active:
        tasks.install(active)
        bundles.use_store(store_from_config(runtime.config))
        verification_tasks.install(verification_tasks.context_for(runtime))
        log.info("%s", _start_up_line(runtime, name, active))
        try:
            sweeper.sweep(runtime)
        except Exception as exc:  # the sweeping thread tries again
            if not outages.is_outage(exc):
                raise
        sweeping.start()
        sandbox_stats.start_publishing(runtime.redis, name, active.sandbox, stop)
        try:
            _work(runtime, name, burst, stop)
        finally:
            stop.set()
            tasks.install(None)
            verification_tasks.install(None)
            bundles.use_store(None)
