"""Kept-alive upstream connections of one gateway, reused across requests and runs.

A connection is pooled under its :data:`PoolKey` — destination host, port, the peer
address it reached (checked by the policy when it was opened) and its scheme — and
handed out again only to a request whose own, freshly checked address is that same
address: the per-request checks (allowlist, port, address, rate limits, run caps) all
happen before :meth:`UpstreamPool.take`, and a reused connection never reaches an
address the request did not just accept.

Only connections whose response was read to its framed end, that neither side asked
to close, and that are silent when handed back go into the pool; a connection that
became readable while idle (the peer closed it or sent something unasked) is closed
instead of reused. Idle connections expire after ``idle_seconds``; the pool holds at
most ``per_key`` idle connections per key and ``total`` altogether (the oldest go
first).
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple


class PoolKey(NamedTuple):
    host: str
    """the destination host as the request named it (lower case, brackets for IPv6)"""
    port: int
    address: str
    """the peer address the connection reached, checked when it was opened"""
    scheme: str
    """``http``: only plain HTTP is pooled (a ``CONNECT`` tunnel's TLS is the broker's)"""


def silent(sock: socket.socket) -> bool:
    """True when nothing is waiting on ``sock``: no data, no EOF, no error."""
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN | select.POLLPRI)
        return not poller.poll(0)
    except (OSError, ValueError):
        return False


class UpstreamPool:
    """A bounded pool of idle upstream sockets (thread-safe)."""

    def __init__(
        self,
        idle_seconds: float = 4.0,
        per_key: int = 8,
        total: int = 64,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle_seconds = idle_seconds
        self.per_key = per_key
        self.total = total
        self.clock = clock
        self._idle: OrderedDict[tuple[PoolKey, int], tuple[socket.socket, float]] = OrderedDict()
        """(key, fileno) → (socket, when it went idle); oldest first"""
        self._lock = threading.Lock()
        self._closed = False
        self._wake = threading.Event()
        self._sweeper: threading.Thread | None = None
        self.reused = 0
        """connections handed out again (for tests and benchmarks)"""

    @property
    def enabled(self) -> bool:
        return self.idle_seconds > 0 and self.per_key > 0 and self.total > 0

    def take(self, key: PoolKey) -> socket.socket | None:
        """The most recently idle live connection for ``key``, else None."""
        stale: list[socket.socket] = []
        found: socket.socket | None = None
        with self._lock:
            self._expire(stale)
            for slot in reversed([s for s in self._idle if s[0] == key]):
                sock, _ = self._idle.pop(slot)
                if silent(sock):
                    found = sock
                    self.reused += 1
                    break
                stale.append(sock)
        _close_all(stale)
        return found

    def give(self, key: PoolKey, sock: socket.socket) -> bool:
        """Keep ``sock`` for ``key`` if the pool is open, it is silent and there is room;
        False (and ``sock`` closed) otherwise."""
        if not self.enabled or not silent(sock):
            _close_all([sock])
            return False
        evicted: list[socket.socket] = []
        with self._lock:
            if self._closed:
                evicted.append(sock)
            else:
                self._expire(evicted)
                mine = [s for s in self._idle if s[0] == key]
                while len(mine) >= self.per_key:
                    evicted.append(self._idle.pop(mine.pop(0))[0])
                while len(self._idle) >= self.total:
                    evicted.append(self._idle.popitem(last=False)[1][0])
                self._idle[(key, sock.fileno())] = (sock, self.clock())
                self._start_sweeper()
        _close_all(evicted)
        return sock not in evicted

    def idle_count(self, key: PoolKey | None = None) -> int:
        with self._lock:
            return sum(1 for slot in self._idle if key is None or slot[0] == key)

    def sweep(self) -> None:
        """Close the connections idle longer than ``idle_seconds``."""
        stale: list[socket.socket] = []
        with self._lock:
            self._expire(stale)
        _close_all(stale)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            socks = [sock for sock, _ in self._idle.values()]
            self._idle.clear()
        self._wake.set()
        _close_all(socks)

    def _expire(self, into: list[socket.socket]) -> None:
        """(lock held) move expired connections from the pool to ``into``."""
        oldest_kept = self.clock() - self.idle_seconds
        while self._idle:
            slot, (sock, since) = next(iter(self._idle.items()))
            if since > oldest_kept:
                return
            del self._idle[slot]
            into.append(sock)

    def _start_sweeper(self) -> None:
        """(lock held) one daemon thread closes expired connections while any are idle."""
        if self._sweeper is None or not self._sweeper.is_alive():
            self._sweeper = threading.Thread(
                target=self._sweep_loop, name="egress-pool", daemon=True
            )
            self._sweeper.start()

    def _sweep_loop(self) -> None:
        while not self._wake.wait(max(0.5, self.idle_seconds / 2)):
            self.sweep()
            with self._lock:
                if not self._idle:
                    self._sweeper = None
                    return


def _close_all(socks: list[socket.socket]) -> None:
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
