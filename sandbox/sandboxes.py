"""What every real backend shares: one sandbox = one runner session, and the
strict/warm dispatch on top.

A backend only says how to start a runner (a container, a bubblewrap process)
and how to kill it; loading the broker, egress attribution, host deadlines and
turning a lost sandbox into a RunResult happen here once.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from brokerage.sandbox import protocol
from brokerage.sandbox.errors import ProtocolError, SandboxError, SandboxTimeoutError
from brokerage.sandbox.interface import (
    BrokerBundle,
    EgressChannel,
    EgressProvider,
    Limits,
    RunResult,
    RunStatus,
)
from brokerage.sandbox.session import RunnerSession


class Mode(StrEnum):
    """How runs map onto sandboxes."""

    WARM = "warm"  # a pool of started sandboxes per broker version, a fresh process per run
    STRICT = "strict"  # a fresh sandbox per run


@dataclass(frozen=True)
class SandboxOptions:
    """How sandboxes are set up, whatever the backend."""

    allowed_imports: tuple[str, ...] = protocol.DEFAULT_IMPORTS
    guarded: bool = True
    """RestrictedPython on; only tests turn it off, to prove the sandbox holds alone"""
    idle_exit_seconds: float | None = None
    """seconds a runner waits for a request before it exits by itself (an orphan's
    last line of defence); None: the backend derives it from its pool policy"""


class Sandbox:
    """One started runner serving one broker version. Subclasses start and kill it."""

    backend = "abstract"

    def __init__(
        self, bundle: BrokerBundle, limits: Limits, egress: EgressProvider | None,
        options: SandboxOptions,
    ) -> None:  # fmt: skip
        self.bundle, self.limits, self.options = bundle, limits, options
        self.channel: EgressChannel | None = egress.open_channel(bundle) if egress else None
        self.started_at = time.monotonic()
        self.idle_since = self.started_at
        """when the sandbox last finished a run (or started): the pool's idle clock"""
        self.bound_to: Any = None
        """the tenant key the pool bound this sandbox to; it never serves another"""
        self.session: RunnerSession | None = None
        self.broken = False

    @property
    def egress_dir(self) -> str | None:
        if self.channel is None:
            return None
        return self.channel.socket_path.rsplit("/", 1)[0]

    def start(self) -> None:
        """Start the runner and load the broker; raise SandboxError on failure."""
        try:
            self.session = RunnerSession(self._launch(), self.backend)
            self.session.load(self.bundle, self.options.allowed_imports, self.options.guarded)
        except Exception as exc:  # docker/subprocess errors: translated at this boundary
            self.close()
            raise SandboxError(f"{self.backend} sandbox did not start: {exc}") from exc

    def runner_flags(self) -> list[str]:
        """Runner options every backend passes (after the backend's own)."""
        idle = self.options.idle_exit_seconds
        return ["--idle-exit", f"{idle:g}"] if idle else []

    def _launch(self) -> Any:
        """Start the runner; return its Stream."""
        raise NotImplementedError

    def _kill(self) -> None:
        raise NotImplementedError

    def lost_status(self) -> tuple[RunStatus, str]:
        """Why the runner vanished mid-run (the backend may know about OOM kills)."""
        return RunStatus.CRASHED, "the sandbox ended during the run"

    @property
    def runs(self) -> int:
        return self.session.runs if self.session else 0

    def run(self, envelope: Mapping[str, Any], limits: Limits, last: bool = False) -> RunResult:
        """One run; afterwards ``broken`` says whether the sandbox may serve another."""
        assert self.session is not None
        started = time.monotonic()
        if self.channel is not None:
            self.channel.begin_run(delivery_id(envelope))
        try:
            result = self.session.run(envelope, limits, last)
        except SandboxTimeoutError:
            self.broken = True
            result = self._ended(RunStatus.TIMED_OUT, "host deadline passed; sandbox killed")
        except (ProtocolError, OSError) as exc:
            self.broken = True
            status, message = self.lost_status()
            result = self._ended(status, f"{message}: {exc}")
        if self.channel is not None:
            result.requests = self.channel.end_run()
        if result.duration_seconds == 0.0:
            result.duration_seconds = time.monotonic() - started
        if result.status not in (RunStatus.SUCCEEDED, RunStatus.FAILED):
            self.broken = True  # any limit breach: recycle at once
        return result

    def _ended(self, status: RunStatus, message: str) -> RunResult:
        self._kill()
        kind = status.name.title().replace("_", "")
        return RunResult(status=status, error=protocol.reason(kind, message), backend=self.backend)

    def close(self) -> None:
        try:
            self._kill()
        finally:
            if self.channel is not None:
                self.channel.close()
                self.channel = None


def delivery_id(envelope: Mapping[str, Any]) -> str:
    delivery = envelope.get("delivery")
    return str(delivery.get("id", "")) if isinstance(delivery, Mapping) else ""


def run_strict(sandbox: Sandbox, envelope: Mapping[str, Any], limits: Limits) -> RunResult:
    """Start, run once, discard."""
    try:
        sandbox.start()
    except SandboxError as exc:
        return protocol.sandbox_error(str(exc), sandbox.backend)
    try:
        return sandbox.run(envelope, limits, last=True)
    finally:
        sandbox.close()


def container_limits(limits: Limits) -> tuple[Any, ...]:
    """The limits fixed when a sandbox starts; runs with other values need other sandboxes."""
    return (limits.memory_bytes, limits.pids, limits.cpus, limits.tmpfs_bytes, limits.nofile)


def names(items: Iterable[str]) -> str:
    return ", ".join(sorted(items))
