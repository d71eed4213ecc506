"""Pipeline benchmark: pushes through the real HTTP API to sandboxed deliveries, side by side
with RQ on this machine, in one run.

    .venv/bin/python bench/pipeline.py [--quick] [--curves]

(the virtualenv's ``bin`` need not be on ``PATH``: every command it starts is found next to
``sys.executable``). It starts its own Redis, the platform (``brokerage serve``), worker
processes (``brokerage worker``, Docker warm pools), a webhook receiver (``bench/receiver.py``)
and an SMTP sink (aiosmtpd) on 127.0.0.1, each in a process group of its own that it stops
(SIGTERM, then SIGKILL after 30 s) however the run ends. It installs trivial vendor brokers
the real way (vendor upload, verification job, reviewer approval) and prints, side by side:

1. trivial brokers: RQ no-op jobs/s (same worker class, count and serializer) against
   end-to-end sandboxed runs/s (N pushes x M services through ``POST …/pushes``);
2. real POST deliveries: 5 POST services per repository sending each 1-commit push to the
   receiver, against a plain RQ webhook sender (one job per delivery posting the same
   form-encoded payload with ``requests``, a session per worker: connection reuse), same
   worker count and class; and a mix of 4 POST + 1 Email service (mail to the SMTP sink);
3. deliveries/s, push -> delivery latency p50/p99 at half the measured rate, and CPU per
   delivery by component, for each; the ratios against the targets.

A measured phase with a failed delivery stops the run (the figures would mean nothing).
``--curves`` adds runs/s over the number of distinct brokers and over payload size.
"""

from __future__ import annotations

import argparse
import contextlib
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from cpu import CpuMeter, descendants
from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer
from sqlalchemy import create_engine, text

TARGET_TRIVIAL = 0.6
"""trivial-broker deliveries/s over RQ no-op jobs/s aimed for"""
TARGET_POST = 0.8
"""real POST deliveries/s over the plain RQ sender's aimed for"""
TARGET_P99_MS = 250
"""push -> delivery p99 at half the measured rate aimed for"""
BIN = Path(sys.executable).parent
"""the virtualenv's bin: brokerage, rq (PATH is not needed)"""
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


_SENDER: requests.Session | None = None


def post_form(url: str, body: str) -> None:
    """The plain sender's job: POST one form-encoded payload (a session per worker process,
    so connections are reused), stamped with the time it was enqueued... by the body's
    enqueuer: ``X-Bench-Sent`` is filled in from the job's own enqueue time."""
    global _SENDER
    if _SENDER is None:
        _SENDER = requests.Session()
    from rq import get_current_job

    job = get_current_job()
    sent = job.enqueued_at.timestamp() if job is not None and job.enqueued_at else time.time()
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Bench-Sent": f"{sent}"}
    _SENDER.post(url, data=body.encode(), headers=headers, timeout=30).raise_for_status()


def start_group(args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """A child in a process group of its own (so stop_group reaches everything it forks)."""
    return subprocess.Popen(args, start_new_session=True, **kwargs)


def stop_group(procs: list[subprocess.Popen[bytes]], seconds: float = 30) -> None:
    """SIGTERM each child's process group, wait up to ``seconds``, then SIGKILL what is left."""
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + seconds
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"process {proc.args!r} did not stop on SIGTERM in {seconds:.0f}s: killed",
                  file=sys.stderr)  # fmt: skip
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever of the group is still there
        proc.wait()


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
    receiver_pid: int
    receiver_url: str
    smtp_pid: int
    tokens: dict[str, str] = field(default_factory=dict)
    """push tokens by repository slug"""

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
        start_group(
            [str(BIN / "brokerage"), "worker", "--name", f"bench-{n}-{uuid.uuid4().hex[:6]}"],
            env=env, stdout=(log_dir / f"worker{n}.log").open("wb"), stderr=subprocess.STDOUT,
        )
        for n in range(count)
    ]  # fmt: skip


