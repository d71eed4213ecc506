"""The in-sandbox bridge on its own: bytes both ways, half-close, many connections,
and a closed connection when no gateway socket is there."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from brokerage.sandbox.runner.egress_bridge import start_bridge


@pytest.fixture
def echo_socket(tmp_path: Path) -> Iterator[str]:
    """A Unix socket that echoes everything back, then closes once the peer half-closes."""
    path = str(tmp_path / "echo.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(64)

    def echo(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=echo, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield path
    server.close()


def _round_trip(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:

        def send() -> None:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)

        sender = threading.Thread(target=send)
        sender.start()
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        sender.join()
    return b"".join(chunks)


def test_bytes_pass_both_ways_with_half_close(echo_socket: str) -> None:
    port = start_bridge(echo_socket)
    payload = os.urandom(3 * 1024 * 1024)
    assert _round_trip(port, payload) == payload


def test_many_connections_at_once(echo_socket: str) -> None:
    port = start_bridge(echo_socket)
    results: dict[int, bytes] = {}

    def one(i: int) -> None:
        results[i] = _round_trip(port, b"%d" % i * 1000)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {i: b"%d" % i * 1000 for i in range(30)}


def test_no_gateway_means_a_closed_connection(tmp_path: Path) -> None:
    port = start_bridge(str(tmp_path / "absent.sock"))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        assert sock.recv(100) == b""


def test_the_bridge_listens_on_loopback_only(echo_socket: str) -> None:
    port = start_bridge(echo_socket)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        assert sock.getpeername()[0] == "127.0.0.1"
