"""A conversation with one runner over a byte stream: load once, run many times.

Backends differ only in how they start a runner and get a duplex byte stream to
it (a subprocess's pipes for bubblewrap, Docker's attach socket); the frames on
that stream are the same everywhere.
"""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import time
import weakref
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from brokerage.sandbox import protocol
from brokerage.sandbox.errors import ProtocolError, SandboxTimeoutError
from brokerage.sandbox.interface import BrokerBundle, Limits, RunResult
from brokerage.sandbox.runner import frames

HOST_GRACE_SECONDS = 3.0
"""seconds the host waits past a run's wall limit before killing the whole sandbox"""
LOAD_TIMEOUT_SECONDS = 30.0
"""seconds a fresh runner may take to load a broker and say ready"""
DIAGNOSTIC_BYTES = 16 * 1024
"""bytes of the runner's own stderr kept for error messages"""


class Stream(Protocol):
    def send(self, data: bytes) -> None: ...

    def close_stdin(self) -> None:
        """EOF on the runner's stdin: it finishes the run in hand, then exits."""

    def recv(self, timeout: float) -> bytes:
        """Some bytes of the runner's stdout; b"" at EOF; TimeoutError when none came."""

    def diagnostics(self) -> str: ...

    def close(self) -> None: ...

    def forget(self) -> None:
        """Close this process's copy of the stream's descriptors, telling the runner nothing."""


_OPEN_STREAMS: weakref.WeakSet[Stream] = weakref.WeakSet()


def keep_out_of_forks(stream: Stream) -> None:
    """A process forked from this one (RQ's scheduler, multiprocessing) drops ``stream``.

    Otherwise the fork holds the runner's stdin open: when this process dies the
    runner never sees EOF and its sandbox outlives everyone who could use it.
    """
    _OPEN_STREAMS.add(stream)


def _forget_inherited_streams() -> None:
    for stream in list(_OPEN_STREAMS):
        with contextlib.suppress(Exception):  # best effort in a fresh child
            stream.forget()
    _OPEN_STREAMS.clear()


os.register_at_fork(after_in_child=_forget_inherited_streams)


class PipeStream:
    """The stdin/stdout pipes of a runner subprocess (bubblewrap, or bare for benchmarks)."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdin is not None and process.stdout is not None
        self.process = process
        self._out = process.stdout.fileno()
        self._in = process.stdin.fileno()
        self._err = bytearray()
        keep_out_of_forks(self)

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._in, view) :]

    def close_stdin(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()

    def recv(self, timeout: float) -> bytes:
        ready, _, _ = select.select([self._out], [], [], max(timeout, 0))
        if not ready:
            raise TimeoutError
        return os.read(self._out, 1 << 20)

    def diagnostics(self) -> str:
        if self.process.stderr is None:
            return ""
        os.set_blocking(self.process.stderr.fileno(), False)
        with contextlib.suppress(BlockingIOError, ValueError):
            self._err += self.process.stderr.read(DIAGNOSTIC_BYTES) or b""
        return bytes(self._err[-DIAGNOSTIC_BYTES:]).decode(errors="replace")

    def close(self) -> None:
        for pipe in (self.process.stdin, self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()

    def forget(self) -> None:
        self.close()  # closing pipes sends nothing; the parent's copies stay open


class RunnerSession:
    """Frames over a stream, with host-side deadlines."""

    def __init__(self, stream: Stream, backend: str) -> None:
        self.stream = stream
        self.backend = backend
        self.reader = frames.FrameReader()
        self.pending: list[tuple[dict[str, Any], dict[str, bytes]]] = []
        self.runs = 0

    def load(
        self,
        bundle: BrokerBundle,
        allowed_imports: Iterable[str] = protocol.DEFAULT_IMPORTS,
        guarded: bool = True,
    ) -> dict[str, Any]:
        self.stream.send(protocol.encode_load(bundle, allowed_imports, guarded))
        header, _ = self._next_frame(time.monotonic() + LOAD_TIMEOUT_SECONDS)
        if header.get("op") != "ready":
            raise ProtocolError(f"runner answered {header.get('op')!r} to load")
        return header

    def run(self, envelope: Mapping[str, Any], limits: Limits, last: bool = False) -> RunResult:
        """One run; raises SandboxTimeoutError/ProtocolError when the sandbox must go.

        ``last`` closes the runner's stdin after the request (strict mode)."""
        self.stream.send(protocol.encode_run(envelope, limits))
        if last:
            self.stream.close_stdin()
        deadline = time.monotonic() + limits.wall_seconds + HOST_GRACE_SECONDS
        header, sections = self._next_frame(deadline)
        self.runs += 1
        return protocol.decode_result(header, sections, self.backend)

    def _next_frame(self, deadline: float) -> tuple[dict[str, Any], dict[str, bytes]]:
        while not self.pending:
            try:
                data = self.stream.recv(deadline - time.monotonic())
            except TimeoutError as exc:
                raise SandboxTimeoutError("runner did not answer before the deadline") from exc
            if not data:
                raise ProtocolError(f"runner ended: {self.stream.diagnostics()[-2000:]}")
            self.pending.extend(self.reader.feed(data))
        return self.pending.pop(0)
