"""``brokerage serve``'s access log: one line per request (client, method, path without the
query string, status, bytes, duration), never a secret; through the WSGI middleware and
through the real command on a real port."""

from __future__ import annotations

import logging
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from werkzeug.test import Client

from brokerage.platform.server.access_log import AccessLog
from tests.support import build_app, free_port

LINE = re.compile(
    r'client=(?P<client>\S+) method=(?P<method>[A-Z]+) path=(?P<path>"(?:[^"\\]|\\.)*") '
    r"status=(?P<status>\d{3}|-) bytes=(?P<bytes>\d+) duration=(?P<duration>\d+\.\d{3})s$"
)
SECRET = "brk_query-secret-do-not-log"
START_WAIT_SECONDS = 60
"""seconds ``brokerage serve`` may take to start answering"""


def test_one_line_per_request_without_the_query_string(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = build_app(tmp_path)
    client = Client(AccessLog(app.wsgi_app))
    caplog.set_level(logging.INFO, logger="brokerage.access")
    client.get(
        f"/login?next=/x&token={SECRET}", environ_base={"REMOTE_ADDR": "203.0.113.9"}, buffered=True
    )
    client.get("/1.0/user", headers={"Authorization": f"Bearer {SECRET}"}, buffered=True)
    client.get("/", environ_overrides={"PATH_INFO": "/no/such/page\nforged=line"}, buffered=True)
    lines = [r.getMessage() for r in caplog.records if r.name == "brokerage.access"]
    assert len(lines) == 3, lines
    found = [LINE.match(line) for line in lines]
    assert all(found), lines
    login, api, missing = (m.groupdict() for m in found if m)
    assert login["client"] == "203.0.113.9" and login["method"] == "GET"
    assert login["path"] == '"/login"' and login["status"] == "200"
    assert int(login["bytes"]) > 0
    assert api["path"] == '"/1.0/user"' and api["status"] == "401"
    assert missing["path"] == '"/no/such/page\\nforged=line"' and missing["status"] == "404"
    assert not any(SECRET in line for line in lines)


def test_an_app_that_raises_is_logged_as_500(caplog: pytest.LogCaptureFixture) -> None:
    def broken(environ: object, start_response: object) -> list[bytes]:
        raise RuntimeError("boom")

    caplog.set_level(logging.INFO, logger="brokerage.access")
    with pytest.raises(RuntimeError):
        Client(AccessLog(broken)).get("/anything", buffered=True)
    [record] = [r for r in caplog.records if r.name == "brokerage.access"]
    assert 'path="/anything" status=500' in record.getMessage()


def _wait_for_port(port: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + START_WAIT_SECONDS
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1]
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"brokerage serve did not listen on {port}")


def _serve(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    environ = {**os.environ, "BROKERAGE_DATA_DIR": str(tmp_path), "BROKERAGE_FIELD_KEYS": "",
               "DATABASE_URL": "", "BROKERAGE_DATABASE_URL": ""}  # fmt: skip
    code = "from brokerage.platform.cli import run; run()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "serve", "--port", str(port), *extra],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_port(port, proc)
    return proc, port


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    _out, err = proc.communicate(timeout=30)
    return err


def test_brokerage_serve_writes_the_access_log(tmp_path: Path) -> None:
    proc, port = _serve(tmp_path)
    try:
        base = f"http://127.0.0.1:{port}"
        assert requests.get(f"{base}/login?token={SECRET}", timeout=10).status_code == 200
        refused = requests.post(
            f"{base}/1.0/repositories", data={"name": "x"}, auth=("root", SECRET), timeout=10
        )
        assert refused.status_code == 401
    finally:
        err = _stop(proc)
    lines = [line for line in err.splitlines() if " brokerage.access " in line]
    assert len(lines) == 2, err
    assert re.search(
        r'client=127\.0\.0\.1 method=GET path="/login" status=200 bytes=\d+ ', lines[0]
    )
    assert 'method=POST path="/1.0/repositories" status=401' in lines[1]
    assert SECRET not in err


def test_behind_a_trusted_proxy_the_client_is_the_forwarded_one(tmp_path: Path) -> None:
    proc, port = _serve(tmp_path, "--trusted-proxy", "127.0.0.1")
    try:
        requests.get(
            f"http://127.0.0.1:{port}/login",
            headers={"X-Forwarded-For": "198.51.100.4", "X-Forwarded-Proto": "https"},
            timeout=10,
        )
    finally:
        err = _stop(proc)
    assert 'client=198.51.100.4 method=GET path="/login" status=200' in err, err


def test_no_access_log_writes_none(tmp_path: Path) -> None:
    proc, port = _serve(tmp_path, "--no-access-log")
    try:
        requests.get(f"http://127.0.0.1:{port}/login", timeout=10)
    finally:
        err = _stop(proc)
    assert "brokerage.access" not in err
