"""The gateway wired into the real sandboxes (Docker and bubblewrap): broker code using plain
``requests`` (through the runner's loopback bridge and the mounted Unix socket) reaches allowed
receivers on 127.0.0.1, is refused everything in the table, and cannot reach the host's
Redis, database or Docker socket by any route."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from brokerage.sandbox.egress.config import GatewayConfig
from brokerage.sandbox.egress.gateway import Gateway
from brokerage.sandbox.errors import BackendUnavailableError
from brokerage.sandbox.interface import BrokerBundle, Limits, RunResult
from brokerage.sandbox.sandboxes import SandboxOptions
from tests.sandbox.egress.egress_tables import ANY, NAMED, REFUSED

LIMITS = Limits(wall_seconds=60.0)

POSTER = """
import json
import sys
import requests

payload = json.load(sys.stdin)
url = payload["service"]["URL"]
response = requests.post(url, json={"commits": payload["commits"]}, timeout=10)
print(response.status_code, response.text)
"""

PROBE = """
import requests
from brokerage_sdk import BaseBroker


class Probe(BaseBroker):
    def handle(self, payload):
        outcomes = []
        for url in self.get_local("targets"):
            try:
                response = requests.get(url, timeout=10, allow_redirects=self.get_local("follow"))
                outcomes.append([response.status_code, response.headers.get("X-Brokerage-Refused")])
            except requests.RequestException as exc:
                outcomes.append([None, str(exc)[:200]])
        return {"outcomes": outcomes}
"""

# Runs without the RestrictedPython layer: the sandbox alone must hold.
ESCAPE = """
import json, os, socket, sys

