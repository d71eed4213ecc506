"""The trust unit is one service: a sandbox that ran service A never serves service B.

On Docker warm and bubblewrap warm, with RestrictedPython off (only the sandbox and
the pool stand), service A's run plants random canaries - files in /tmp, /dev/shm and
$HOME, a lingering background process, an environment variable, a module-level
global in a module the runner preloads - and service B's run of the same broker
version must find none of them and must run in another sandbox (its PID namespace and
its PID 1's start time, seen from inside, differ; so do the container or bwrap process
on the host).
A's next run may reuse A's sandbox. A run without a service gets a sandbox of its own.
The LRU cap and idle retirement really end sandboxes; the pool's figures follow.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest

from brokerage.sandbox.interface import RunStatus
from brokerage.sandbox.pool import PoolPolicy
from brokerage.sandbox.sandboxes import Mode, SandboxOptions
from tests.sandbox.conftest import BACKENDS, make_backend
from tests.sandbox.sandbox_fixtures import FAST, bundle, envelope

CANARY = bundle(
    """
    import json, os, sys, time

    request = json.load(sys.stdin)
    HOME = os.environ.get("HOME") or "/"
    PLACES = ("/tmp", "/dev/shm", HOME)

    def scan(token):
        found = []
        for place in PLACES:
            try:
                names = os.listdir(place)
            except OSError:
                continue
            for name in names:
                text = name
                try:
                    with open(os.path.join(place, name)) as handle:
                        text += handle.read(4096)
                except OSError:
                    pass
                if token in text:
                    found.append("file " + os.path.join(place, name))
        for pid in (p for p in os.listdir("/proc") if p.isdigit()):
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as handle:
                    if token.encode() in handle.read():
                        found.append("process " + pid)
            except OSError:
                pass
        if token in os.environ.get("BROKERAGE_CANARY", ""):
            found.append("environment")
        if token in str(getattr(json, "brokerage_canary", "")):
            found.append("module global")
        return found

    with open("/proc/1/stat") as handle:  # the runner's start time: namespace inodes get reused
        started = handle.read().rsplit(")", 1)[1].split()[19]
    answer = {"pidns": os.readlink("/proc/self/ns/pid") + "@" + started,
              "mntns": os.readlink("/proc/self/ns/mnt")}
    if request.get("look"):
        answer["found"] = scan(request["look"])
    token = request.get("plant")
    if token:
        for place in PLACES:
            try:
                with open(os.path.join(place, "canary-" + token), "w") as handle:
                    handle.write(token)
            except OSError:
                pass
        os.environ["BROKERAGE_CANARY"] = token
        json.brokerage_canary = token
        if os.fork() == 0:
            try:
                os.setsid()
                sleeper = "import time; time.sleep(60)"
                os.execv(sys.executable, [sys.executable, "-c", sleeper, token])
            finally:
                os._exit(0)
        time.sleep(0.2)  # the background process has exec'd
        answer["own"] = scan(token)
    print(json.dumps(answer))
    """,
    entry="broker.py",
    name="canary",
)

UNGUARDED = SandboxOptions(guarded=False)
PAIR = PoolPolicy(size=1, blank=1)


def run(backend: Any, tenant: str | None, **request: str) -> dict[str, Any]:
    result = backend.run(CANARY, envelope(**request), FAST, tenant)
    assert result.status is RunStatus.SUCCEEDED, result
    return json.loads(result.stdout)


def identities(backend: Any, tenant: str | None) -> set[Any]:
    """Host-side identities (container ids, bwrap pids) of the tenant's idle sandboxes."""
    sandboxes = [s for p in backend.pool.pools.values() for s in p.idle if s.bound_to[-1] == tenant]
    return {s.container_id if backend.name == "docker" else s.process.pid for s in sandboxes}


def gone(backend: Any, sandbox: Any) -> bool:
    if backend.name == "docker":
        containers = backend.client.containers.list(all=True, filters={"id": sandbox.container_id})
        return sandbox.container_id is None or not containers
    return sandbox.process is None or sandbox.process.poll() is not None


