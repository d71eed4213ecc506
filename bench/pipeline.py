"""Pipeline benchmark: pushes through the real HTTP API to sandboxed deliveries, side by side
with RQ's own no-op job rate on this machine, in one run.

    python bench/pipeline.py [--quick]

It starts its own Redis, the platform (``brokerage serve``) and worker processes
(``brokerage worker``, Docker warm pools), installs trivial vendor brokers the real way
(vendor upload, verification job, reviewer approval), enables M services on a repository,
and prints:

1. the ceiling: RQ no-op jobs/s with the same worker class, worker count and serializer;
2. end-to-end sandboxed runs/s: N pushes x M services sent through ``POST …/pushes``,
   from the first push received to the last delivery finished;
3. push -> delivery latency p50/p99 at a steady push rate;
4. curves: runs/s over the number of distinct brokers and over payload size;
5. the ratio the benchmark exists for (target: end-to-end >= half the no-op rate).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from cpu import CpuMeter, descendants
from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer
from sqlalchemy import create_engine, text

TARGET_RATIO = 0.5
"""end-to-end runs/s over RQ no-op jobs/s that the issue asks for"""
WORKERS = 2
"""worker processes: one per core on the reference machine"""
PASSWORD = "bench-password"

TRIVIAL_BROKER = b"""
from brokerage_sdk import BaseBroker


class TrivialBroker(BaseBroker):
    def handle(self, payload):
        return {"commits": len(payload["commits"])}
"""


def noop() -> None:
    """The ceiling's job: nothing at all."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


# -- the platform under test ------------------------------------------------------------


@dataclass
class Platform:
    base: str
    env: dict[str, str]
    data: Path
    redis: Redis
    workers: list[subprocess.Popen[bytes]]
    server_pid: int
    redis_pid: int

    def session(self, user: str) -> requests.Session:
        http = requests.Session()
        http.auth = (user, PASSWORD)
        return http

    def db_rows(self, sql: str) -> list[Any]:
        engine = create_engine(f"sqlite:///{self.data / 'brokerage.db'}")
        with engine.connect() as conn:
            rows = list(conn.execute(text(sql)))
        engine.dispose()
        return rows


def _wait_http(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise SystemExit(f"no answer from {url}")


def _start_workers(env: dict[str, str], count: int, log_dir: Path) -> list[subprocess.Popen[bytes]]:
    return [
        subprocess.Popen(
            ["brokerage", "worker", "--name", f"bench-{n}-{uuid.uuid4().hex[:6]}"], env=env,
            stdout=(log_dir / f"worker{n}.log").open("wb"), stderr=subprocess.STDOUT,
        )
        for n in range(count)
    ]  # fmt: skip


@contextmanager
def platform(workdir: Path) -> Iterator[Platform]:
    redis_port, web_port = free_port(), free_port()
    procs: list[subprocess.Popen[bytes]] = []
    redis_proc = subprocess.Popen(
        ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(workdir)], stdout=subprocess.DEVNULL,
    )  # fmt: skip
    env = {
        **os.environ, "BROKERAGE_DATA_DIR": str(workdir / "data"), "DATABASE_URL": "",
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "BROKERAGE_SANDBOX_BACKEND": "docker",
        "BROKERAGE_CANON_URL": f"http://127.0.0.1:{web_port}",
    }  # fmt: skip
    try:
        create = ["brokerage", "user", "create", "ops", "--role", "operator", "--password-stdin"]
        subprocess.run(create, input=f"{PASSWORD}\n".encode(), env=env, check=True,
                       capture_output=True)  # fmt: skip
        procs.append(subprocess.Popen(
            ["brokerage", "serve", "--port", str(web_port), "--threads", "8"], env=env,
            stdout=(workdir / "serve.log").open("wb"), stderr=subprocess.STDOUT,
        ))  # fmt: skip
        workers = _start_workers(env, WORKERS, workdir)
        base = f"http://127.0.0.1:{web_port}"
        _wait_http(base + "/1.0/user")
        yield Platform(base, env, workdir / "data", Redis(port=redis_port), workers,
                       procs[0].pid, redis_proc.pid)  # fmt: skip
    finally:
        for proc in procs + workers:
            proc.send_signal(signal.SIGTERM)
        for proc in procs + workers:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        redis_proc.kill()


