"""Warm pools whose trust unit is one service (one *tenant*).

The caller names each run's tenant with an opaque string (the platform passes the
service's id); the pool knows nothing else about it. A sandbox that has served a run
of tenant T only ever serves T again - the same broker version with the same
start-time limits, for T - and is then retired:

* **blank** sandboxes: per broker version (``bundle.key`` plus the limits fixed at
  sandbox start) up to ``blank`` started sandboxes with the broker loaded that have
  run nothing yet. A background thread starts them, so binding a new tenant does not
  wait for a container to start;
* **bound** sandboxes: a run of T takes an idle sandbox bound to (version, T), else
  binds a blank one to T, else starts one itself (a cold start); a new blank is then
  prepared in the background. At most ``size`` sandboxes per tenant;
* retirement: after ``idle_seconds`` unused, when the worker holds more than
  ``max_bound`` bound sandboxes (the least recently used goes), after ``max_runs``
  runs or ``max_age_seconds``, at once after any run that did not end in SUCCEEDED or
  FAILED (a limit breach or a lost runner), and before its runner's own idle exit.

A run without a tenant (vendor tests, verification) is bound to its version's
anonymous tenant, ``None``, which no named tenant can equal. Blank sets are
LRU-bounded across versions (``max_versions``). ``stats()`` reports the gauges and
counters the platform exposes at ``/metrics``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from brokerage.core.config import DEFAULTS
from brokerage.sandbox import protocol
from brokerage.sandbox.errors import SandboxError
from brokerage.sandbox.interface import BrokerBundle, Limits, RunResult
from brokerage.sandbox.sandboxes import Sandbox, SandboxOptions, container_limits

log = logging.getLogger(__name__)

SandboxFactory = Callable[[BrokerBundle, Limits], Sandbox]
VersionKey = tuple[str, tuple[Any, ...]]
"""a broker version as the pool sees it: bundle key and start-time limits"""
TenantKey = tuple[str, tuple[Any, ...], str | None]
"""what a bound sandbox serves: the version key plus the tenant (None: anonymous)"""


@dataclass(frozen=True)
class PoolPolicy:
    size: int = DEFAULTS["SANDBOX_POOL_SIZE"]
    """sandboxes bound to one tenant (service) at most"""
    max_runs: int = DEFAULTS["SANDBOX_POOL_MAX_RUNS"]
    """runs one sandbox serves before it is replaced"""
    max_age_seconds: float = DEFAULTS["SANDBOX_POOL_MAX_AGE"]
    """seconds a sandbox serves (or waits blank) before it is replaced"""
    max_versions: int = DEFAULTS["SANDBOX_POOL_MAX_VERSIONS"]
    """broker versions whose blank sandboxes are kept; the least recently used goes first"""
    blank: int = DEFAULTS["SANDBOX_POOL_BLANK"]
    """blank sandboxes kept ready per broker version (0: every new binding starts cold)"""
    max_bound: int = DEFAULTS["SANDBOX_POOL_MAX_BOUND"]
    """bound sandboxes per worker at most; beyond it the least recently used idle one goes"""
    idle_seconds: float = DEFAULTS["SANDBOX_POOL_IDLE"]
    """seconds a bound sandbox may stay unused before it is retired"""


IDLE_FLOOR_SECONDS = 60.0
"""seconds a runner waits for a request at least, however short the pool's max age"""
IDLE_MARGIN_SECONDS = 60.0
"""seconds a runner's idle limit exceeds the pool's max age, so the pool retires first"""
TICK_SECONDS = 5.0
"""seconds between the background thread's sweeps at most (idle retirement)"""
START_RETRY_SECONDS = 5.0
"""seconds the background thread waits after a blank sandbox failed to start"""


def runner_idle_seconds(policy: PoolPolicy) -> float:
    """How long a warm runner waits for a request before it exits by itself.

    Longer than ``max_age_seconds``: the pool never hands out a sandbox that old,
    so only a sandbox nobody serves any more (an orphan) reaches it."""
    return max(policy.max_age_seconds, IDLE_FLOOR_SECONDS) + IDLE_MARGIN_SECONDS