def eventually(check: Any, seconds: float = 60.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return bool(check())


@pytest.fixture(scope="module", params=BACKENDS)
def warm(request: pytest.FixtureRequest) -> Iterator[Any]:
    made = make_backend(request.param, request, pool=PAIR, options=UNGUARDED)
    yield made
    made.close()


def test_another_service_finds_nothing_and_runs_elsewhere(warm):
    token = secrets.token_hex(16)
    a = run(warm, "service-a", plant=token)
    # every canary was really planted and is visible from inside A's sandbox
    kinds = {entry.split()[0] for entry in a["own"]}
    assert {"file", "process", "environment", "module"} <= kinds, a
    b = run(warm, "service-b", look=token)
    assert b["found"] == [], b
    assert b["pidns"] != a["pidns"] and b["mntns"] != a["mntns"]
    assert identities(warm, "service-a").isdisjoint(identities(warm, "service-b"))
    again = run(warm, "service-a", look=token)
    assert again["pidns"] == a["pidns"]  # A's next run may reuse A's sandbox


def test_a_run_without_a_service_never_lands_in_a_services_sandbox(warm):
    token = secrets.token_hex(16)
    a = run(warm, "service-c")
    anonymous = run(warm, None, plant=token)
    assert anonymous["pidns"] != a["pidns"]
    after = run(warm, "service-c", look=token)
    assert after["pidns"] == a["pidns"] and after["found"] == []
    other = run(warm, "service-d", look=token)
    assert other["pidns"] not in (a["pidns"], anonymous["pidns"]) and other["found"] == []


def test_metrics_reflect_bindings(warm):
    before = warm.pool.stats()
    run(warm, "service-e")
    run(warm, "service-f")
    run(warm, "service-e")
    after = warm.pool.stats()
    assert sum(after.bindings.values()) - sum(before.bindings.values()) == 2
    assert after.bound >= 2 and after.tenants >= 2
    assert eventually(lambda: warm.pool.stats().blank == 1)  # one blank kept ready
    assert after.bindings.get("blank", 0) >= 1  # new services took prepared sandboxes


@pytest.fixture(params=BACKENDS)
def fresh(request: pytest.FixtureRequest) -> Iterator[Any]:
    """``fresh(**kwargs)``: a backend of this kind made for one test, closed after it."""
    made: list[Any] = []

    def make(**kwargs: Any) -> Any:
        made.append(make_backend(request.param, request, options=UNGUARDED, **kwargs))
        return made[-1]

    yield make
    for backend in made:
        backend.close()


def test_the_least_recently_used_service_sandbox_is_retired(fresh):
    backend = fresh(pool=PoolPolicy(size=1, blank=0, max_bound=2))
    first = run(backend, "service-a")
    [sandbox_a] = [s for p in backend.pool.pools.values() for s in p.idle]
    run(backend, "service-b")
    run(backend, "service-c")  # A is the least recently used: it goes
    assert eventually(lambda: gone(backend, sandbox_a))
    stats = backend.pool.stats()
    assert stats.bound == 2 and stats.retirements == {"lru": 1}
    assert run(backend, "service-a")["pidns"] != first["pidns"]


def test_an_idle_service_sandbox_is_retired(fresh):
    backend = fresh(pool=PoolPolicy(size=1, blank=0, idle_seconds=1.0))
    first = run(backend, "service-a")
    [sandbox] = [s for p in backend.pool.pools.values() for s in p.idle]
    assert eventually(lambda: gone(backend, sandbox))
    assert backend.pool.stats().retirements == {"idle": 1}
    assert backend.pool.stats().bound == 0
    assert run(backend, "service-a")["pidns"] != first["pidns"]


def test_strict_mode_starts_a_sandbox_per_run(fresh):
    backend = fresh(mode=Mode.STRICT)
    token = secrets.token_hex(16)
    first = run(backend, "service-a", plant=token)
    second = run(backend, "service-a", look=token)
    assert second["pidns"] != first["pidns"] and second["found"] == []


def test_every_workers_pool_figures_reach_the_metrics(warm, redis_server):
    import threading

    from prometheus_client import CollectorRegistry, generate_latest
    from redis import Redis

    from brokerage.platform.deliveries import sandbox_stats

    redis = Redis.from_url(redis_server.url)
    run(warm, "service-g")
    run(warm, "service-h")
    stop = threading.Event()
    publisher = threading.Thread(
        target=sandbox_stats.publish_forever, args=(redis, "worker-1", warm, stop)
    )
    publisher.start()
    assert eventually(lambda: "worker-1" in sandbox_stats.read_all(redis))

    class Collector:
        def collect(self):
            return sandbox_stats.collect(redis)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector())
    text = generate_latest(registry).decode()
    stats = warm.pool.stats()
    assert f'brokerage_sandbox_bound{{worker="worker-1"}} {stats.bound:.1f}' in text
    assert f'brokerage_sandbox_tenants{{worker="worker-1"}} {stats.tenants:.1f}' in text
    bindings = sum(stats.bindings.values())
    shown = [
        line for line in text.splitlines() if line.startswith("brokerage_sandbox_bindings_total")
    ]
    assert sum(float(line.split()[-1]) for line in shown) == bindings >= 2
    assert "brokerage_sandbox_blank" in text and "brokerage_sandbox_retirements_total" in text
    stop.set()
    publisher.join()
    assert sandbox_stats.read_all(redis) == {}  # a stopped worker's figures go
