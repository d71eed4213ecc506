"""Errors of the sandbox component::

    BrokerageError
    └── SandboxError                 a backend could not run a broker at all
        ├── BackendUnavailableError  no sandbox backend works on this host (never run unsandboxed)
        ├── ImageError               the runtime image or rootfs is missing or failed to build
        └── ProtocolError            the runner's frames were missing or malformed
            └── SandboxTimeoutError  the runner did not answer in time (the sandbox is killed)

A broker misbehaving is never an error here: it is a :class:`RunResult` status.
"""

from __future__ import annotations

from brokerage.core.errors import BrokerageError


class SandboxError(BrokerageError):
    """A backend could not run a broker at all."""


class BackendUnavailableError(SandboxError):
    """No configured sandbox backend works on this host."""


class ImageError(SandboxError):
    """The runtime image (or bubblewrap rootfs) is missing or failed to build."""


class ProtocolError(SandboxError):
    """The runner's output was not the frames the protocol expects."""


class SandboxTimeoutError(ProtocolError):
    """The runner did not answer in time; the sandbox must be killed."""
