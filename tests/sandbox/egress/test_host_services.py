"""A broker cannot reach the host's Redis, database or Docker socket by any route through
the gateway — even with the test's 127.0.0.1/32 opening and a manifest naming loopback."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from brokerage.sandbox.egress.proxy import REFUSED_HEADER

WORST_MANIFEST = ["*", "127.0.0.1", "localhost", "[::1]"]


class Listener:
    """A TCP or Unix listener that counts connections (the database / Docker stand-in)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.accepted = sock, 0
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self) -> None:
        while True:
            try:
                self.sock.accept()[0].close()
            except OSError:
                return
            self.accepted += 1


@pytest.fixture(scope="module")
def database() -> Iterator[Listener]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield Listener(sock)
    sock.close()


@pytest.fixture(scope="module")
def docker_socket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Listener]]:
    path = tmp_path_factory.mktemp("docker") / "docker.sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.listen()
    yield path, Listener(sock)
    sock.close()


ROUTES = [
    "http://127.0.0.1:{port}/",
    "http://localhost:{port}/",
    "http://[::1]:{port}/",
    "http://2130706433:{port}/",
    "http://0x7f.1:{port}/",
    "http://[::ffff:127.0.0.1]:{port}/",
    "http://0.0.0.0:{port}/",
    "https://127.0.0.1:{port}/",
    "https://localhost:{port}/",
    "http://brokerage.internal:{port}/",
]


@pytest.mark.parametrize("open_ports", [False, True], ids=["default-ports", "ports-opened"])
@pytest.mark.parametrize("route", ROUTES)
def test_redis_and_database_are_unreachable(
    route: str, open_ports: bool, redis_port: int, database: Listener, make_gateway, broker_side,
    gateway_config, redis_connections,
) -> None:  # fmt: skip
    ports = gateway_config.allowed_ports | (
        {redis_port, database.sock.getsockname()[1]} if open_ports else set()
    )
    manifest = ["*"] if open_ports else WORST_MANIFEST
    side = broker_side(manifest, via=make_gateway(allowed_ports=ports))
    before_redis, before_db = redis_connections(redis_port), database.accepted
    for port in (redis_port, database.sock.getsockname()[1]):
        try:
            response = side.session.post(route.format(port=port), data=b"PING\r\n", timeout=10)
            assert response.headers[REFUSED_HEADER]
        except requests.exceptions.ProxyError:
            pass
    entries = side.end_run()
    assert len(entries) == 2 and all(e["refused"] for e in entries)
    assert redis_connections(redis_port) == before_redis + 1  # +1: the INFO call itself
    assert database.accepted == before_db


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"PING\r\n",
        b"*1\r\n$4\r\nPING\r\n",
        b"GET http+unix://{quoted}/info HTTP/1.1\r\n\r\n",
        b"GET http://unix:{path}/info HTTP/1.1\r\n\r\n",
        b"GET unix://{path} HTTP/1.1\r\n\r\n",
        b"CONNECT {path} HTTP/1.1\r\n\r\n",
        b"CONNECT unix:{path} HTTP/1.1\r\n\r\n",
    ],
)
def test_the_docker_socket_and_raw_protocols_are_unreachable(
    request_bytes: bytes, docker_socket, broker_side, raw
) -> None:
    path, listener = docker_socket
    side = broker_side(WORST_MANIFEST)
    quoted = str(path).replace("/", "%2F").encode()
    data = request_bytes.replace(b"{path}", str(path).encode()).replace(b"{quoted}", quoted)
    answer = raw(side.channel.socket_path, data)
    assert b"\r\nX-Brokerage-Refused: " in answer
    assert listener.accepted == 0
