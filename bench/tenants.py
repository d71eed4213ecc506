"""Tenant benchmark: what the trust unit "one service" costs as services multiply.

    python bench/tenants.py [--quick] [--backend docker|bubblewrap|both] [--services 1,10,100,1000]

One caller (one worker process's view) sends runs of a trivial broker through a warm
pool with the shipped defaults (``PoolPolicy()``: one blank sandbox per version, at most
32 bound sandboxes per worker, 60 s idle retirement). Each run names a service drawn
Zipf-like (weight 1/k^s) from 1, 10, 100 and 1,000 distinct services, so a few services
are hot and a long tail comes rarely. For every point it prints runs/s, latency
(median, p99), the CPU the whole machine spent per run (busy time from /proc/stat: the
worker, sandboxes and Docker's daemons - and anything else running, so run it alone),
how runs were served (a sandbox already bound to the service, a prepared blank one, a
cold start), the latency of each kind, and memory at the end (worker RSS plus every
sandbox the pool holds). Then what a cold service costs.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from cpu import machine_seconds  # noqa: E402

from brokerage.sandbox.interface import BrokerBundle, Limits, RunStatus  # noqa: E402
from brokerage.sandbox.pool import PoolPolicy  # noqa: E402
from sandbox import pss_bytes  # noqa: E402 - bench/sandbox.py

TARGET_PER_CORE = 100.0
"""warm runs per CPU-second (per core) a trivial broker must reach where services repeat"""
TRIVIAL_CODE = b"""
from brokerage_sdk import BaseBroker

class Broker(BaseBroker):
    def handle(self, payload):
        return {"commits": len(payload["commits"])}
