"""Pool bookkeeping with stand-in sandboxes: reuse within a tenant, blank sandboxes,
recycling, LRU and idle retirement, never sharing between tenants or versions."""

from __future__ import annotations

import threading
import time

import pytest

from brokerage.sandbox.interface import Limits, RunResult, RunStatus
from brokerage.sandbox.pool import PoolPolicy, WarmPool, runner_idle_seconds, with_idle_exit
from brokerage.sandbox.sandboxes import SandboxOptions
from tests.sandbox.sandbox_fixtures import bundle, envelope


class StandIn:
    """Behaves like a Sandbox; the status of each run comes from the envelope."""

    instances: list[StandIn] = []

    def __init__(self, broker, limits, options=None):
        self.bundle, self.limits = broker, limits
        self.options = options or SandboxOptions()
        self.started_at = self.idle_since = time.monotonic()
        self.bound_to = None
        self.runs = 0
        self.broken = False
        self.closed = threading.Event()
        StandIn.instances.append(self)

    def start(self):
        self.started_at = self.idle_since = time.monotonic()

    def run(self, env, limits):
        self.runs += 1
        status = RunStatus(env.get("status", "succeeded"))
        self.broken = status not in (RunStatus.SUCCEEDED, RunStatus.FAILED)
        return RunResult(status, result={"sandbox": id(self), "key": self.bundle.key})

    def close(self):
        self.closed.set()


V1, V2, V3 = (bundle("x = 1", version=v, entry="broker.py") for v in ("1.0.0", "1.0.1", "2.0.0"))


@pytest.fixture
def pools():
    made: list[WarmPool] = []

    def make(factory=StandIn, **policy):
        StandIn.instances = []
        pool = WarmPool(factory, PoolPolicy(**policy))
        made.append(pool)
        return pool

    yield make
    for pool in made:
        pool.close()


def served(pool, broker=V1, tenant="svc-a", **env):
    return pool.run(broker, envelope(**env), Limits(), tenant).result["sandbox"]


