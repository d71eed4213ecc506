"""The services API's documented curl lines, replayed with real curl against a real
``brokerage serve``.

Only the host and the credentials differ from the documentation (our password policy wants 8+
characters; the documented sample password has 7)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
import requests

from tests.support import post_fields

USER = "tutorials:87989870"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("live")
    env = {
        **os.environ,
        "BROKERAGE_DATA_DIR": str(data),
        "DATABASE_URL": "",
        "BROKERAGE_FIELD_KEYS": "",
    }
    subprocess.run(
        ["brokerage", "user", "create", "tutorials", "--password-stdin"],
        input="87989870\n",
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    port = free_port()
    proc = subprocess.Popen(
        ["brokerage", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            requests.get(base + "/1.0/user", timeout=1)
            break
        except requests.ConnectionError:
            time.sleep(0.1)
    requests.post(
        base + "/1.0/repositories",
        auth=tuple(USER.split(":")),  # type: ignore[arg-type]
        data={"name": "testrepo"},
        timeout=10,
    ).raise_for_status()
    yield base
    proc.terminate()
    proc.wait(timeout=10)


def curl(*args: str) -> tuple[int, object]:
    result = subprocess.run(
        ["curl", "-s", "-w", "\n%{http_code}", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    body, _, code = result.stdout.rpartition("\n")
    return int(code), (json.loads(body) if body else None)


def test_seed_curl_lines(server: str) -> None:
    services = f"{server}/1.0/repositories/tutorials/testrepo/services"
    code, created = curl(
        "-u",
        USER,
        "-X",
        "POST",
        f"{services}/",
        "-d",
        "type=POST&URL=https%3A%2F%2Fbitbucket.org/post",
    )
    assert code == 200
    assert isinstance(created, dict)
    sid = created["id"]
    assert created == {
        "id": sid,
        "service": {
            "fields": post_fields("https://bitbucket.org/post"),
            "type": "POST",
        },
    }

    code, updated = curl(
        "--request",
        "PUT",
        "--user",
        USER,
        f"{services}/{sid}/",
        "--data",
        "URL=https://bitbucket.org/new_post",
    )
    assert (code, updated) == (
        200,
        {
            "id": sid,
            "service": {
                "fields": post_fields("https://bitbucket.org/new_post"),
                "type": "POST",
            },
        },
    )

    code, listed = curl("-u", USER, services)
    assert (code, listed) == (200, [updated])
    code, single = curl("-u", USER, f"{services}/{sid}")
    assert (code, single) == (200, [updated])

    code, deleted = curl("--request", "DELETE", "--user", USER, f"{services}/{sid}/")
    assert (code, deleted) == (204, None)
    code, listed = curl("-u", USER, services)
    assert (code, listed) == (200, [])


def test_no_credentials_is_401_with_a_json_message(server: str) -> None:
    code, body = curl(
        "-X", "POST", f"{server}/1.0/repositories/tutorials/testrepo/services/", "-d", "type=POST"
    )
    assert code == 401
    assert body == {
        "error": {
            "status": 401,
            "message": "authentication required: use HTTP Basic or a Bearer API token",
        }
    }
