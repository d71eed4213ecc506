"""Outages with real processes: `brokerage worker` subprocesses run the POST broker in the
Docker sandbox through the gateway to a receiver on 127.0.0.1 that counts every request by
delivery id and attempt, while Redis is SIGKILLed and comes back empty, PostgreSQL is
stopped dead and started again, or a whole worker host is killed. Counted every time:
nothing lost, no attempt delivered twice, and the workers still running."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.platform.deliveries.conftest import Repo, commit, push_body
from tests.platform.deliveries.test_faults import Receiver, wait_for
from tests.support import TEST_FIELD_KEY, RedisServer, Seeder, SmtpSink, build_app, free_port

BURST = 40
"""deliveries per test (one POST service, one push each)"""


class Hosts:
    """Starts `brokerage worker` processes against the app's database and the test's Redis;
    each "host" may have a data directory (and so sandbox state) of its own."""

    def __init__(self, app: Flask, redis_url: str, receiver: Receiver, logs: Path) -> None:
        self.logs = logs
        self.env = {
            **os.environ, "DATABASE_URL": app.config["DATABASE_URL"], "REDIS_URL": redis_url,
            "BROKERAGE_DATA_DIR": app.config["DATA_DIR"],
            "BROKERAGE_FIELD_KEYS": TEST_FIELD_KEY, "BROKERAGE_SANDBOX_BACKEND": "docker",
            "BROKERAGE_EGRESS_EXTRA_RANGES": "127.0.0.1/32",
            "BROKERAGE_EGRESS_PORTS": f"80,443,{receiver.port}",
            "BROKERAGE_RETRY_DELAYS": "[1, 1, 1, 1, 1, 1]", "BROKERAGE_LEASE_SECONDS": "4",
            "BROKERAGE_SWEEP_INTERVAL": "1", "BROKERAGE_RUN_WALL_SECONDS": "60",
        }  # fmt: skip
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, *args: str, data_dir: Path | None = None) -> subprocess.Popen[bytes]:
        env = dict(self.env)
        if data_dir is not None:
            env["BROKERAGE_DATA_DIR"] = str(data_dir)
        log = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(["brokerage", "worker", "--name", name, *args], env=env,
                                stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
        self.started.append(proc)
        return proc

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.started:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            kill_session(proc.pid)  # what a killed host left behind (RQ scheduler processes)


def kill_session(sid: int) -> int:
    """SIGKILL every process of session ``sid`` (a host this test started in a session of
    its own: its supervisor, workers and their schedulers); returns how many."""
    killed = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == sid:
            try:
                os.kill(int(stat.parent.name), signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
    return killed


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver(free_port())
    found.behave = lambda n: time.sleep(0.05)  # slow enough that a burst takes a while
    found.start()
    yield found
    found.stop()


@pytest.fixture
def hosts(
    app: Flask, redis_server: RedisServer, receiver: Receiver, tmp_path: Path
) -> Iterator[Hosts]:
    found = Hosts(app, redis_server.url, receiver, tmp_path)
    yield found
    found.stop_all()


def burst(repo: Repo, receiver: Receiver) -> list[str]:
    repo.add_service(f"type=POST&URL=http://127.0.0.1:{receiver.port}/hook")
    return [repo.push(push_body(commit(n + 1))).json["deliveries"][0]["id"] for n in range(BURST)]


def all_succeeded(repo: Repo, ids: list[str]) -> dict[str, Any] | None:
    """every delivery of the burst succeeded"""
    shown = {d["id"]: d for d in repo.get("deliveries?pagelen=100")}
    done = all(shown[i]["status"] == "succeeded" for i in ids)
    return shown if done else None


def counted(receiver: Receiver, ids: list[str]) -> Counter[tuple[str, str]]:
    """What the receiver got, by (delivery id, attempt); checks nothing was lost."""
    seen = Counter(
        (r["X-Brokerage-Delivery"], r["X-Brokerage-Attempt"]) for r in list(receiver.requests)
    )
    assert {delivery for delivery, _attempt in seen} == set(ids), "a delivery was lost"
    return seen


def assert_once_per_attempt(seen: Counter[tuple[str, str]]) -> None:
    twice = {key: n for key, n in seen.items() if n > 1}
    assert twice == {}, f"attempts delivered more than once: {twice}"


def test_redis_killed_mid_burst_and_restarted_empty(
    repo: Repo, receiver: Receiver, hosts: Hosts, redis_server: RedisServer
) -> None:
    ids = burst(repo, receiver)
    workers = [hosts.start("outage-a"), hosts.start("outage-b")]
    wait_for(lambda: len(receiver.requests) >= 8)
    redis_server.stop()  # SIGKILL: the queue, scheduled retries, started-job registry: gone
    before = len(receiver.requests)
    time.sleep(3)
    assert all(w.poll() is None for w in workers), "a worker exited on the Redis outage"
    redis_server.start()  # empty
    wait_for(lambda: all_succeeded(repo, ids), seconds=120)
    seen = counted(receiver, ids)
    assert_once_per_attempt(seen)
    assert before < BURST, "the outage came too late to test anything"
    assert all(w.poll() is None for w in workers), "a worker exited after the outage"
    for name in ("outage-a", "outage-b"):
        # a worker idle in its backoff (up to 30 s) logs its recovery at its next try
        wait_for(lambda name=name: "reconnected after" in hosts.log(name), seconds=60)
        log = hosts.log(name)
        assert "Redis is unreachable" in log and "reconnected after" in log, log[-3000:]


class PostgresCluster:
    """A PostgreSQL cluster of the test's own (initdb in a temporary directory, its own
    port), which a test may stop dead and start again; the shared server is never touched."""

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[4]))
        if not found:
            if os.environ.get("CI"):
                pytest.fail("CI must provide PostgreSQL's server binaries in /usr/lib/postgresql")
            pytest.skip("no PostgreSQL server binaries in /usr/lib/postgresql")
        self.bin = Path(found[-1])
        self.root = Path(tempfile.mkdtemp(prefix="brokerage-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        if os.geteuid() == 0:  # the server refuses to run as root
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w",
                  "-o", options, "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # not running
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def private_postgres() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture
def pg_app(
    tmp_path: Path, private_postgres: PostgresCluster, redis_server: RedisServer, smtp: SmtpSink
) -> Iterator[Flask]:
    app = build_app(
        tmp_path, "sqlite", DATABASE_URL=private_postgres.url, REDIS_URL=redis_server.url,
        SMTP_HOST="127.0.0.1", SMTP_PORT=smtp.port,
    )  # fmt: skip
    yield app
    app.extensions["brokerage.runtime"].close()


def test_postgresql_restarted_mid_run(
    pg_app: Flask,
    private_postgres: PostgresCluster,
    redis_server: RedisServer,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    repo = Repo(pg_app.test_client(), Seeder(pg_app))
    ids = burst(repo, receiver)
    found = Hosts(pg_app, redis_server.url, receiver, tmp_path)
    try:
        workers = [found.start("pg-a"), found.start("pg-b")]
        wait_for(lambda: len(receiver.requests) >= 8)
        private_postgres.stop("immediate")  # as if it crashed: no goodbye to any client
        before = len(receiver.requests)
        time.sleep(3)
        assert all(w.poll() is None for w in workers), "a worker exited on the database outage"
        private_postgres.start()
        wait_for(lambda: all_succeeded(repo, ids), seconds=120)
        seen = counted(receiver, ids)
        assert_once_per_attempt(seen)
        assert before < BURST, "the outage came too late to test anything"
        assert all(w.poll() is None for w in workers), "a worker exited after the outage"
    finally:
        found.stop_all()


@pytest.mark.parametrize("database", ["postgresql"])
def test_two_hosts_one_killed_mid_burst(
    repo: Repo, receiver: Receiver, hosts: Hosts, tmp_path: Path, client: FlaskClient
) -> None:
    """Two worker hosts (each `brokerage worker --processes 2`, a data directory and sandbox
    state of its own) on one PostgreSQL and one Redis; host A dies whole (SIGKILL to its
    supervisor and workers) mid-burst. Host B finishes the burst: the attempts host A held
    are abandoned when their lease runs out and run again under the next attempt number."""
    ids = burst(repo, receiver)
    host_a = hosts.start("host-a", "--processes", "2", data_dir=tmp_path / "host-a")
    host_b = hosts.start("host-b", "--processes", "2", data_dir=tmp_path / "host-b")

    def both_hosts_ran() -> bool:
        """each host ran at least one attempt"""
        workers = {a["worker"].split("-")[1][0] for d in repo.get("deliveries?pagelen=100")
                   for a in repo.get(f"deliveries/{d['id']}")["attempt_log"]
                   if a["worker"]}  # fmt: skip
        return workers == {"a", "b"}

    wait_for(lambda: len(receiver.requests) >= 8)
    assert kill_session(host_a.pid) >= 3  # the host is gone: supervisor, workers, schedulers
    host_a.wait(timeout=10)
    before = len(receiver.requests)
    wait_for(lambda: all_succeeded(repo, ids), seconds=120)
    seen = counted(receiver, ids)
    assert_once_per_attempt(seen)
    assert before < BURST, "host A died too late to test anything"
    assert host_b.poll() is None
    assert both_hosts_ran()


@pytest.mark.parametrize("database", ["sqlite"])
def test_the_supervisor_replaces_a_worker_that_dies_and_stops_all_on_sigterm(
    app: Flask, redis_server: RedisServer, hosts: Hosts
) -> None:
    from rq import Worker

    from brokerage.platform.runtime import Runtime

    hosts.env["BROKERAGE_SANDBOX_BACKEND"] = "fake"
    supervisor = hosts.start("sup", "--processes", "2")
    redis = Runtime.from_config(dict(app.config, REDIS_URL=redis_server.url)).redis

    def workers() -> dict[str, int]:
        """the live workers' names and pids"""
        found = {w.name: int(w.pid or 0) for w in Worker.all(connection=redis)
                 if w.death_date is None and alive(int(w.pid or 0))}  # fmt: skip
        return found if len(found) == 2 else {}

    first = wait_for(workers, seconds=60)
    assert sorted(first) == ["sup-0", "sup-1"]
    os.kill(first["sup-0"], signal.SIGKILL)
    replaced = wait_for(lambda: "sup-0.1" in workers() and workers(), seconds=60)
    assert replaced["sup-1"] == first["sup-1"]
    assert supervisor.poll() is None
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=60) == 0
    assert not any(alive(pid) for pid in replaced.values())


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return pid > 0


@pytest.mark.parametrize("database", ["sqlite"])
def test_a_worker_started_again_under_its_name_after_sigkill_takes_it_over(
    app: Flask, redis_server: RedisServer, hosts: Hosts
) -> None:
    """As systemd does with `brokerage worker --name %H-%i`: RQ still lists the killed
    process under that name, and the new process takes the name over instead of exiting."""
    from rq import Worker

    from brokerage.platform.runtime import Runtime

    hosts.env["BROKERAGE_SANDBOX_BACKEND"] = "fake"
    redis = Runtime.from_config(dict(app.config, REDIS_URL=redis_server.url)).redis

    def registered() -> int:
        """the pid registered under the name `fixed`, when its process lives"""
        found = Worker.find_by_key("rq:worker:fixed", connection=redis)
        pid = int(found.pid or 0) if found is not None else 0
        return pid if alive(pid) else 0

    first = hosts.start("fixed")
    assert wait_for(registered, seconds=60) == first.pid
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    kill_session(first.pid)  # its scheduler process, as systemd's cgroup kill would
    second = hosts.start("fixed")
    assert wait_for(registered, seconds=60) == second.pid
    assert second.poll() is None
    assert "taking over its name" in hosts.log("fixed")