@contextmanager
def platform(workdir: Path) -> Iterator[Platform]:
    redis_port, web_port, hook_port, smtp_port = free_port(), free_port(), free_port(), free_port()
    procs: list[subprocess.Popen[bytes]] = []
    workers: list[subprocess.Popen[bytes]] = []
    redis_server = shutil.which("redis-server") or "/usr/bin/redis-server"
    redis_proc = start_group(
        [redis_server, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(workdir)], stdout=subprocess.DEVNULL,
    )  # fmt: skip
    procs.append(redis_proc)
    env = {
        **os.environ, "BROKERAGE_DATA_DIR": str(workdir / "data"), "DATABASE_URL": "",
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "BROKERAGE_SANDBOX_BACKEND": "docker",
        "BROKERAGE_CANON_URL": f"http://127.0.0.1:{web_port}",
        # the receiver and the SMTP sink live on 127.0.0.1: the operator opens it (for hosts a
        # service names) and their ports; mail goes to the sink
        "BROKERAGE_EGRESS_EXTRA_RANGES": "127.0.0.1/32",
        "BROKERAGE_EGRESS_PORTS": f"80,443,{hook_port}",
        "BROKERAGE_SMTP_HOST": "127.0.0.1", "BROKERAGE_SMTP_PORT": str(smtp_port),
        "BROKERAGE_RETRY_DELAYS": "[1, 1, 1]",
    }  # fmt: skip
    try:
        procs.append(start_group([sys.executable, str(Path(__file__).resolve().parent /
                                  "receiver.py"), str(hook_port)]))  # fmt: skip
        procs.append(start_group(
            [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{smtp_port}",
             "-c", "aiosmtpd.handlers.Sink"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))  # fmt: skip
        create = [str(BIN / "brokerage"), "user", "create", "ops", "--role", "operator",
                  "--password-stdin"]  # fmt: skip
        subprocess.run(create, input=f"{PASSWORD}\n".encode(), env=env, check=True,
                       capture_output=True)  # fmt: skip
        procs.append(start_group(
            [str(BIN / "brokerage"), "serve", "--port", str(web_port), "--threads", "8"], env=env,
            stdout=(workdir / "serve.log").open("wb"), stderr=subprocess.STDOUT,
        ))  # fmt: skip
        workers = _start_workers(env, WORKERS, workdir)
        base = f"http://127.0.0.1:{web_port}"
        _wait_http(base + "/1.0/user")
        _wait_http(f"http://127.0.0.1:{hook_port}/stats")
        yield Platform(base, env, workdir / "data", Redis(port=redis_port), workers,
                       procs[-1].pid, redis_proc.pid, procs[1].pid,
                       f"http://127.0.0.1:{hook_port}", procs[2].pid)  # fmt: skip
    finally:
        stop_group(workers + procs[::-1])


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
    return make_repository_with(plat, slug, [{"type": types[n % len(types)]}
                                             for n in range(services)])  # fmt: skip


def make_repository_with(plat: Platform, slug: str, services: list[dict[str, str]]) -> str:
    """A repository with these services (form fields of the services resource); its push token."""
    ops = plat.session("ops")
    ops.post(f"{plat.base}/1.0/repositories", data={"name": slug}).raise_for_status()
    for fields in services:
        ops.post(f"{plat.base}/1.0/repositories/ops/{slug}/services",
                 data=fields).raise_for_status()  # fmt: skip
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
        "receiver": lambda: [plat.receiver_pid],
        "smtp sink": lambda: [plat.smtp_pid],
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


def _rq_workers(plat: Platform, queue: str) -> list[subprocess.Popen[bytes]]:
    """RQ's own workers: the same class (SimpleWorker), count and serializer as the platform's."""
    bench_dir = str(Path(__file__).resolve().parent)
    env = {**plat.env, "PYTHONPATH": bench_dir + os.pathsep + plat.env.get("PYTHONPATH", "")}
    return [
        start_group([str(BIN / "rq"), "worker", "--url", plat.env["REDIS_URL"], "--worker-class",
                     "rq.worker.SimpleWorker", "--serializer", "rq.serializers.JSONSerializer",
                     "--quiet", queue], env=env, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL)
        for _ in range(WORKERS)
    ]  # fmt: skip


def _drain(queue: Queue) -> None:
    started_registry = queue.started_job_registry  # result_ttl=0: finished jobs leave no trace
    while queue.count or started_registry.count:
        time.sleep(0.01)


def rq_noop_rate(plat: Platform, jobs: int) -> tuple[float, CpuMeter]:
    """RQ's ceiling: no-op jobs/s, and the CPU those jobs took."""
    queue = Queue("bench-noop", connection=plat.redis, serializer=JSONSerializer)
    queue.empty()
    workers = _rq_workers(plat, "bench-noop")
    try:
        time.sleep(3)  # workers up and idle before the clock starts
        meter = CpuMeter({
            "rq workers": lambda: [pid for w in workers for pid in descendants(w.pid)],
            "redis": lambda: [plat.redis_pid],
            "benchmark client": lambda: [os.getpid()],
        })  # fmt: skip
        meter.start()
        started = time.monotonic()
        queue.enqueue_many([Queue.prepare_data("pipeline.noop", result_ttl=0)
                            for _ in range(jobs)])  # fmt: skip
        _drain(queue)
        elapsed = time.monotonic() - started
        meter.stop()
    finally:
        stop_group(workers)
    return jobs / elapsed, meter


def receiver_stats(plat: Platform) -> dict[str, Any]:
    return dict(requests.get(plat.receiver_url + "/stats", timeout=10).json())


def plain_sender(plat: Platform, jobs: int, body: str) -> tuple[float, list[float], CpuMeter]:
    """The peer: one RQ job per delivery POSTing ``body`` (form-encoded) to the receiver with
    ``requests``. Jobs/s all at once, with its CPU; then latency (enqueue -> received) at
    half that rate."""
    queue = Queue("bench-sender", connection=plat.redis, serializer=JSONSerializer)
    queue.empty()
    url = plat.receiver_url + "/hook"
    workers = _rq_workers(plat, "bench-sender")
    try:
        time.sleep(3)
        meter = CpuMeter({
            "rq workers": lambda: [pid for w in workers for pid in descendants(w.pid)],
            "redis": lambda: [plat.redis_pid],
            "receiver": lambda: [plat.receiver_pid],
            "benchmark client": lambda: [os.getpid()],
        })  # fmt: skip
        requests.post(plat.receiver_url + "/reset", timeout=10)
        meter.start()
        started = time.monotonic()
        queue.enqueue_many([Queue.prepare_data("pipeline.post_form", (url, body), result_ttl=0,
                                               failure_ttl=3600) for _ in range(jobs)])  # fmt: skip
        _drain(queue)
        elapsed = time.monotonic() - started
        meter.stop()
        got = receiver_stats(plat)["count"]
        if got != jobs or queue.failed_job_registry.count:
            raise SystemExit(f"plain sender: {got} of {jobs} posts arrived, "
                             f"{queue.failed_job_registry.count} jobs failed")  # fmt: skip
        rate = jobs / elapsed
        requests.post(plat.receiver_url + "/reset", timeout=10)
        paced = max(10, jobs // 4)
        paced_start = time.monotonic()
        for n in range(paced):
            time.sleep(max(0.0, paced_start + n / (rate / 2) - time.monotonic()))
            queue.enqueue("pipeline.post_form", url, body, result_ttl=0)
        _drain(queue)
        deadline = time.monotonic() + 30
        while receiver_stats(plat)["count"] < paced and time.monotonic() < deadline:
            time.sleep(0.1)
        latencies = list(receiver_stats(plat)["latencies_ms"])
    finally:
        stop_group(workers)
    return rate, latencies, meter


# -- the run ----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts, for a smoke run")
    parser.add_argument("--curves", action="store_true", help="also the curves (brokers, payload)")
    args = parser.parse_args()
    pushes, services = (40, 5) if args.quick else (200, 5)
    for needed in (BIN / "brokerage", BIN / "rq"):
        if not needed.exists():
            raise SystemExit(
                f"{needed} is missing: run with the project's virtualenv python "
                "(.venv/bin/python bench/pipeline.py; scripts/test.sh sets it up)"
            )
    workdir = Path(tempfile.mkdtemp(prefix="brokerage-bench-"))
    try:
        with platform(workdir) as plat:
            run(plat, pushes, services, args.quick, args.curves)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass
class Phase:
    name: str
    rate: float
    latencies: list[float]
    cpu: CpuMeter
    units: int
    failed: int = 0


def measured(plat: Platform, slug: str, token: str, pushes: int, services: int) -> Phase:
    """Deliveries/s with its CPU, then latency at half that rate (a second repository with
    the same services: ``slug`` + "-lat" must exist)."""
    meter = cpu_meter(plat)
    rate, failed = e2e_rate(plat, slug, token, pushes, services, meter=meter)
    if failed:
        raise SystemExit(f"{slug}: {failed} of {pushes * services} deliveries did not succeed")
    lat_token = plat.tokens[slug + "-lat"]
    lat = latency(plat, slug + "-lat", lat_token, max(10, pushes // 4), services,
                  rate=max(1.0, rate / services / 2))  # fmt: skip
    return Phase(slug, rate, lat, meter, pushes * services, failed)


def _row(label: str, phase: Phase) -> str:
    return (f"| {label} | {phase.rate:.0f} | {statistics.median(phase.latencies):.0f} / "
            f"{percentile(phase.latencies, 0.99):.0f} | {phase.failed} |")  # fmt: skip


def _cpu_tables(*phases: Phase) -> str:
    names: list[str] = []
    for phase in phases:
        names += [n for n in phase.cpu.before if n not in names]
    lines = ["| CPU per delivery (ms) | " + " | ".join(p.name for p in phases) + " |",
             "|---|" + "---|" * len(phases)]  # fmt: skip
    for name in names:
        cells = [f"{p.cpu.spent(name) * 1000 / max(p.units, 1):.2f}" if name in p.cpu.before
                 else "—" for p in phases]  # fmt: skip
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(plat: Platform, pushes: int, services: int, quick: bool, with_curves: bool) -> None:
    print(f"machine: {os.cpu_count()} cores; {WORKERS} worker processes (rq SimpleWorker, JSON)")
    types = install_brokers(plat, 8)
    print(f"installed {len(types)} trivial vendor brokers (upload, verification, approval)")
    hook = plat.receiver_url + "/hook"
    post = [{"type": "POST", "URL": hook} for _ in range(services)]
    mix = post[:-1] + [{"type": "Email", "Email": "bench@example.org"}]
    plat.tokens = {}
    for slug, bodies in (("trivial", [{"type": types[0]}] * services), ("post", post),
                         ("mix", mix)):  # fmt: skip
        for name in (slug, slug + "-lat", slug + "-warm"):
            plat.tokens[name] = make_repository_with(plat, name, bodies)
    warm = make_repository(plat, "warmup", types, len(types))
    e2e_rate(plat, "warmup", warm, 3, len(types))  # start every warm pool
    for slug in ("trivial", "post", "mix"):  # bind each service's sandboxes, as in steady use
        e2e_rate(plat, slug + "-warm", plat.tokens[slug + "-warm"], 4, services)

    units = pushes * services
    ceiling, ceiling_cpu = rq_noop_rate(plat, units)
    trivial = measured(plat, "trivial", plat.tokens["trivial"], pushes, services)
    real_post = measured(plat, "post", plat.tokens["post"], pushes, services)
    body = str(receiver_stats(plat)["last_body"])  # what the POST broker sent, byte for byte
    sender_rate, sender_lat, sender_cpu = plain_sender(plat, units, body)
    sender = Phase("plain RQ sender", sender_rate, sender_lat, sender_cpu, units)
    mixed = measured(plat, "mix", plat.tokens["mix"], pushes, services)

    print(
        f"\n| measure ({pushes} pushes x {services} services = {units} deliveries) | "
        "deliveries/s | latency p50 / p99 (ms, at half that rate) | failed |"
    )
    print("|---|---|---|---|")
    print(f"| RQ no-op jobs (ceiling) | {ceiling:.0f} | — | 0 |")
    print(_row("trivial broker, end to end", trivial))
    print(_row("plain RQ webhook sender (requests, keep-alive)", sender))
    print(_row("POST broker to the receiver, end to end", real_post))
    print(_row("4 POST + 1 Email, end to end", mixed))
    print()
    print(ceiling_cpu.table(units, "no-op job"))
    print()
    print(_cpu_tables(trivial, real_post, sender, mixed))
    failed = trivial.failed + real_post.failed + mixed.failed
    print(f"\nfailed deliveries in the measured phases: {failed}")
    deferred = plat.db_rows("SELECT count(*) FROM delivery_attempts WHERE outcome = 'deferred'")
    print(f"attempts deferred by the egress rate limits (whole run): {deferred[0][0]}")
    assert failed == 0
    for label, ratio, target in (
        ("trivial broker / RQ no-op", trivial.rate / ceiling, TARGET_TRIVIAL),
        ("real POST / plain sender", real_post.rate / sender.rate, TARGET_POST),
    ):
        verdict = "meets" if ratio >= target else "misses"
        print(f"ratio {label} = {ratio:.2f} ({verdict} the target {target})")
    for phase in (trivial, real_post, mixed):
        p99 = percentile(phase.latencies, 0.99)
        verdict = "meets" if p99 < TARGET_P99_MS else "misses"
        print(f"p99 push -> delivery, {phase.name}, at half rate = {p99:.0f} ms "
              f"({verdict} the target {TARGET_P99_MS} ms)")  # fmt: skip
    if with_curves:
        curves(plat, types, 20 if quick else 60)


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
