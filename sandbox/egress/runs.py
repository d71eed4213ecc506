"""One delivery's share of a gateway channel (:class:`Run`): its request log, counters and
open connections, ended when the run ends."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from brokerage.sandbox.egress.errors import EgressRefusedError, Refusal


def shutdown(sock: socket.socket) -> None:
    """Shut both directions of ``sock`` down, whatever state it is in."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class Run:
    """One delivery's share of a channel: log, counters, open connections."""

    def __init__(
        self,
        delivery_id: str,
        service_named: frozenset[str] = frozenset(),
        limit_keys: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.delivery_id = delivery_id
        self.service_named = service_named
        self.limit_keys = limit_keys
        """(kind, key) pairs besides the destination that this run's requests are limited by"""
        self.started = time.monotonic()
        self.log: list[dict[str, Any]] = []
        self.counts = {"requests": 0, "mails": 0}
        self.bytes = 0
        self.ended = False
        self.sockets: set[socket.socket] = set()
        self._active = 0
        self._cond = threading.Condition()

    def track(self, work: Callable[[], None]) -> None:
        with self._cond:
            self._active += 1
        try:
            work()
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()

    @property
    def active(self) -> int:
        """connections of this run being served right now"""
        return self._active

    def count(self, what: str, limit: int) -> None:
        """One more request (or mail); RUN_CAP past ``limit``."""
        with self._cond:
            self.counts[what] += 1
            if self.counts[what] > limit:
                raise EgressRefusedError(Refusal.RUN_CAP, f"more than {limit} {what} in this run")

    def adopt(self, sock: socket.socket) -> None:
        with self._cond:
            if self.ended:
                raise EgressRefusedError(Refusal.RUN_ENDED, "the run has ended")
            self.sockets.add(sock)

    def release(self, sock: socket.socket) -> bool:
        """Stop tracking ``sock`` (it goes back to the gateway's pool); False when the run
        has ended, whose ``end()`` may be cutting it."""
        with self._cond:
            if self.ended:
                return False
            self.sockets.discard(sock)
            return True

    def charge(self, nbytes: int, limit: int) -> None:
        with self._cond:
            self.bytes += nbytes
            if self.ended:
                raise EgressRefusedError(Refusal.RUN_ENDED, "the run has ended")
            if self.bytes > limit:
                raise EgressRefusedError(Refusal.RUN_CAP, f"more than {limit} bytes in this run")

    def record(self, entry: dict[str, Any]) -> None:
        with self._cond:
            self.log.append(entry)

    def end(self) -> None:
        with self._cond:
            self.ended = True
            sockets = list(self.sockets)
        for sock in sockets:
            shutdown(sock)

    def wait_log(self, seconds: float = 2.0) -> list[dict[str, Any]]:
        with self._cond:
            self._cond.wait_for(lambda: self._active == 0, timeout=seconds)
            return [dict(entry) for entry in self.log]