"""
BUNDLE = BrokerBundle("bench", "1.0.0", {"name": "bench", "version": "1.0.0",
                      "entry_point": "broker.py:Broker"}, {"broker.py": TRIVIAL_CODE})  # fmt: skip
LIMITS = Limits(wall_seconds=30.0)
ENVELOPE = {
    "canon_url": "https://bitbucket.example",
    "commits": [{"node": "0123456789ab", "message": "Fix the frobnicator, closes #12"}],
    "repository": {"name": "Demo", "owner": "alice", "slug": "demo"},
    "user": "alice", "service": {"URL": "https://hooks.example"}, "broker": "bench",
    "delivery": {"id": "00000000-0000-0000-0000-000000000001", "attempt": 1},
}  # fmt: skip


@dataclass
class Point:
    backend: str
    services: int
    runs: int
    seconds: float
    cpu_seconds: float
    memory_bytes: int
    sandboxes: int
    latencies: dict[str, list[float]] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.runs / self.seconds

    def cells(self) -> list[str]:
        every = sorted(v for values in self.latencies.values() for v in values)
        p99 = every[min(len(every) - 1, int(len(every) * 0.99))]
        kinds = Counter({kind: len(values) for kind, values in self.latencies.items()})
        served = "/".join(str(kinds[k]) for k in ("warm", "blank", "cold"))
        by_kind = "/".join(_ms(statistics.median(self.latencies[k])) if self.latencies.get(k)
                           else "-" for k in ("warm", "blank", "cold"))  # fmt: skip
        return [self.backend, str(self.services), str(self.runs), f"{self.rate:.1f}",
                _ms(statistics.median(every)), _ms(p99),
                f"{self.cpu_seconds / self.runs * 1000:.2f}", f"{self.runs / self.cpu_seconds:.0f}",
                served, by_kind, str(self.sandboxes),
                f"{self.memory_bytes / 2**20:.0f}"]  # fmt: skip


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def zipf_draws(services: int, runs: int, exponent: float, seed: int) -> list[str]:
    weights = [1 / (k**exponent) for k in range(1, services + 1)]
    names = [f"service-{k}" for k in range(1, services + 1)]
    return random.Random(seed).choices(names, weights=weights, k=runs)


POLICY = {"policy": PoolPolicy()}
"""the pool policy every point uses (the shipped defaults unless --max-bound/--blank)"""
RUNTIME: dict[str, Any] = {}
"""the image tag / rootfs, built (when missing) once: every point runs the same runner"""


def make_backend(kind: str) -> Any:
    from brokerage.sandbox import image

    if kind == "docker":
        from brokerage.sandbox.docker_backend import DockerBackend, docker_client

        if "docker" not in RUNTIME:
            RUNTIME["docker"] = image.build_docker_image(docker_client())
        return DockerBackend(image_tag=RUNTIME["docker"], pool=POLICY["policy"])
    from brokerage.sandbox.bwrap_backend import BubblewrapBackend

    if "bubblewrap" not in RUNTIME:
        RUNTIME["bubblewrap"] = image.build_rootfs()
    return BubblewrapBackend(rootfs=RUNTIME["bubblewrap"], pool=POLICY["policy"])


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def container_memory(container_id: str) -> int:
    for path in (
        f"/sys/fs/cgroup/memory/docker/{container_id}/memory.usage_in_bytes",  # v1
        f"/sys/fs/cgroup/docker/{container_id}/memory.current",  # v2, cgroupfs driver
        f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope/memory.current",  # systemd
    ):
        try:
            return int(Path(path).read_text())
        except OSError:
            continue
    return 0


def pool_sandboxes(backend: Any) -> list[Any]:
    pool = backend.pool
    with pool.cond:
        bound = [s for p in pool.pools.values() for s in p.idle]
        return bound + [s for b in pool.blanks.values() for s in b.idle]


def memory(backend: Any) -> tuple[int, int]:
    """Bytes: worker RSS plus every sandbox the pool holds; and how many sandboxes."""
    sandboxes = pool_sandboxes(backend)
    total = rss_bytes(os.getpid())
    for sandbox in sandboxes:
        if backend.name == "docker" and sandbox.container_id:
            total += container_memory(sandbox.container_id)
        elif backend.name == "bubblewrap" and sandbox.process is not None:
            total += pss_bytes(sandbox.process.pid)
    return total, len(sandboxes)


def measure(kind: str, services: int, runs: int, exponent: float) -> Point:
    backend = make_backend(kind)
    try:
        tenants = zipf_draws(services, runs, exponent, seed=services)
        latencies: dict[str, list[float]] = {"warm": [], "blank": [], "cold": []}
        pool = backend.pool
        cpu_before, began = machine_seconds(), time.perf_counter()
        for tenant in tenants:
            before = dict(pool.bindings)
            start = time.perf_counter()
            result = backend.run(BUNDLE, ENVELOPE, LIMITS, tenant)
            took = time.perf_counter() - start
            if result.status is not RunStatus.SUCCEEDED:
                raise SystemExit(f"{kind}: run failed: {result}")
            after = pool.bindings
            kind_of = next((k for k in ("blank", "cold") if after[k] != before.get(k, 0)), "warm")
            latencies[kind_of].append(took)
        seconds = time.perf_counter() - began
        used, count = memory(backend)
    finally:
        backend.close()
    cpu = machine_seconds() - cpu_before
    return Point(kind, services, runs, seconds, cpu, used, count, latencies)


def start_cost(kind: str, samples: int) -> tuple[float, float]:
    """Seconds (wall, CPU) to start one sandbox: what a consumed blank costs in the background."""
    backend = make_backend(kind)
    try:
        walls = []
        cpu_before = machine_seconds()
        for _ in range(samples):
            sandbox = backend.new_sandbox(BUNDLE, LIMITS)
            began = time.perf_counter()
            sandbox.start()
            walls.append(time.perf_counter() - began)
            sandbox.close()
        cpu = (machine_seconds() - cpu_before) / samples
    finally:
        backend.close()
    return statistics.median(walls), cpu


def table(points: list[Point]) -> str:
    head = ["backend", "services", "runs", "runs/s", "median ms", "p99 ms", "machine CPU ms/run",
            "runs/CPU-s", "warm/blank/cold runs", "median ms warm/blank/cold", "sandboxes",
            "memory MiB"]  # fmt: skip
    lines = [head, ["---"] * len(head)] + [p.cells() for p in points]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs (a smoke test)")
    parser.add_argument("--backend", choices=["docker", "bubblewrap", "both"], default="both")
    parser.add_argument("--services", default="1,10,100,1000")
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--zipf", type=float, default=1.1, help="exponent s of 1/k^s")
    parser.add_argument("--max-bound", type=int, help="SANDBOX_POOL_MAX_BOUND to measure")
    parser.add_argument("--blank", type=int, help="SANDBOX_POOL_BLANK to measure")
    args = parser.parse_args()
    changes = {"max_bound": args.max_bound, "blank": args.blank}
    POLICY["policy"] = replace(PoolPolicy(), **{k: v for k, v in changes.items() if v is not None})
    runs = max(50, args.runs // 10) if args.quick else args.runs
    kinds = ["docker", "bubblewrap"] if args.backend == "both" else [args.backend]
    counts = [int(n) for n in args.services.split(",")]
    policy = POLICY["policy"]
    print(f"pool: {policy.blank} blank per version, max {policy.max_bound} bound per worker, "
          f"idle {policy.idle_seconds:g} s; Zipf s={args.zipf}; {runs} runs per point, "
          f"one caller")  # fmt: skip
    points = [measure(kind, n, runs, args.zipf) for kind in kinds for n in counts]
    print(table(points))
    print()
    for kind in kinds:
        wall, cpu = start_cost(kind, 3 if args.quick else 10)
        repeat = next(p for p in points if p.backend == kind and p.services == min(counts))
        per_core = repeat.runs / repeat.cpu_seconds
        verdict = "meets" if per_core >= TARGET_PER_CORE else "MISSES"
        print(f"{kind}: services repeating ({min(counts)}): {repeat.rate:.0f} runs/s, "
              f"{per_core:.0f} runs per CPU-second ({verdict} >= {TARGET_PER_CORE:.0f}/core); "
              f"a cold service: one sandbox start, {wall * 1000:.0f} ms wall and "
              f"{cpu * 1000:.0f} ms CPU (off the run's path when a blank is ready)")  # fmt: skip


if __name__ == "__main__":
    main()