service = json.load(sys.stdin)["service"]
proxy = os.environ["HTTP_PROXY"].rsplit(":", 1)
report = {"env": {k: os.environ.get(k) for k in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")}}

def attempt(family, address, data=b""):
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(3)
    try:
        sock.connect(address)
        sock.sendall(data)
        return "connected: " + sock.recv(200).decode("latin-1")
    except OSError as exc:
        return "failed: " + type(exc).__name__
    finally:
        sock.close()

report["direct"] = {
    f"{host}:{port}": attempt(socket.AF_INET6 if ":" in host else socket.AF_INET, (host, port))
    for host in service["hosts"] for port in service["ports"]
}
report["unix"] = {path: attempt(socket.AF_UNIX, path) for path in service["unix"]}
report["files"] = {path: os.path.exists(path) for path in service["files"]}
report["mounted"] = sorted(os.listdir("/run/brokerage"))
report["raw"] = [
    attempt(socket.AF_INET, ("127.0.0.1", int(proxy[1])), data.encode("latin-1"))
    for data in service["raw"]
]
print(json.dumps(report))
"""


def _bundle(name: str, code: str, egress: list[str], entry: str = "broker.py") -> BrokerBundle:
    manifest = {"name": name, "version": "1.0.0", "entry_point": entry, "egress": egress}
    return BrokerBundle(name, "1.0.0", manifest, {"broker.py": textwrap.dedent(code).encode()})


def _host_addresses() -> set[str]:
    """Every address of this host, loopback aside (``hostname -I`` knows them all)."""
    found = {str(info[4][0]) for info in socket.getaddrinfo(socket.gethostname(), None)}
    with contextlib.suppress(OSError):
        listed = subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout
        found |= set(listed.split())
    return found - {"127.0.0.1", "::1"}


def _envelope(delivery: str, **service: Any) -> dict[str, Any]:
    return {"commits": [{"node": "abc"}], "service": service, "broker": "probe",
            "delivery": {"id": delivery, "attempt": 1}}  # fmt: skip


@pytest.fixture(scope="module")
def sandbox_gateway(gateway_config: GatewayConfig, redis_port: int) -> Iterator[Gateway]:
    # The table runs as one broker run: lift the rate limit and run caps it would trip.
    config = replace(gateway_config, destination_rate=1000.0, destination_burst=1000)
    with Gateway(config) as gateway:
        yield gateway


def _docker_backend(egress: Gateway, options: SandboxOptions) -> Callable[[], Any]:
    from brokerage.sandbox import image
    from brokerage.sandbox.docker_backend import DockerBackend, docker_client

    client = docker_client()
    tag = image.build_docker_image(client)
    return lambda: DockerBackend(client=client, image_tag=tag, egress=egress, options=options)


def _bubblewrap_backend(egress: Gateway, options: SandboxOptions) -> Callable[[], Any]:
    from brokerage.sandbox import image
    from brokerage.sandbox.bwrap_backend import BubblewrapBackend, require_bwrap

    require_bwrap()
    rootfs = image.build_rootfs()
    return lambda: BubblewrapBackend(rootfs=rootfs, egress=egress, options=options)


@pytest.fixture(scope="module", params=["docker", "bubblewrap"])
def backend_factory(request: pytest.FixtureRequest, sandbox_gateway: Gateway) -> Iterator[Any]:
    """``backend_factory(guarded=True)``: a warm-pool backend of the parametrized kind."""
    kinds = {"docker": _docker_backend, "bubblewrap": _bubblewrap_backend}
    made: list[Any] = []

    def make(guarded: bool = True) -> Any:
        options = SandboxOptions(guarded=guarded)
        try:
            made.append(kinds[request.param](sandbox_gateway, options)())
        except BackendUnavailableError as exc:  # CI provides both (docker daemon, bwrap)
            pytest.skip(f"{request.param} unavailable: {exc}")
        return made[-1]

    yield make
    for backend in made:
        backend.close()


@pytest.fixture(scope="module")
def backend(backend_factory: Any) -> Any:
    return backend_factory()


def _run(backend: Any, bundle: BrokerBundle, envelope: dict[str, Any]) -> RunResult:
    result = backend.run(bundle, envelope, LIMITS)
    assert result.ok, (result.status, result.error, result.stderr[-2000:])
    return result


def test_plain_requests_post_reaches_an_allowed_receiver(backend, receiver) -> None:
    bundle = _bundle("poster", POSTER, ["127.0.0.1"])
    url = receiver.url("/hook", host="127.0.0.1")
    result = _run(backend, bundle, _envelope("d-post", URL=url))
    assert result.stdout.startswith("200 ")
    assert receiver.requests[-1].body == b'{"commits": [{"node": "abc"}]}'
    [entry] = result.requests
    assert (entry["method"], entry["url"], entry["status"]) == ("POST", url, 200)
    assert (entry["delivery_id"], entry["refused"], entry["address"]) == (
        "d-post",
        None,
        "127.0.0.1",
    )


def test_https_and_named_hosts_work_from_the_sandbox(backend, receiver, tls_receiver) -> None:
    bundle = _bundle("probe", PROBE, NAMED, entry="broker.py:Probe")
    targets = [receiver.url("/a"), receiver.url("/b", host="a.wild.test")]
    result = _run(backend, bundle, _envelope("d-ok", targets=targets, follow=False))
    assert result.result == {"outcomes": [[200, None], [200, None]]}
    assert [e["status"] for e in result.requests] == [200, 200]


@pytest.mark.parametrize("egress", [ANY, NAMED], ids=["any", "named"])
def test_the_refused_table_from_inside_the_sandbox(
    egress: list[str], backend, receiver, tls_receiver
) -> None:
    rows = [(t, reason) for t, manifest, reason in REFUSED if manifest is egress]
    targets = [t.format(p=receiver.port, tp=tls_receiver.port) for t, _ in rows]
    seen = len(receiver.requests) + len(tls_receiver.requests)
    bundle = _bundle("probe", PROBE, egress, entry="broker.py:Probe")
    result = _run(
        backend, bundle, _envelope(f"d-table-{len(egress)}", targets=targets, follow=False)
    )
    assert [e["refused"] for e in result.requests] == [reason for _, reason in rows]
    assert [e["url"] for e in result.requests] == [_logged(t).lower() for t in targets]
    for status, refused in result.result["outcomes"]:
        assert status in (None, 400, 403, 502) and refused
    assert len(receiver.requests) + len(tls_receiver.requests) == seen


def _logged(url: str) -> str:
    """How the log shows a target: CONNECT targets as host:port."""
    if url.startswith("https://"):
        authority = url.removeprefix("https://").rstrip("/")
        return authority if ":" in authority.rsplit("]", 1)[-1] else f"{authority}:443"
    return url


def test_a_followed_redirect_into_blocked_space_is_refused(backend, receiver) -> None:
    bundle = _bundle("probe", PROBE, ANY, entry="broker.py:Probe")
    target = receiver.url(f"/redirect?to=http://127.0.0.1:{receiver.port}/secret")
    result = _run(backend, bundle, _envelope("d-redirect", targets=[target], follow=True))
    assert result.result == {"outcomes": [[403, "address_denied"]]}
    assert [(e["status"], e["refused"]) for e in result.requests] == [
        (302, None),
        (403, "address_denied"),
    ]


def test_host_services_are_unreachable_by_any_route(
    backend_factory, receiver, redis_port, redis_connections, tmp_path: Path
) -> None:
    database = tmp_path / "brokerage.db"
    database.write_bytes(b"SQLite format 3\0")
    host_addresses = sorted(_host_addresses())
    port = receiver.port
    raw = [
        f"GET http://receiver.test:{port}/ HTTP/1.1\r\nX-A: 1\rX-B: 2\r\n\r\n",
        f"GET http://receiver.test:{port}/ HTTP/1.1\r\nX-A: 1\nInjected: 2\r\n\r\n",
        f"GET http://receiver.test:{port}/ HTTP/1.1\r\nX-A: 1\0\r\n\r\n",
        f"GET http://receiver.test:{port}/a\rb HTTP/1.1\r\n\r\n",
        f"GET http://127.0.0.1:{redis_port}/ HTTP/1.1\r\n\r\n",
        f"CONNECT 127.0.0.1:{redis_port} HTTP/1.1\r\n\r\n",
        f"CONNECT localhost:{redis_port} HTTP/1.1\r\n\r\n",
        f"CONNECT [::ffff:127.0.0.1]:{redis_port} HTTP/1.1\r\n\r\n",
        f"CONNECT 2130706433:{redis_port} HTTP/1.1\r\n\r\n",
        "CONNECT 127.0.0.1:5432 HTTP/1.1\r\n\r\n",
        "CONNECT 127.0.0.1:2375 HTTP/1.1\r\n\r\n",
        "CONNECT /var/run/docker.sock HTTP/1.1\r\n\r\n",
        "GET http://unix:/var/run/docker.sock:/info HTTP/1.1\r\n\r\n",
        "PING\r\n",
        "*1\r\n$4\r\nPING\r\n",
    ]
    service = {
        "hosts": ["127.0.0.1", "::1", *host_addresses, "172.17.0.1", "10.0.2.2", "169.254.169.254"],
        "ports": [redis_port, 6379, 5432, 2375, port],
        "unix": [
            "/var/run/docker.sock",
            "/run/docker.sock",
            "/var/run/redis/redis-server.sock",
            "/var/run/postgresql/.s.PGSQL.5432",
        ],  # fmt: skip
        "files": [str(database), "/var/run/docker.sock", "/var/lib/redis"],
        "raw": raw,
    }
    # The worst manifest: any host, plus loopback named (the test gateway opens 127.0.0.1/32).
    bundle = _bundle("escape", ESCAPE, ["*", "127.0.0.1", "localhost"])
    before = redis_connections(redis_port)
    result = _run(backend_factory(guarded=False), bundle, _envelope("d-escape", **service))
    report = json.loads(result.stdout)
    assert report["mounted"] == ["egress.sock"]
    assert report["env"]["HTTP_PROXY"] == report["env"]["HTTPS_PROXY"]
    assert all(v.startswith("failed") for v in report["direct"].values()), report["direct"]
    assert all(v.startswith("failed") for v in report["unix"].values()), report["unix"]
    assert not any(report["files"].values())
    for answer in report["raw"]:  # every raw request got a refusal from the gateway
        assert answer.startswith("connected: HTTP/1.1 ") and "\r\nX-Brokerage-Refused: " in answer
    assert redis_connections(redis_port) == before + 1  # +1: the count's own connection
    assert all(e["refused"] for e in result.requests)
