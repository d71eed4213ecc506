"""Choosing a backend from configuration.

``SANDBOX_BACKEND`` is ``auto`` (Docker where a daemon answers, else bubblewrap,
else :class:`BackendUnavailableError` - never an unsandboxed run), ``docker``,
``bubblewrap`` or ``fake`` (tests only; never chosen by ``auto``).

Other keys, all optional: ``SANDBOX_MODE`` (``warm`` | ``strict``),
``SANDBOX_POOL_SIZE`` (per service), ``SANDBOX_POOL_MAX_RUNS``, ``SANDBOX_POOL_MAX_AGE``
(seconds), ``SANDBOX_POOL_MAX_VERSIONS``, ``SANDBOX_POOL_BLANK`` (blank sandboxes per
version), ``SANDBOX_POOL_MAX_BOUND`` (bound sandboxes per worker), ``SANDBOX_POOL_IDLE``
(seconds a bound sandbox may idle), ``SANDBOX_IMAGE`` (Docker tag),
``SANDBOX_RUNTIME`` (Docker's OCI runtime: ``runc``, or ``runsc`` for gVisor; a runtime
other than runc never falls back to bubblewrap), ``SANDBOX_ROOTFS`` (bubblewrap tree),
``SANDBOX_ALLOWED_IMPORTS`` (list).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from brokerage.sandbox.errors import BackendUnavailableError
from brokerage.sandbox.interface import EgressProvider, SandboxBackend
from brokerage.sandbox.pool import PoolPolicy
from brokerage.sandbox.protocol import DEFAULT_IMPORTS
from brokerage.sandbox.sandboxes import Mode, SandboxOptions

NAMES = ("auto", "docker", "bubblewrap", "fake")


def select_backend_name(preference: str = "auto") -> str:
    """The backend ``preference`` resolves to on this host."""
    if preference not in NAMES:
        raise BackendUnavailableError(f"unknown sandbox backend {preference!r}; one of {NAMES}")
    if preference != "auto":
        return preference
    from brokerage.sandbox.bwrap_backend import require_bwrap
    from brokerage.sandbox.docker_backend import docker_client

    reasons = []
    try:
        docker_client()
        return "docker"
    except BackendUnavailableError as exc:
        reasons.append(str(exc))
    try:
        require_bwrap()
        return "bubblewrap"
    except BackendUnavailableError as exc:
        reasons.append(str(exc))
    raise BackendUnavailableError("no sandbox backend works here: " + "; ".join(reasons))


def backend_from_config(
    config: Mapping[str, Any], egress: EgressProvider | None = None
) -> SandboxBackend:
    name = select_backend_name(str(config.get("SANDBOX_BACKEND", "auto")))
    if name == "fake":
        from brokerage.sandbox.fake import FakeBackend

        return FakeBackend()
    mode = Mode(config.get("SANDBOX_MODE", Mode.WARM))
    pool = pool_policy(config)
    options = SandboxOptions(
        allowed_imports=tuple(config.get("SANDBOX_ALLOWED_IMPORTS") or DEFAULT_IMPORTS)
    )
    runtime = str(config.get("SANDBOX_RUNTIME") or "runc")
    if name == "docker":
        from brokerage.sandbox.docker_backend import DockerBackend

        return DockerBackend(image_tag=config.get("SANDBOX_IMAGE"), egress=egress, mode=mode,
                             pool=pool, options=options, runtime=runtime)  # fmt: skip
    if runtime != "runc":
        raise BackendUnavailableError(
            f"SANDBOX_RUNTIME={runtime} needs the Docker backend (bubblewrap was chosen)"
        )
    from brokerage.sandbox.bwrap_backend import BubblewrapBackend

    rootfs = config.get("SANDBOX_ROOTFS")
    return BubblewrapBackend(rootfs=Path(rootfs) if rootfs else None, egress=egress, mode=mode,
                             pool=pool, options=options)  # fmt: skip


def pool_policy(config: Mapping[str, Any]) -> PoolPolicy:
    default = PoolPolicy()
    return PoolPolicy(
        size=int(config.get("SANDBOX_POOL_SIZE", default.size)),
        max_runs=int(config.get("SANDBOX_POOL_MAX_RUNS", default.max_runs)),
        max_age_seconds=float(config.get("SANDBOX_POOL_MAX_AGE", default.max_age_seconds)),
        max_versions=int(config.get("SANDBOX_POOL_MAX_VERSIONS", default.max_versions)),
        blank=int(config.get("SANDBOX_POOL_BLANK", default.blank)),
        max_bound=int(config.get("SANDBOX_POOL_MAX_BOUND", default.max_bound)),
        idle_seconds=float(config.get("SANDBOX_POOL_IDLE", default.idle_seconds)),
    )
