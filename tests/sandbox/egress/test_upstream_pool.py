"""The gateway's pool of kept-alive upstream connections: reused only for the same checked
address, never after the host resolves elsewhere, expired when idle, capped; the request
log keeps one entry per request."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from brokerage.sandbox.egress.pool import PoolKey, UpstreamPool
from brokerage.sandbox.egress.proxy import REFUSED_HEADER


class _KeepAliveHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless a side says close
    server: _KeepAliveServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib's name)
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.server.seen.append((self.client_address[1], self.headers.get("Connection")))
        body = f"{self.server.name} {self.client_address[1]}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        if self.server.close_after_answer:  # a receiver that drops idle connections at once
            self.close_connection = True

    do_GET = do_POST = _serve


class _KeepAliveServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], name: str) -> None:
        super().__init__(address, _KeepAliveHandler)
        self.name = name
        self.seen: list[tuple[int, str | None]] = []
        """(client port, Connection header) per request"""
        self.close_after_answer = False


@pytest.fixture
def keepalive() -> Iterator[tuple[_KeepAliveServer, _KeepAliveServer]]:
    """Two HTTP/1.1 receivers on the same port: 127.0.0.1 and 127.0.0.2."""
    first = _KeepAliveServer(("127.0.0.1", 0), "one")
    second = _KeepAliveServer(("127.0.0.2", first.server_address[1]), "two")
    for server in (first, second):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield first, second
    for server in (first, second):
        server.shutdown()
        server.server_close()


@pytest.fixture
def moving_gateway(make_gateway, keepalive) -> tuple[Any, dict[str, list[str]]]:
    """A gateway whose resolver answers from a table the test changes."""
    answers = {"moving.test": ["127.0.0.1"]}

    def resolve(host: str, port: int) -> list[str]:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return answers[host]

    port = keepalive[0].server_address[1]
    gateway = make_gateway(
        resolver=resolve, allowed_ports=frozenset({port}), extra_ranges=("127.0.0.0/30",)
    )
    return gateway, answers


def _url(server: _KeepAliveServer, path: str = "/hook") -> str:
    return f"http://moving.test:{server.server_address[1]}{path}"


def test_a_kept_alive_connection_is_reused_across_requests_and_runs(
    moving_gateway, keepalive, broker_side
) -> None:
    gateway, _ = moving_gateway
    one, _ = keepalive
    side = broker_side(["moving.test"], via=gateway)
    for n in range(3):
        assert side.session.post(_url(one), data=f"n={n}", timeout=10).status_code == 200
    entries = side.end_run()
    other = broker_side(["moving.test"], via=gateway)  # another broker's channel, another run
    assert other.session.get(_url(one), timeout=10).status_code == 200
    later = other.end_run()

    assert len({port for port, _ in one.seen}) == 1  # one upstream connection for all four
    assert [connection for _, connection in one.seen] == [None] * 4  # no Connection: close
    assert gateway.pool.reused == 3
    assert len(entries) == 3 and len(later) == 1  # one log entry per request
    for entry in entries + later:
        assert (entry["status"], entry["address"], entry["refused"]) == (200, "127.0.0.1", None)
        assert "Connection" not in dict(entry["request"]["headers"])
        assert entry["response"]["body"].startswith("one ")


def test_never_reused_once_the_host_resolves_to_a_blocked_address(
    moving_gateway, keepalive, broker_side
) -> None:
    gateway, answers = moving_gateway
    one, _ = keepalive
    side = broker_side(["moving.test"], via=gateway)
    assert side.session.get(_url(one), timeout=10).status_code == 200
    key = PoolKey("moving.test", one.server_address[1], "127.0.0.1", "http")
    assert gateway.pool.idle_count(key) == 1

    answers["moving.test"] = ["10.0.0.9"]  # rebinding: the name now points into private space
    refused = side.session.get(_url(one, "/secret"), timeout=10)
    assert refused.status_code == 403 and refused.headers[REFUSED_HEADER] == "address_denied"
    assert len(one.seen) == 1  # the idle connection to 127.0.0.1 was not handed out
    [_, entry] = side.end_run()
    assert (entry["refused"], entry["address"]) == ("address_denied", None)


def test_never_reused_once_the_host_resolves_to_another_address(
    moving_gateway, keepalive, broker_side
) -> None:
    gateway, answers = moving_gateway
    one, two = keepalive
    side = broker_side(["moving.test"], via=gateway)
    assert side.session.get(_url(one), timeout=10).text.startswith("one ")
    answers["moving.test"] = ["127.0.0.2"]
    assert side.session.get(_url(one), timeout=10).text.startswith("two ")
    answers["moving.test"] = ["127.0.0.1"]
    assert side.session.get(_url(one), timeout=10).text.startswith("one ")
    entries = side.end_run()
    assert [e["address"] for e in entries] == ["127.0.0.1", "127.0.0.2", "127.0.0.1"]
    assert len(one.seen) == 2 and len({port for port, _ in one.seen}) == 1
    assert len(two.seen) == 1
    assert gateway.pool.reused == 1


def test_a_connection_the_receiver_closed_is_not_reused(
    moving_gateway, keepalive, broker_side
) -> None:
    gateway, _ = moving_gateway
    one, _ = keepalive
    one.close_after_answer = True  # closes after answering, without saying so
    side = broker_side(["moving.test"], via=gateway)
    for _ in range(2):  # the second finds the connection closed (or it fails as reused,
        assert side.session.get(_url(one), timeout=10).status_code == 200  # and is re-sent)
    assert len({port for port, _ in one.seen}) == 2
    assert [e["status"] for e in side.end_run()] == [200, 200]


def test_the_pool_can_be_switched_off(make_gateway, keepalive, broker_side) -> None:
    one, _ = keepalive
    gateway = make_gateway(
        pool_idle_seconds=0,
        resolver=lambda host, port: ["127.0.0.1"],
        allowed_ports=frozenset({one.server_address[1]}),
        extra_ranges=("127.0.0.0/30",),
    )
    side = broker_side(["moving.test"], via=gateway)
    for _ in range(2):
        assert side.session.get(_url(one), timeout=10).status_code == 200
    assert [connection for _, connection in one.seen] == ["close", "close"]
    assert len({port for port, _ in one.seen}) == 2
    assert all(dict(e["request"]["headers"])["Connection"] == "close" for e in side.end_run())


# -- the pool itself ---------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def socket_pairs() -> Iterator[Callable[[], socket.socket]]:
    """``pair()``: one end of a fresh socket pair (the other end kept open, silent)."""
    made: list[socket.socket] = []

    def pair() -> socket.socket:
        ours, theirs = socket.socketpair()
        made.extend((ours, theirs))
        return ours

    yield pair
    for sock in made:
        sock.close()


KEY = PoolKey("receiver.test", 80, "93.184.216.34", "http")


def test_idle_connections_expire(socket_pairs) -> None:
    clock = _Clock()
    pool = UpstreamPool(idle_seconds=4.0, clock=clock)
    sock = socket_pairs()
    assert pool.give(KEY, sock)
    clock.now += 3.9
    assert pool.take(KEY) is sock
    assert pool.give(KEY, sock)
    clock.now += 4.0
    assert pool.take(KEY) is None
    assert sock.fileno() == -1  # closed, not just forgotten
    pool.close()


def test_the_sweeper_closes_expired_connections(socket_pairs) -> None:
    pool = UpstreamPool(idle_seconds=0.2)
    sock = socket_pairs()
    assert pool.give(KEY, sock)
    _wait_for(lambda: sock.fileno() == -1)
    assert pool.idle_count() == 0
    pool.close()


def test_connections_are_kept_only_for_their_own_key(socket_pairs) -> None:
    pool = UpstreamPool()
    sock = socket_pairs()
    pool.give(KEY, sock)
    assert pool.take(KEY._replace(address="93.184.216.35")) is None
    assert pool.take(KEY._replace(host="other.test")) is None
    assert pool.take(KEY._replace(port=8080)) is None
    assert pool.take(KEY) is sock
    pool.close()


def test_the_pool_is_capped_per_destination_and_in_total(socket_pairs) -> None:
    pool = UpstreamPool(per_key=2, total=3)
    first, second, third = (socket_pairs() for _ in range(3))
    for sock in (first, second, third):
        pool.give(KEY, sock)
    assert pool.idle_count(KEY) == 2 and first.fileno() == -1  # the oldest went
    other = KEY._replace(host="other.test")
    pool.give(other, socket_pairs())
    pool.give(other, socket_pairs())
    assert pool.idle_count() == 3 and second.fileno() == -1
    pool.close()
    assert pool.idle_count() == 0 and third.fileno() == -1


def test_a_connection_with_unread_input_is_not_kept(socket_pairs) -> None:
    pool = UpstreamPool()
    ours, theirs = socket.socketpair()
    theirs.sendall(b"HTTP/1.1 200 OK\r\n\r\n")  # an answer nobody asked for
    assert not pool.give(KEY, ours)
    assert ours.fileno() == -1
    quiet = socket_pairs()
    pool.give(KEY, quiet)
    theirs.close()
    pool.close()


def _wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.02)
