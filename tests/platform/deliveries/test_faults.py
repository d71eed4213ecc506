"""Faults with real processes: `brokerage worker` subprocesses running the POST broker in the
Docker sandbox through the gateway to a receiver on 127.0.0.1. Nothing is lost, and no
attempt runs twice at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from tests.platform.deliveries.conftest import Repo, commit, push_body
from tests.support import TEST_FIELD_KEY, RedisServer, free_port


@pytest.fixture
def database() -> str:
    return "sqlite"  # the workers are separate processes: one SQLite file is enough here


class Receiver:
    """An HTTP receiver on 127.0.0.1 whose behaviour a test sets per request."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.requests: list[dict[str, Any]] = []
        self.behave: Callable[[int], None] = lambda n: None  # may sleep
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                number = len(receiver.requests)
                receiver.requests.append(dict(self.headers))
                receiver.behave(number)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver(free_port())
    yield found
    found.stop()


@pytest.fixture
def workers(
    app: Flask, redis_server: RedisServer, receiver: Receiver, tmp_path: Path
) -> Iterator[Any]:
    """``workers.start()`` starts a real `brokerage worker` subprocess sharing the app's
    database and Redis; all are killed at the end."""
    env = {
        **os.environ, "BROKERAGE_DATA_DIR": app.config["DATA_DIR"],
        "DATABASE_URL": app.config["DATABASE_URL"], "REDIS_URL": redis_server.url,
        "BROKERAGE_FIELD_KEYS": TEST_FIELD_KEY, "BROKERAGE_SANDBOX_BACKEND": "docker",
        "BROKERAGE_EGRESS_EXTRA_RANGES": "127.0.0.1/32",
        "BROKERAGE_EGRESS_PORTS": f"80,443,{receiver.port}",
        "BROKERAGE_RETRY_DELAYS": "[1, 1, 1, 1]", "BROKERAGE_LEASE_SECONDS": "4",
        "BROKERAGE_SWEEP_INTERVAL": "1", "BROKERAGE_RUN_WALL_SECONDS": "60",
    }  # fmt: skip
    started: list[subprocess.Popen[bytes]] = []

    class Workers:
        def start(self) -> subprocess.Popen[bytes]:
            log = (tmp_path / f"worker{len(started)}.log").open("wb")
            proc = subprocess.Popen(["brokerage", "worker", "--name", f"fault-{len(started)}"],
                                    env=env, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
            started.append(proc)
            return proc

    yield Workers()
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in started:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_for(what: Callable[[], Any], seconds: float = 90) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what.__doc__ or what}")


def delivery(repo: Repo, delivery_id: str) -> dict[str, Any]:
    found: dict[str, Any] = repo.get(f"deliveries/{delivery_id}")
    return found


def test_receiver_down_then_back(repo: Repo, receiver: Receiver, workers: Any) -> None:
    repo.add_service(f"type=POST&URL=http://127.0.0.1:{receiver.port}/hook")
    [queued] = repo.push(push_body(commit(1))).json["deliveries"]
    workers.start()

    def first_attempt() -> dict[str, Any] | None:
        """the first attempt finished (on the closed port)"""
        log = delivery(repo, queued["id"])["attempt_log"]
        return log[0] if log and log[0]["outcome"] != "running" else None

    first = wait_for(first_attempt)
    assert first["outcome"] == "transient"
    assert receiver.requests == []
    receiver.start()
    done = wait_for(
        lambda: (
            delivery(repo, queued["id"])["status"] == "succeeded" and delivery(repo, queued["id"])
        )
    )
    assert len(receiver.requests) == 1
    assert receiver.requests[0]["X-Brokerage-Delivery"] == queued["id"]
    assert int(receiver.requests[0]["X-Brokerage-Attempt"]) == done["attempts"] >= 2
    assert [a["outcome"] for a in done["attempt_log"]][-1] == "succeeded"


def test_a_worker_killed_mid_run_loses_nothing(
    repo: Repo, receiver: Receiver, workers: Any
) -> None:
    receiver.behave = lambda n: time.sleep(30) if n == 0 else None  # the first request hangs
    receiver.start()
    repo.add_service(f"type=POST&URL=http://127.0.0.1:{receiver.port}/hook")
    [queued] = repo.push(push_body(commit(1))).json["deliveries"]
    doomed = workers.start()
    wait_for(lambda: len(receiver.requests) == 1)  # the broker is inside its request
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=10)
    assert delivery(repo, queued["id"])["status"] == "running"
    workers.start()
    done = wait_for(
        lambda: (
            delivery(repo, queued["id"])["status"] == "succeeded" and delivery(repo, queued["id"])
        )
    )
    assert [(a["number"], a["outcome"]) for a in done["attempt_log"]] == [
        (1, "abandoned"),
        (2, "succeeded"),
    ]
    assert [r["X-Brokerage-Attempt"] for r in receiver.requests] == ["1", "2"]
    assert {r["X-Brokerage-Delivery"] for r in receiver.requests} == {queued["id"]}


def test_two_workers_never_run_one_attempt_twice(
    repo: Repo, receiver: Receiver, workers: Any
) -> None:
    receiver.start()
    repo.add_service(f"type=POST&URL=http://127.0.0.1:{receiver.port}/hook")
    ids = [
        d["id"] for n in range(12) for d in repo.push(push_body(commit(n + 1))).json["deliveries"]
    ]
    workers.start()
    workers.start()
    wait_for(lambda: all(delivery(repo, i)["status"] == "succeeded" for i in ids), seconds=180)
    seen = [(r["X-Brokerage-Delivery"], r["X-Brokerage-Attempt"]) for r in receiver.requests]
    assert sorted(seen) == sorted((i, "1") for i in ids)
    assert json.dumps(seen)  # every request carried the delivery id and attempt
