"""Outages of Redis or the database, as a worker lives through them: which errors mean
"the other side is gone for now", how long to wait before trying again, and one log line
when an outage starts and one when it ends (not one per failed call)."""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass, field

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

database_dropped = threading.Event()
"""set by a job that failed because the database could not be reached: its worker stops
taking jobs until the database answers (else it would fail every queued job in turn)"""

BACKOFF_FIRST = 0.5
"""seconds before the first retry"""
BACKOFF_MAX = 30.0
"""the longest wait between two retries"""


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` means Redis or the database cannot be reached (or dropped the
    connection), rather than a bug: such an error is waited out, never fatal."""
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return True
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    cause = exc.__cause__ or exc.__context__
    return cause is not None and cause is not exc and is_outage(cause)


def what_failed(exc: BaseException) -> str:
    return "Redis" if isinstance(exc, RedisConnectionError | RedisTimeoutError) else "the database"


@dataclass
class Backoff:
    """Capped exponential backoff with jitter: each wait is drawn from the upper half of
    ``first * 2**n`` (at most ``cap``), so many workers do not retry in step."""

    first: float = BACKOFF_FIRST
    cap: float = BACKOFF_MAX
    failures: int = 0

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.first * (2 ** min(self.failures, 30)))
        self.failures += 1
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.failures = 0


@dataclass
class Outage:
    """One component's view of an outage: ``failed`` logs the first failure only,
    ``recovered`` logs the end once, with how long it lasted."""

    who: str
    log: logging.Logger
    backoff: Backoff = field(default_factory=Backoff)
    _since: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def ongoing(self) -> bool:
        return self._since is not None

    def failed(self, exc: BaseException) -> float:
        """Note a failure; returns the seconds to wait before trying again."""
        with self._lock:
            if self._since is None:
                self._since = time.monotonic()
                detail = (str(exc).splitlines() or [""])[0]
                self.log.warning(
                    "%s: %s is unreachable (%s: %s); retrying with backoff",
                    self.who, what_failed(exc), type(exc).__name__, detail,
                )  # fmt: skip
            return self.backoff.next_delay()

    def recovered(self) -> None:
        with self._lock:
            if self._since is None:
                return
            lasted = time.monotonic() - self._since
            self._since = None
            self.backoff.reset()
        self.log.warning("%s: reconnected after %.1f s; resuming", self.who, lasted)
