"""Sandbox benchmark: what a run costs per backend, side by side, in one run.

    python bench/sandbox.py [--quick]

Prints runs/s and ms/run (median, p99) for a bare ``python3`` subprocess,
bubblewrap (a sandbox per run, and warm), Docker strict (a container per run)
and Docker warm pools (one caller, and two callers in parallel), each with a
trivial broker and with a 1,000-commit payload; the same Docker rows under gVisor
(``runsc``) when dockerd has that runtime (``--no-runsc`` skips them); then memory per warm sandbox
and the ratio the benchmark exists for: warm Docker against the target of
100 runs/s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from brokerage.sandbox.interface import BrokerBundle, Limits, RunStatus
from brokerage.sandbox.pool import PoolPolicy
from brokerage.sandbox.sandboxes import Mode

TARGET_RUNS_PER_SECOND = 100.0
"""warm-pool target for a trivial broker on the 2-core reference machine"""

TRIVIAL_CODE = b"""
from brokerage_sdk import BaseBroker

class Broker(BaseBroker):
    def handle(self, payload):
        return {"commits": len(payload["commits"])}
"""
BARE_SCRIPT = "import json, sys; print(len(json.load(sys.stdin)['commits']))"
BUNDLE = BrokerBundle("bench", "1.0.0", {"name": "bench", "version": "1.0.0",
                      "entry_point": "broker.py:Broker"}, {"broker.py": TRIVIAL_CODE})  # fmt: skip
LIMITS = Limits(wall_seconds=30.0)
TENANT = "bench-service"
"""every run names one service (the trust unit): warm rows reuse its bound sandboxes"""


def envelope(commits: int) -> dict[str, Any]:
    commit = {"author": "alice", "branch": "main", "files": [{"file": "src/app.py",
              "type": "modified"}], "message": "Fix the frobnicator, closes #12\n" * 3,
              "node": "0123456789ab", "parents": ["ba9876543210"], "raw_author": "Alice <a@x>",
              "raw_node": "0123456789ab" * 3 + "0123", "revision": None, "size": -1,
              "timestamp": "2026-11-22 05:00:00",
              "utctimestamp": "2026-11-22 05:00:00+00:00"}  # fmt: skip
    return {
        "canon_url": "https://bitbucket.example", "commits": [commit] * commits,
        "repository": {"absolute_url": "/alice/demo/", "fork": False, "is_private": True,
                       "name": "Demo", "owner": "alice", "scm": "git", "slug": "demo",
                       "website": ""},
        "user": "alice", "service": {"URL": "https://hooks.example"}, "broker": "bench",
        "delivery": {"id": "00000000-0000-0000-0000-000000000001", "attempt": 1},
    }  # fmt: skip


PAYLOADS = {"trivial": envelope(1), "1,000 commits": envelope(1000)}


@dataclass
class Row:
    scenario: str
    payload: str
    runs: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.runs / self.seconds

    def cells(self) -> list[str]:
        ordered = sorted(self.latencies)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return [self.scenario, self.payload, str(self.runs), f"{self.rate:.1f}",
                f"{statistics.median(ordered) * 1000:.1f}", f"{p99 * 1000:.1f}"]  # fmt: skip


def measure(scenario: str, payload: str, runs: int, once: Callable[[], None],
            callers: int = 1) -> Row:  # fmt: skip
    once()  # warm-up: starts pools, fills caches
    latencies: list[float] = []
    lock = threading.Lock()

    def work(count: int) -> None:
        for _ in range(count):
            began = time.perf_counter()
            once()
            with lock:
                latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    threads = [threading.Thread(target=work, args=(runs // callers,)) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Row(scenario, payload, len(latencies), time.perf_counter() - began, latencies)


def checked(backend: Any, env: dict[str, Any]) -> Callable[[], None]:
    def once() -> None:
        result = backend.run(BUNDLE, env, LIMITS, TENANT)
        if result.status is not RunStatus.SUCCEEDED:
            raise SystemExit(f"{backend.name}: run failed: {result}")

    return once


def bare(env: dict[str, Any]) -> Callable[[], None]:
    data = json.dumps(env).encode()

    def once() -> None:
        subprocess.run([sys.executable, "-I", "-S", "-c", BARE_SCRIPT], input=data,
                       check=True, capture_output=True)  # fmt: skip

    return once


def scale(quick: bool, normal: int) -> int:
    return max(4, normal // 5) if quick else normal


def table(rows: list[Row]) -> str:
    head = ["scenario", "payload", "runs", "runs/s", "median ms", "p99 ms"]
    lines = [head, ["---"] * len(head)] + [row.cells() for row in rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def pss_bytes(pid: int) -> int:
    """Proportional set size of a process and its descendants (0 once it is gone)."""
    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0
    total = sum(int(line.split()[1]) * 1024 for line in rollup if line.startswith("Pss:"))
    return total + sum(pss_bytes(int(child)) for child in children)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs (a smoke test)")
    parser.add_argument("--no-runsc", action="store_true", help="skip the gVisor rows")
    args = parser.parse_args()
    quick = args.quick
    from brokerage.sandbox.bwrap_backend import BubblewrapBackend
    from brokerage.sandbox.docker_backend import DockerBackend

    rows: list[Row] = []
    backends = {
        "docker warm": DockerBackend(pool=PoolPolicy(size=2)),
        "docker strict": DockerBackend(mode=Mode.STRICT),
        "bubblewrap warm": BubblewrapBackend(pool=PoolPolicy(size=2)),
        "bubblewrap per run": BubblewrapBackend(mode=Mode.STRICT),
    }
    if not args.no_runsc and has_runsc(backends["docker warm"].client):
        backends["docker warm (runsc)"] = DockerBackend(pool=PoolPolicy(size=2), runtime="runsc")
        backends["docker strict (runsc)"] = DockerBackend(mode=Mode.STRICT, runtime="runsc")
    try:
        for payload, env in PAYLOADS.items():
            rows.append(measure("bare python3 subprocess", payload, scale(quick, 100), bare(env)))
            rows.append(measure("bubblewrap per run", payload, scale(quick, 50),
                                checked(backends["bubblewrap per run"], env)))  # fmt: skip
            rows.append(measure("docker strict", payload, scale(quick, 20),
                                checked(backends["docker strict"], env)))  # fmt: skip
            rows.append(measure("bubblewrap warm", payload, scale(quick, 500),
                                checked(backends["bubblewrap warm"], env)))  # fmt: skip
            rows.append(measure("docker warm", payload, scale(quick, 1000),
                                checked(backends["docker warm"], env)))  # fmt: skip
            rows.append(measure("docker warm, 2 callers", payload, scale(quick, 1000),
                                checked(backends["docker warm"], env), callers=2))  # fmt: skip
            if "docker warm (runsc)" in backends:
                rows.append(measure("docker strict (runsc)", payload, scale(quick, 10),
                                    checked(backends["docker strict (runsc)"], env)))  # fmt: skip
                rows.append(measure("docker warm (runsc)", payload, scale(quick, 200),
                                    checked(backends["docker warm (runsc)"], env)))  # fmt: skip
        print(table(rows))
        print()
        print_memory(backends)
        print_ratio(rows)
    finally:
        for backend in backends.values():
            backend.close()


def has_runsc(client: Any) -> bool:
    return "runsc" in (client.info().get("Runtimes") or {})


def print_memory(backends: dict[str, Any]) -> None:
    docker_pool = backends["docker warm"].pool
    sandboxes = [s for p in docker_pool.pools.values() for s in p.idle]
    if sandboxes:
        usage = statistics.median(s.memory_usage() for s in sandboxes)
        print(f"memory per warm Docker sandbox (cgroup usage): {usage / 2**20:.1f} MiB")
    bwrap_pool = backends["bubblewrap warm"].pool
    bwraps = [s for p in bwrap_pool.pools.values() for s in p.idle if s.process]
    if bwraps:
        pss = statistics.median(pss_bytes(s.process.pid) for s in bwraps)
        print(f"memory per warm bubblewrap sandbox (PSS of its processes): {pss / 2**20:.1f} MiB")


def print_ratio(rows: list[Row]) -> None:
    def rate(scenario: str) -> float:
        return next(r.rate for r in rows if r.scenario == scenario and r.payload == "trivial")

    warm, strict = rate("docker warm"), rate("docker strict")
    best = max(warm, rate("docker warm, 2 callers"))
    print(f"target: docker warm >= {TARGET_RUNS_PER_SECOND:.0f} runs/s (trivial broker)")
    print(f"  one caller:  {warm:.1f} runs/s = {warm / TARGET_RUNS_PER_SECOND:.2f}x target")
    print(f"  best:        {best:.1f} runs/s = {best / TARGET_RUNS_PER_SECOND:.2f}x target")
    print(f"  warm vs a container per run: {warm / strict:.0f}x")


if __name__ == "__main__":
    main()