def eventually(check, seconds=5.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return check()


def test_a_warm_sandbox_serves_the_next_run_of_its_tenant(pools):
    pool = pools(size=1, blank=0)
    first = served(pool)
    assert served(pool) == first
    assert pool.started == 1 and pool.started_for(V1) == 1


def test_tenants_never_share_a_sandbox(pools):
    pool = pools(size=1)
    a = served(pool, tenant="svc-a")
    b = served(pool, tenant="svc-b")
    assert a != b
    assert served(pool, tenant="svc-a") == a and served(pool, tenant="svc-b") == b


def test_a_run_without_a_tenant_never_lands_in_a_tenants_sandbox(pools):
    pool = pools(size=1)
    named = {served(pool, tenant="svc-a"), served(pool, tenant="svc-b")}
    anonymous = served(pool, tenant=None)
    assert anonymous not in named
    assert served(pool, tenant="svc-a") in named  # and the named tenant keeps its own
    assert served(pool, tenant="") not in named | {anonymous}  # "" is a name, not None


def test_versions_never_share_a_sandbox(pools):
    pool = pools(size=1)
    one = pool.run(V1, envelope(), Limits(), "svc-a").result
    two = pool.run(V2, envelope(), Limits(), "svc-a").result
    assert one["sandbox"] != two["sandbox"] and one["key"] != two["key"]


def test_other_start_time_limits_get_another_sandbox(pools):
    pool = pools(size=1)
    one = pool.run(V1, envelope(), Limits(), "svc-a").result["sandbox"]
    two = pool.run(V1, envelope(), Limits(memory_bytes=64 << 20), "svc-a").result["sandbox"]
    assert one != two


def test_a_new_tenant_takes_a_blank_sandbox_and_a_new_blank_is_prepared(pools):
    pool = pools(size=1, blank=1)
    served(pool, tenant="svc-a")  # cold: nothing was prepared yet
    assert eventually(lambda: pool.blank_count() == 1)
    [blank] = [s for b in pool.blanks.values() for s in b.idle]
    assert blank.runs == 0 and blank.bound_to is None
    assert served(pool, tenant="svc-b") == id(blank)
    assert blank.bound_to[-1] == "svc-b"
    assert eventually(lambda: pool.blank_count() == 1)
    assert pool.stats().bindings == {"cold": 1, "blank": 1}


def test_a_limit_breach_retires_the_sandbox_at_once(pools):
    pool = pools(size=1, blank=0)
    served(pool, status="timed_out")
    assert StandIn.instances[0].closed.wait(5)
    served(pool)
    assert pool.started_for(V1) == 2
    assert pool.stats().retirements == {"broken": 1}


def test_a_failed_broker_keeps_its_sandbox(pools):
    pool = pools(size=1)
    first = served(pool, status="failed")
    assert served(pool) == first
    assert pool.started_for(V1) == 1


def test_recycled_after_max_runs(pools):
    pool = pools(size=1, max_runs=3)
    for _ in range(7):
        served(pool)
    assert pool.started_for(V1) == 3


def test_recycled_after_max_age(pools):
    pool = pools(size=1, max_age_seconds=0.0, blank=0)
    served(pool)
    served(pool)
    assert pool.started_for(V1) == 2


def test_bound_sandboxes_beyond_the_cap_go_least_recently_used_first(pools):
    pool = pools(size=1, max_bound=2, blank=0)
    a = served(pool, tenant="svc-a")
    b = served(pool, tenant="svc-b")
    assert served(pool, tenant="svc-a") == a  # b is now the least recently used
    served(pool, tenant="svc-c")
    assert StandIn.instances[1].closed.wait(5)  # b's sandbox
    assert not StandIn.instances[0].closed.is_set()
    assert pool.stats().bound == 2 and pool.stats().retirements == {"lru": 1}
    assert served(pool, tenant="svc-a") == a
    assert served(pool, tenant="svc-b") != b  # b starts over in a new sandbox


def test_an_idle_bound_sandbox_is_retired(pools):
    pool = pools(size=1, idle_seconds=0.2, blank=0)
    first = served(pool, tenant="svc-a")
    assert StandIn.instances[0].closed.wait(5)
    assert pool.stats().retirements == {"idle": 1} and pool.stats().bound == 0
    assert served(pool, tenant="svc-a") != first


def test_blanks_of_the_least_recently_used_version_go(pools):
    pool = pools(size=1, max_versions=2)
    for version in (V1, V2):
        served(pool, version)
    assert eventually(lambda: pool.blank_count() == 2)
    served(pool, V3)  # V1's blank goes
    assert eventually(lambda: pool.stats().retirements.get("version_lru") == 1)
    assert {key[0] for key in pool.blanks} == {V2.key, V3.key}


def test_a_runner_near_its_own_idle_exit_is_not_handed_out(pools):
    def short_lived(broker, limits):
        return StandIn(broker, limits, SandboxOptions(idle_exit_seconds=0.2))

    pool = pools(short_lived, size=1, blank=0)
    first = served(pool)
    time.sleep(0.15)
    assert served(pool) != first
    assert pool.stats().retirements == {"runner_idle": 1}


def test_concurrent_runs_never_exceed_the_pool_size(pools):
    pool = pools(size=2)
    work = (V1, envelope(), Limits(), "svc-a")
    threads = [threading.Thread(target=pool.run, args=work) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert pool.started_for(V1) <= 2


def test_stats_count_blank_bound_and_bindings(pools):
    pool = pools(size=1, blank=1)
    for tenant in ("a", "b", "c", "a"):
        served(pool, tenant=tenant)
    assert eventually(lambda: pool.stats().blank == 1)
    stats = pool.stats()
    assert stats.bound == 3 and stats.tenants == 3
    assert sum(stats.bindings.values()) == 3


def test_close_closes_idle_and_blank_sandboxes(pools):
    pool = pools()
    served(pool)
    assert eventually(lambda: pool.blank_count() == 1)
    pool.close()
    assert all(s.closed.is_set() for s in StandIn.instances)


def test_a_sandbox_that_aged_while_idle_is_not_handed_out(pools):
    pool = pools(size=1, max_age_seconds=60, blank=0)
    first = served(pool)
    StandIn.instances[0].started_at -= 61  # its runner may be close to its idle exit
    assert served(pool) != first
    assert StandIn.instances[0].closed.wait(5)
    assert pool.started_for(V1) == 2


@pytest.mark.parametrize("max_age", [0.5, 600.0, 86400.0])
def test_runners_outwait_the_pool(max_age):
    policy = PoolPolicy(max_age_seconds=max_age)
    assert runner_idle_seconds(policy) > max_age
    assert with_idle_exit(SandboxOptions(), policy).idle_exit_seconds == runner_idle_seconds(policy)
    assert with_idle_exit(SandboxOptions(idle_exit_seconds=2.0), policy).idle_exit_seconds == 2.0
