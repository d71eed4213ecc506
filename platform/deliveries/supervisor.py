"""``brokerage worker --processes N``: N worker processes, each replaced when it dies.

The supervisor holds no connection of its own: it starts each worker as a child process
in a process group of its own (its own sandbox pools, gateway and Redis and database
connections; what a dead child leaves in its group is killed), starts a dead one
again after a backoff (capped, reset once the child has lived a while), and on SIGTERM or
SIGINT asks every child to stop (SIGTERM: each finishes the attempt it is running) and
waits for them, killing those that outstay ``STOP_SECONDS``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from brokerage.platform.deliveries.outages import Backoff

log = logging.getLogger(__name__)

STOP_SECONDS = 60.0
"""how long a child may take to stop (it finishes its attempt) before it is killed"""
HEALTHY_SECONDS = 60.0
"""a child that lived this long had no trouble starting: its restart backoff starts over"""
RESTART_FIRST, RESTART_MAX = 1.0, 60.0
"""the first and the longest wait before a dead child is started again"""


Command = Callable[[int, int], list[str]]


@dataclass
class Slot:
    """One of the N places a worker process runs in."""

    index: int
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    due_at: float = 0.0
    starts: int = 0
    done: bool = False
    backoff: Backoff = field(default_factory=lambda: Backoff(RESTART_FIRST, RESTART_MAX))


def supervise(
    command_for: Command,
    count: int,
    burst: bool = False,
    stop: threading.Event | None = None,
) -> int:
    """Run ``count`` children (``command_for(i, n)`` starts child ``i`` for the ``n``-th time,
    from 0; each start needs a worker name of its own, as RQ keeps a killed worker's
    registration for minutes) until SIGTERM/SIGINT
    (or ``stop``); with ``burst``, until each has exited 0. Returns 0, or 1 if a child had
    to be killed on the way out."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    slots = [Slot(i) for i in range(count)]
    while not stop.is_set():
        now = time.monotonic()
        for slot in slots:
            _tend(slot, command_for, burst, now)
        if burst and all(slot.done for slot in slots):
            return 0
        stop.wait(0.5)
    return _stop_all(slots)


def _tend(slot: Slot, command_for: Command, burst: bool, now: float) -> None:
    if slot.done:
        return
    if slot.process is not None:
        code = slot.process.poll()
        if code is None:
            return
        _reap(slot.process)
        slot.process = None
        if burst and code == 0:
            slot.done = True
            return
        if now - slot.started_at >= HEALTHY_SECONDS:
            slot.backoff.reset()
        delay = slot.backoff.next_delay()
        slot.due_at = now + delay
        log.warning("worker process %d exited with %s; starting it again in %.1f s",
                    slot.index, code, delay)  # fmt: skip
    if now >= slot.due_at:
        slot.process = subprocess.Popen(command_for(slot.index, slot.starts), process_group=0)
        slot.started_at = now
        slot.starts += 1
        log.info("worker process %d started (pid %d)", slot.index, slot.process.pid)


def _stop_all(slots: list[Slot]) -> int:
    running = [slot.process for slot in slots if slot.process is not None]
    log.info("stopping %d worker processes", len(running))
    for process in running:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    killed = 0
    for process in running:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            killed += 1
        _reap(process)
    return 1 if killed else 0


def _reap(process: subprocess.Popen[bytes]) -> None:
    """Kill what a dead child left in its process group (each child has one of its own): a
    worker killed outright leaves its RQ scheduler process behind."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