def with_idle_exit(options: SandboxOptions, policy: PoolPolicy) -> SandboxOptions:
    """``options`` with the runner idle limit ``policy`` implies, unless one is set."""
    if options.idle_exit_seconds is not None:
        return options
    return replace(options, idle_exit_seconds=runner_idle_seconds(policy))


class KeyPool:
    """The sandboxes bound to one tenant of one broker version."""

    def __init__(self, key: TenantKey) -> None:
        self.key = key
        self.idle: list[Sandbox] = []
        self.busy = 0
        self.started = 0
        """sandboxes bound to this tenant (from blank or cold)"""
        self.evicted = False

    @property
    def total(self) -> int:
        return len(self.idle) + self.busy


class Blanks:
    """Blank sandboxes of one broker version, and how to start another."""

    def __init__(self, bundle: BrokerBundle, limits: Limits) -> None:
        self.bundle, self.limits = bundle, limits
        self.idle: list[Sandbox] = []
        self.starting = 0
        self.retry_at = 0.0
        self.evicted = False


@dataclass(frozen=True)
class PoolStats:
    """One worker's pool, for ``/metrics``."""

    blank: int
    """blank sandboxes ready (started, nothing run)"""
    bound: int
    """sandboxes bound to a tenant (idle or running)"""
    tenants: int
    """tenants with at least one bound sandbox"""
    started: int
    """sandboxes started so far"""
    bindings: dict[str, int] = field(default_factory=dict)
    """bindings so far by source: ``blank`` (prepared) or ``cold`` (started by the run)"""
    retirements: dict[str, int] = field(default_factory=dict)
    """sandboxes retired so far by reason"""


