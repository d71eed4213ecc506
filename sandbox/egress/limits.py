"""Rate limits keyed by what they protect: a destination, a service, a repository.

Each kind of key has a token bucket per key (``rate`` tokens a second, at most
``burst``), per gateway — that is, per worker process. A request takes one token from
the bucket of every key it has: its destination (``host:port``, the receiver the limit
protects), and, when the platform named them for the run, its service and its
repository. One busy repository drains only its own buckets (and those of the
destinations it sends to), never another repository's.

A request over a limit is not refused at once: it *reserves* its tokens (a bucket may
go below zero, so later requests queue behind it in arrival order) and waits until they
are due, at most ``max_wait`` seconds. A request that would wait longer takes nothing
and is refused as ``rate_limited`` with the seconds after which it would pass; the
platform then defers the delivery (re-queued after that wait, not counted as a failed
attempt). The platform's own throttling never fails a delivery.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

KINDS = ("destination", "service", "repository")
"""the kinds of key a request is limited by, in the order they are checked"""

IDLE_BUCKETS = 10_000
"""full buckets beyond this many are forgotten (a full bucket is the same as none)"""


@dataclass(frozen=True)
class Limit:
    rate: float
    """tokens a second"""
    burst: int
    """most tokens a bucket holds"""


@dataclass(frozen=True)
class Verdict:
    wait: float
    """seconds to wait before sending (0: at once)"""
    deferred: bool = False
    """True: over the longest wait; nothing was taken, retry after ``wait`` seconds"""
    kind: str | None = None
    """the kind of key that set the wait (None: no wait)"""
    key: str | None = None


class RateLimits:
    """Token buckets by (kind, key); thread-safe. Counts waits and deferrals by kind."""

    def __init__(self, limits: Mapping[str, Limit], max_wait: float) -> None:
        self.limits = dict(limits)
        self.max_wait = max_wait
        self.waits: Counter[str] = Counter()
        self.deferrals: Counter[str] = Counter()
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}
        self._lock = threading.Lock()

    def reserve(self, keys: Iterable[tuple[str, str]]) -> Verdict:
        """Take one token from each key's bucket, or none when the wait would be too long."""
        now = time.monotonic()
        with self._lock:
            found: list[tuple[tuple[str, str], float, Limit]] = []
            worst = Verdict(0.0)
            for kind, key in keys:
                limit = self.limits.get(kind)
                if limit is None or limit.rate <= 0:
                    continue
                tokens, then = self._buckets.get((kind, key), (float(limit.burst), now))
                tokens = min(float(limit.burst), tokens + (now - then) * limit.rate)
                found.append(((kind, key), tokens, limit))
                wait = (1.0 - tokens) / limit.rate if tokens < 1.0 else 0.0
                if wait > worst.wait:
                    worst = Verdict(wait, False, kind, key)
            if worst.wait > self.max_wait:
                for bucket, tokens, _limit in found:  # refilled, nothing taken
                    self._buckets[bucket] = (tokens, now)
                self.deferrals[str(worst.kind)] += 1
                return Verdict(worst.wait, True, worst.kind, worst.key)
            for bucket, tokens, _limit in found:
                self._buckets[bucket] = (tokens - 1.0, now)
            if worst.wait > 0:
                self.waits[str(worst.kind)] += 1
            if len(self._buckets) > IDLE_BUCKETS:
                self._forget_full(now)
            return worst

    def _forget_full(self, now: float) -> None:
        for (kind, key), (tokens, then) in list(self._buckets.items()):
            limit = self.limits[kind]
            if tokens + (now - then) * limit.rate >= limit.burst:
                del self._buckets[(kind, key)]

    def stats(self) -> dict[str, dict[str, int]]:
        """Waits and deferrals so far, by kind (every kind present)."""
        with self._lock:
            return {
                "waits": {kind: self.waits[kind] for kind in KINDS},
                "deferrals": {kind: self.deferrals[kind] for kind in KINDS},
            }