# -- set-up through the API -------------------------------------------------------------


def _package(name: str) -> bytes:
    manifest = {
        "name": name, "version": "1.0.0", "title": f"Bench {name}",
        "description": "Does nothing: counts the commits.",
        "vendor": {"name": "Bench", "email": "bench@example.org"}, "events": ["push"],
        "fields": [], "egress": [], "entry_point": "broker.py:TrivialBroker",
    }  # fmt: skip
    fixture = {"canon_url": "https://example.org", "commits": [], "user": "bench",
               "expect": {"noop": True},
               "repository": {"absolute_url": "/bench/r/", "fork": False, "is_private": True,
                              "name": "r", "owner": "bench", "scm": "git", "slug": "r",
                              "website": ""}}  # fmt: skip
    files = {"manifest.json": json.dumps(manifest).encode(), "broker.py": TRIVIAL_BROKER,
             "fixtures/push__no_commits.json": json.dumps(fixture).encode(),
             "README.md": b"A trivial broker for benchmarks.\n"}  # fmt: skip
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path, data in files.items():
            info = tarfile.TarInfo(f"{name}/{path}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def install_brokers(plat: Platform, count: int) -> list[str]:
    """Vendor uploads, verification jobs, reviewer approvals: the real path."""
    ops = plat.session("ops")
    for who, roles in (("vendor", "vendor"), ("reviewer", "reviewer")):
        ops.post(f"{plat.base}/1.0/users", json={"username": who, "password": PASSWORD,
                                                 "roles": roles}).raise_for_status()  # fmt: skip
    vendor, reviewer = plat.session("vendor"), plat.session("reviewer")
    names = [f"trivial{n}" for n in range(count)]
    ids = []
    for name in names:
        response = vendor.post(f"{plat.base}/1.0/submissions", data=_package(name),
                               headers={"Content-Type": "application/gzip"})  # fmt: skip
        response.raise_for_status()
        ids.append(response.json()["id"])
    for version_id in ids:
        _await_state(vendor, f"{plat.base}/1.0/submissions/{version_id}", "awaiting_review")
        decision = {"decision": "approve", "comment": "bench"}
        reviewer.post(f"{plat.base}/1.0/submissions/{version_id}/decision",
                      json=decision).raise_for_status()  # fmt: skip
    return [f"Bench {name}" for name in names]


def _await_state(http: requests.Session, url: str, wanted: str, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        state = http.get(url).json()["state"]
        if state == wanted:
            return
        if state in ("verification_failed", "rejected"):
            report = http.get(url + "/report").json()
            raise SystemExit(f"{url}: {state}\n{json.dumps(report, indent=2)[:4000]}")
        time.sleep(0.2)
    raise SystemExit(f"{url}: not {wanted} after {seconds} s")


def make_repository(plat: Platform, slug: str, types: list[str], services: int) -> str:
    ops = plat.session("ops")
    ops.post(f"{plat.base}/1.0/repositories", data={"name": slug}).raise_for_status()
    for n in range(services):
        ops.post(f"{plat.base}/1.0/repositories/ops/{slug}/services",
                 data={"type": types[n % len(types)]}).raise_for_status()  # fmt: skip
    token = ops.post(f"{plat.base}/1.0/repositories/ops/{slug}/push-token").json()["token"]
    return str(token)


# -- the measurements -------------------------------------------------------------------


def _commit(n: int) -> dict[str, Any]:
    raw = uuid.uuid4().hex + uuid.uuid4().hex[:8]
    return {"author": "bench", "branch": "main", "files": [{"file": "a.py", "type": "modified"}],
            "message": f"Change {n}, refs #12\n", "node": raw[:12], "parents": [raw[:12]],
            "raw_author": "Bench <bench@example.org>", "raw_node": raw, "revision": None,
            "size": -1, "timestamp": "2026-11-22 05:00:00",
            "utctimestamp": "2026-11-22 05:00:00+00:00"}  # fmt: skip


def send_pushes(plat: Platform, slug: str, token: str, count: int, commits: int,
                rate: float | None = None, clients: int = 4) -> None:  # fmt: skip
    """``count`` pushes from ``clients`` threads, as fast as they go or at ``rate`` per second."""
    url = f"{plat.base}/1.0/repositories/ops/{slug}/pushes"
    headers = {"Authorization": f"Bearer {token}"}
    started = time.monotonic()
    lock = threading.Lock()
    sent = [0]

    def client() -> None:
        http = requests.Session()
        while True:
            with lock:
                if sent[0] >= count:
                    return
                n = sent[0]
                sent[0] += 1
            if rate:
                time.sleep(max(0.0, started + n / rate - time.monotonic()))
            body = {"scm": "git", "user": "bench", "push_id": str(uuid.uuid4()), "truncated": False,
                    "refs": [], "commits": [_commit(i) for i in range(commits)]}  # fmt: skip
            http.post(url, json=body, headers=headers, timeout=60).raise_for_status()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def await_deliveries(plat: Platform, slug: str, expected: int, seconds: float = 900) -> list[Any]:
    """(received_at, finished_at, status) of every delivery of ``slug``, once all finished."""
    sql = ("SELECT p.received_at, d.finished_at, d.status FROM deliveries d "
           "JOIN pushes p ON p.id = d.push_id JOIN repositories r ON r.id = d.repository_id "
           f"WHERE r.slug = '{slug}'")  # fmt: skip
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        rows = plat.db_rows(sql)
        done = [r for r in rows if r[1] is not None]
        if len(done) >= expected:
            return done
        time.sleep(0.5)
    raise SystemExit(f"{slug}: only {len(done)} of {expected} deliveries finished")


def _ts(value: Any) -> float:
    from datetime import datetime

    return datetime.fromisoformat(str(value)).timestamp()


def cpu_meter(plat: Platform) -> CpuMeter:
    """CPU per component: the web server, the workers (and their forks), Redis, this client."""
    return CpuMeter({
        "web server (ingestion)": lambda: descendants(plat.server_pid),
        "workers": lambda: [pid for w in plat.workers for pid in descendants(w.pid)],
        "redis": lambda: [plat.redis_pid],
        "benchmark client": lambda: [os.getpid()],
    })  # fmt: skip


def e2e_rate(plat: Platform, slug: str, token: str, pushes: int, services: int,
             commits: int = 1, meter: CpuMeter | None = None) -> tuple[float, int]:  # fmt: skip
    if meter is not None:
        meter.start()
    send_pushes(plat, slug, token, pushes, commits)
    rows = await_deliveries(plat, slug, pushes * services)
    if meter is not None:
        meter.stop()
    failed = sum(1 for r in rows if r[2] != "succeeded")
    span = max(_ts(r[1]) for r in rows) - min(_ts(r[0]) for r in rows)
    return len(rows) / span, failed


def latency(plat: Platform, slug: str, token: str, pushes: int, services: int,
            rate: float) -> list[float]:  # fmt: skip
    send_pushes(plat, slug, token, pushes, 1, rate=rate, clients=2)
    rows = await_deliveries(plat, slug, pushes * services)
    return [(_ts(r[1]) - _ts(r[0])) * 1000 for r in rows]


def rq_noop_rate(plat: Platform, jobs: int) -> tuple[float, CpuMeter]:
    """RQ's ceiling: the same worker class (SimpleWorker), count and serializer, no-op jobs;
    and the CPU those jobs took."""
    queue = Queue("bench-noop", connection=plat.redis, serializer=JSONSerializer)
    queue.empty()
    bench_dir = str(Path(__file__).resolve().parent)
    env = {**plat.env, "PYTHONPATH": bench_dir + os.pathsep + plat.env.get("PYTHONPATH", "")}
    url = plat.env["REDIS_URL"]
    workers = [
        subprocess.Popen(["rq", "worker", "--url", url, "--worker-class", "rq.worker.SimpleWorker",
                          "--serializer", "rq.serializers.JSONSerializer", "--quiet", "bench-noop"],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(WORKERS)
    ]  # fmt: skip
    time.sleep(3)  # workers up and idle before the clock starts
    meter = CpuMeter({
        "rq workers": lambda: [pid for w in workers for pid in descendants(w.pid)],
        "redis": lambda: [plat.redis_pid],
        "benchmark client": lambda: [os.getpid()],
    })  # fmt: skip
    meter.start()
    started = time.monotonic()
    pipe_jobs = [Queue.prepare_data("pipeline.noop", result_ttl=0) for _ in range(jobs)]
    queue.enqueue_many(pipe_jobs)
    started_registry = queue.started_job_registry  # result_ttl=0: finished jobs leave no trace
    while queue.count or started_registry.count:
        time.sleep(0.01)
    elapsed = time.monotonic() - started
    meter.stop()
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    return jobs / elapsed, meter


# -- the run ----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts, for a smoke run")
    args = parser.parse_args()
    pushes, services = (40, 5) if args.quick else (200, 5)
    if not shutil.which("brokerage"):
        raise SystemExit("run inside the project's virtualenv (scripts/test.sh sets it up)")
    workdir = Path(tempfile.mkdtemp(prefix="brokerage-bench-"))
    try:
        with platform(workdir) as plat:
            run(plat, pushes, services, args.quick)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run(plat: Platform, pushes: int, services: int, quick: bool) -> None:
    print(f"machine: {os.cpu_count()} cores; {WORKERS} worker processes (rq SimpleWorker, JSON)")
    types = install_brokers(plat, 8)
    print(f"installed {len(types)} trivial vendor brokers (upload, verification, approval)")
    warm = make_repository(plat, "warmup", types, len(types))
    e2e_rate(plat, "warmup", warm, 3, len(types))  # start every warm pool
    ceiling, ceiling_cpu = rq_noop_rate(plat, pushes * services)
    token = make_repository(plat, "main", types[:1], services)
    meter = cpu_meter(plat)
    rate, failed = e2e_rate(plat, "main", token, pushes, services, meter=meter)
    lat_token = make_repository(plat, "latency", types[:1], services)
    lat = latency(
        plat, "latency", lat_token, pushes // 4, services, rate=max(1.0, rate / services / 2)
    )
    print("\n| measure | value |\n|---|---|")
    print(f"| RQ no-op jobs/s (ceiling, {pushes * services} jobs) | {ceiling:.0f} |")
    print(f"| end-to-end sandboxed runs/s ({pushes} pushes x {services} services) | {rate:.0f} |")
    print(f"| failed deliveries | {failed} |")
    print(f"| push -> delivery latency p50 / p99 (ms, at half that rate) | "
          f"{statistics.median(lat):.0f} / {percentile(lat, 0.99):.0f} |")  # fmt: skip
    print()
    print(ceiling_cpu.table(pushes * services, "no-op job"))
    print()
    print(meter.table(pushes * services, "delivery"))
    curves(plat, types, 20 if quick else 60)
    ratio = rate / ceiling
    verdict = "meets" if ratio >= TARGET_RATIO else "misses"
    print(f"\nratio end-to-end / RQ no-op = {ratio:.2f} ({verdict} the target {TARGET_RATIO})")


def curves(plat: Platform, types: list[str], pushes: int) -> None:
    print("\n| distinct brokers (4 services each) | runs/s |\n|---|---|")
    for count in (1, 2, 4, 8):
        slug = f"brokers{count}"
        token = make_repository(plat, slug, types[:count], 4)
        print(f"| {count} | {e2e_rate(plat, slug, token, pushes, 4)[0]:.0f} |")
    print("\n| commits per push (1 service) | runs/s |\n|---|---|")
    for commits in (1, 100, 1000):
        slug = f"payload{commits}"
        token = make_repository(plat, slug, types[:1], 1)
        rate = e2e_rate(plat, slug, token, max(10, pushes // 3), 1, commits)[0]
        print(f"| {commits} | {rate:.0f} |")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
