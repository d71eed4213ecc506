"""The sandbox contract: what every backend takes and returns.

One call runs one broker version for one delivery::

    backend.run(bundle, envelope, limits) -> RunResult

``bundle`` is an approved broker version's files, ``envelope`` the JSON object
handed to the broker on stdin, ``limits`` what the run may use. Backends
(Docker, bubblewrap, the in-memory fake) implement :class:`SandboxBackend`;
a test checks each one against it.

Egress: a backend built with an :class:`EgressProvider` opens one
:class:`EgressChannel` per sandbox (a Unix socket on the host, mounted into
the sandbox) for the broker version it serves, and tells the channel which
delivery is running before each run. The channel's request log for that run
comes back in ``RunResult.requests``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from brokerage.core.config import DEFAULTS


class RunStatus(StrEnum):
    """How one run ended."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"  # the broker raised; see RunResult.error
    TIMED_OUT = "timed_out"
    OUT_OF_MEMORY = "out_of_memory"
    CRASHED = "crashed"  # the process died without a result (signal, exit without result)
    OUTPUT_EXCEEDED = "output_exceeded"
    SANDBOX_ERROR = "sandbox_error"  # the platform could not run the broker at all


@dataclass(frozen=True)
class BrokerBundle:
    """One broker version's files: ``manifest.json`` plus code, by relative path."""

    name: str
    version: str
    manifest: Mapping[str, Any]
    files: Mapping[str, bytes]

    @property
    def digest(self) -> str:
        """sha256 over the manifest and every file: the trust unit's identity."""
        h = hashlib.sha256(json.dumps(self.manifest, sort_keys=True).encode())
        for path in sorted(self.files):
            h.update(path.encode() + b"\0" + self.files[path] + b"\0")
        return h.hexdigest()

    @property
    def key(self) -> str:
        """Pool key: a warm sandbox only ever serves runs of one key."""
        return f"{self.name}@{self.version}#{self.digest[:16]}"

    @property
    def entry_point(self) -> str:
        """``file.py`` (a plain script) or ``file.py:ClassName`` (a BaseBroker subclass)."""
        return str(self.manifest["entry_point"])

    @property
    def egress_hosts(self) -> tuple[str, ...]:
        return tuple(self.manifest.get("egress", ()))


@dataclass(frozen=True)
class Limits:
    """What one run may use."""

    wall_seconds: float = DEFAULTS["RUN_WALL_SECONDS"]
    """seconds from start to kill, enforced by the host"""
    memory_bytes: int = DEFAULTS["RUN_MEMORY_BYTES"]
    """memory (and memory+swap) limit of the sandbox"""
    pids: int = 64
    """most processes/threads alive at once in the sandbox"""
    cpus: float = 1.0
    """CPU quota in cores"""
    output_bytes: int = 1024 * 1024
    """cap on captured stdout and stderr, each"""
    tmpfs_bytes: int = 16 * 1024 * 1024
    """size of the private scratch /tmp"""
    nofile: int = 256
    """open-file ulimit"""


@dataclass
class RunResult:
    """What happened in one run. ``result`` and ``logs`` come only from the runner's
    own channel; nothing the broker prints can set them."""

    status: RunStatus
    exit_code: int | None = None
    duration_seconds: float = 0.0
    peak_memory_bytes: int | None = None
    stdout: str = ""
    stderr: str = ""
    result: dict[str, Any] | None = None
    """the broker's structured result (``handle``'s return value when it is a dict)"""
    logs: list[str] = field(default_factory=list)
    """log lines the broker wrote through the SDK logger"""
    error: dict[str, str] | None = None
    """for FAILED: ``{"type", "message", "traceback"}``; else why the run ended badly"""
    requests: list[dict[str, Any]] = field(default_factory=list)
    """the egress gateway's log of this run's requests"""
    backend: str = ""

    @property
    def ok(self) -> bool:
        return self.status is RunStatus.SUCCEEDED


class EgressChannel(Protocol):
    """One sandbox's way out: a Unix socket the gateway listens on."""

    socket_path: str
    """host path of the socket; the backend mounts it into the sandbox"""

    def begin_run(self, delivery_id: str) -> None:
        """Attribute the requests that follow to this delivery."""

    def end_run(self) -> list[dict[str, Any]]:
        """Stop attributing; return the request log of the run just ended."""

    def close(self) -> None:
        """Stop listening and remove the socket."""


class EgressProvider(Protocol):
    def open_channel(self, bundle: BrokerBundle) -> EgressChannel:
        """A new channel allowing only ``bundle.egress_hosts``."""


@runtime_checkable
class SandboxBackend(Protocol):
    name: str

    def run(self, bundle: BrokerBundle, envelope: Mapping[str, Any], limits: Limits,
            tenant: str | None = None) -> RunResult:  # fmt: skip
        """Run the bundle once with ``envelope`` as JSON on stdin. Never raises for
        anything the broker does; SANDBOX_ERROR when the backend itself failed.

        ``tenant`` is the trust unit, opaque to the sandbox (the platform passes the
        service's id): a sandbox that ran one tenant's run never serves another's.
        None (vendor tests, verification) is a tenant of its own that no named one
        shares."""

    def close(self) -> None:
        """Stop every sandbox this backend started."""