class WarmPool:
    def __init__(
        self, factory: SandboxFactory, policy: PoolPolicy | None = None, backend: str = ""
    ) -> None:
        self.factory, self.backend = factory, backend
        self.policy = policy or PoolPolicy()
        self.pools: OrderedDict[TenantKey, KeyPool] = OrderedDict()
        """bound sandboxes by tenant key, least recently used first"""
        self.blanks: OrderedDict[VersionKey, Blanks] = OrderedDict()
        """blank sandboxes by broker version, least recently used first"""
        lock = threading.RLock()
        self.cond = threading.Condition(lock)
        """runs waiting for a tenant's sandbox"""
        self.kick = threading.Condition(lock)
        """the keeper thread waiting for work (a blank taken, close)"""
        self.started = 0
        """sandboxes started so far (for tests and metrics)"""
        self.bound_started: Counter[str] = Counter()
        """sandboxes bound so far per bundle key"""
        self.bindings: Counter[str] = Counter()
        self.retirements: Counter[str] = Counter()
        self.closing: list[threading.Thread] = []
        self.closed = False
        self.keeper: threading.Thread | None = None

    def run(
        self,
        bundle: BrokerBundle,
        envelope: Mapping[str, Any],
        limits: Limits,
        tenant: str | None = None,
    ) -> RunResult:
        version: VersionKey = (bundle.key, container_limits(limits))
        key: TenantKey = (*version, tenant)
        try:
            pool, sandbox = self._checkout(key, version, bundle, limits)
        except SandboxError as exc:
            return protocol.sandbox_error(str(exc), self.backend)
        try:
            return sandbox.run(envelope, limits)
        finally:
            self._checkin(pool, sandbox)

    # -- checkout and checkin ------------------------------------------------------------

    def _checkout(
        self, key: TenantKey, version: VersionKey, bundle: BrokerBundle, limits: Limits
    ) -> tuple[KeyPool, Sandbox]:
        with self.cond:
            self._ensure_keeper()
            pool = self._pool(key)
            while not pool.idle and pool.total >= self.policy.size:
                self.cond.wait()
            sandbox = self._pop_usable(pool.idle)
            pool.busy += 1
            if sandbox is not None:
                if sandbox.bound_to != key:  # the invariant, checked
                    pool.busy -= 1
                    self._retire(sandbox, "misbound")
                    raise SandboxError("a pooled sandbox was bound to another tenant")
                return pool, sandbox
            sandbox = self._take_blank(version, bundle, limits)
            if sandbox is not None:
                self._bind(pool, sandbox, "blank")
                return pool, sandbox
        try:
            sandbox = self._start(bundle, limits)
        except BaseException:
            with self.cond:
                pool.busy -= 1
                self._drop_if_empty(pool)
                self.cond.notify_all()
            raise
        with self.cond:
            self._bind(pool, sandbox, "cold")
        return pool, sandbox

    def _bind(self, pool: KeyPool, sandbox: Sandbox, source: str) -> None:
        sandbox.bound_to = pool.key
        pool.started += 1
        self.bound_started[pool.key[0]] += 1
        self.bindings[source] += 1
        self._enforce_cap()

    def _checkin(self, pool: KeyPool, sandbox: Sandbox) -> None:
        with self.cond:
            pool.busy -= 1
            now = time.monotonic()
            if sandbox.broken:
                self._retire(sandbox, "broken")
            elif pool.evicted or self.closed:
                self._retire(sandbox, "shutdown")
            elif reason := self._worn(sandbox, now):
                self._retire(sandbox, reason)
            else:
                sandbox.idle_since = now
                pool.idle.append(sandbox)
                self._enforce_cap()
            self._drop_if_empty(pool)
            self.cond.notify_all()

    def _pool(self, key: TenantKey) -> KeyPool:
        pool = self.pools.get(key)
        if pool is None:
            pool = self.pools[key] = KeyPool(key)
        self.pools.move_to_end(key)
        return pool

    def _drop_if_empty(self, pool: KeyPool) -> None:
        if pool.total == 0 and self.pools.get(pool.key) is pool:
            del self.pools[pool.key]

    def _pop_usable(self, idle: list[Sandbox]) -> Sandbox | None:
        """The most recently used idle sandbox still fit to serve; retire the unfit."""
        now = time.monotonic()
        while idle:
            sandbox = idle.pop()
            reason = self._worn(sandbox, now) or self._runner_idle(sandbox, now)
            if not reason:
                return sandbox
            self._retire(sandbox, reason)
        return None

    def _enforce_cap(self) -> None:
        """Retire least recently used idle bound sandboxes beyond ``max_bound``."""
        excess = sum(p.total for p in self.pools.values()) - self.policy.max_bound
        for pool in list(self.pools.values()):
            while excess > 0 and pool.idle:
                self._retire(pool.idle.pop(0), "lru")
                excess -= 1
            self._drop_if_empty(pool)
            if excess <= 0:
                return

    # -- blank sandboxes -------------------------------------------------------------

    def _take_blank(
        self, version: VersionKey, bundle: BrokerBundle, limits: Limits
    ) -> Sandbox | None:
        """A blank sandbox of ``version`` if one is ready; asks for the next either way."""
        if self.policy.blank <= 0:
            return None
        blanks = self.blanks.get(version)
        if blanks is None:
            blanks = self.blanks[version] = Blanks(bundle, limits)
            while len(self.blanks) > max(self.policy.max_versions, 1):
                _, old = self.blanks.popitem(last=False)
                old.evicted = True
                for sandbox in old.idle:
                    self._retire(sandbox, "version_lru")
                old.idle.clear()
        self.blanks.move_to_end(version)
        sandbox = self._pop_usable(blanks.idle)
        self.kick.notify()  # the keeper starts a replacement
        return sandbox

    def _next_refill(self, now: float) -> Blanks | None:
        for blanks in reversed(self.blanks.values()):  # most recently used first
            wanted = len(blanks.idle) + blanks.starting < self.policy.blank
            if wanted and now >= blanks.retry_at:
                return blanks
        return None

    def _ensure_keeper(self) -> None:
        if self.keeper is None or not self.keeper.is_alive():
            self.closed = False
            self.keeper = threading.Thread(target=self._keep, name="sandbox-pool", daemon=True)
            self.keeper.start()

    def _keep(self) -> None:
        """Prepare blank sandboxes; retire idle bound ones. Runs until ``close``."""
        tick = max(0.05, min(TICK_SECONDS, self.policy.idle_seconds / 4))
        while True:
            with self.cond:
                if self.closed:
                    return
                now = time.monotonic()
                self._expire(now)
                blanks = self._next_refill(now)
                if blanks is None:
                    self.kick.wait(tick)
                    continue
                blanks.starting += 1
            try:
                sandbox: Sandbox | None = self._start(blanks.bundle, blanks.limits)
            except Exception as exc:  # noqa: BLE001 - a run that needs one starts it and reports
                log.warning("a blank sandbox did not start: %s", exc)
                sandbox = None
            with self.cond:
                blanks.starting -= 1
                if sandbox is None:
                    blanks.retry_at = time.monotonic() + START_RETRY_SECONDS
                elif blanks.evicted or self.closed:
                    self._retire(sandbox, "shutdown" if self.closed else "version_lru")
                else:
                    sandbox.idle_since = sandbox.started_at
                    blanks.idle.append(sandbox)

    def _expire(self, now: float) -> None:
        for pool in list(self.pools.values()):
            keep = []
            for sandbox in pool.idle:
                idle_for = now - sandbox.idle_since
                if idle_for >= self.policy.idle_seconds:
                    self._retire(sandbox, "idle")
                elif reason := self._worn(sandbox, now) or self._runner_idle(sandbox, now):
                    self._retire(sandbox, reason)
                else:
                    keep.append(sandbox)
            pool.idle[:] = keep
            self._drop_if_empty(pool)
        for blanks in self.blanks.values():
            kept = []
            for sandbox in blanks.idle:
                if reason := self._worn(sandbox, now) or self._runner_idle(sandbox, now):
                    self._retire(sandbox, reason)
                else:
                    kept.append(sandbox)
            blanks.idle[:] = kept

    # -- starting and retiring ---------------------------------------------------------

    def _start(self, bundle: BrokerBundle, limits: Limits) -> Sandbox:
        sandbox = self.factory(bundle, limits)
        sandbox.start()
        with self.cond:
            self.started += 1
        return sandbox

    def _retire(self, sandbox: Sandbox, reason: str) -> None:
        """Count and close off the caller's path (removing a container takes tens of ms).
        Called with ``cond`` held."""
        self.retirements[reason] += 1
        thread = threading.Thread(target=sandbox.close, name="sandbox-close", daemon=True)
        self.closing = [t for t in self.closing if t.is_alive()] + [thread]
        thread.start()

    def _worn(self, sandbox: Sandbox, now: float) -> str:
        old = now - sandbox.started_at >= self.policy.max_age_seconds
        return "worn" if old or sandbox.runs >= self.policy.max_runs else ""

    @staticmethod
    def _runner_idle(sandbox: Sandbox, now: float) -> str:
        """A runner idle for half its own idle limit may be gone before a run reaches it."""
        limit = sandbox.options.idle_exit_seconds
        idle_for = now - sandbox.idle_since
        return "runner_idle" if limit and idle_for >= limit / 2 else ""

    # -- reports -----------------------------------------------------------------------

    def started_for(self, bundle: BrokerBundle) -> int:
        """Sandboxes bound to runs of ``bundle`` (any tenant, any limits) so far."""
        with self.cond:
            return self.bound_started[bundle.key]

    def warm(self) -> int:
        """Idle bound sandboxes across all tenants."""
        with self.cond:
            return sum(len(p.idle) for p in self.pools.values())

    def blank_count(self) -> int:
        with self.cond:
            return sum(len(b.idle) for b in self.blanks.values())

    def stats(self) -> PoolStats:
        with self.cond:
            return PoolStats(
                blank=sum(len(b.idle) for b in self.blanks.values()),
                bound=sum(p.total for p in self.pools.values()),
                tenants=len(self.pools),
                started=self.started,
                bindings=dict(self.bindings),
                retirements=dict(self.retirements),
            )

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.kick.notify_all()
            keeper, self.keeper = self.keeper, None
        if keeper is not None:
            keeper.join()
        with self.cond:
            sandboxes = [s for p in self.pools.values() for s in p.idle]
            sandboxes += [s for b in self.blanks.values() for s in b.idle]
            for pool in self.pools.values():
                pool.evicted = True
            self.pools.clear()
            self.blanks.clear()
        for sandbox in sandboxes:
            sandbox.close()
        for thread in self.closing:
            thread.join()
        self.closing.clear()
