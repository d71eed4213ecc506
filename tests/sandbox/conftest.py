"""Fixtures for the sandbox tests: the real runtime image, real backends, bundles.

Docker and bubblewrap are prerequisites CI installs (scripts/setup-sandbox.sh);
without CI a missing one skips its tests, under CI it fails them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from brokerage.sandbox import image
from brokerage.sandbox.errors import BackendUnavailableError
from brokerage.sandbox.interface import BrokerBundle
from brokerage.sandbox.pool import PoolPolicy
from brokerage.sandbox.sandboxes import SandboxOptions
from brokerage.sandbox.session import RunnerSession
from tests.sandbox.sandbox_fixtures import BareRunner

BACKENDS = ("docker", "bubblewrap")


def missing(what: str, why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI must provide {what}: {why} (scripts/setup-sandbox.sh installs it)")
    pytest.skip(f"{what} unavailable: {why}")


@pytest.fixture(scope="session")
def docker_client() -> Any:
    from brokerage.sandbox.docker_backend import docker_client as connect

    try:
        return connect()
    except BackendUnavailableError as exc:
        missing("a Docker daemon", str(exc))


@pytest.fixture(scope="session")
def image_tag(docker_client: Any) -> str:
    return image.build_docker_image(docker_client)


@pytest.fixture(scope="session")
def rootfs() -> Path:
    from brokerage.sandbox.bwrap_backend import require_bwrap

    try:
        require_bwrap()
    except BackendUnavailableError as exc:
        missing("bubblewrap", str(exc))
    return image.build_rootfs()


def make_backend(kind: str, request: pytest.FixtureRequest, **kwargs: Any) -> Any:
    if kind == "docker":
        from brokerage.sandbox.docker_backend import DockerBackend

        tag = request.getfixturevalue("image_tag")
        return DockerBackend(request.getfixturevalue("docker_client"), tag, **kwargs)
    from brokerage.sandbox.bwrap_backend import BubblewrapBackend

    return BubblewrapBackend(request.getfixturevalue("rootfs"), **kwargs)


ONE_WARM = PoolPolicy(size=1, blank=0)
"""one sandbox per version and tenant, so a second run lands in the sandbox the first one
used; no blank sandboxes prepared in the background (each hostile case is a new version)"""


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A warm-pool backend (RestrictedPython on), one sandbox per version."""
    made = make_backend(request.param, request, pool=ONE_WARM)
    yield made
    made.close()


@pytest.fixture(scope="module")
def unguarded(backend: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """The same kind of backend with RestrictedPython off: only the sandbox stands."""
    made = make_backend(backend.name, request, pool=ONE_WARM,
                        options=SandboxOptions(guarded=False))  # fmt: skip
    yield made
    made.close()


@pytest.fixture
def bare() -> Iterator[Any]:
    """``bare(bundle)`` starts a bare runner for it; all are stopped after the test."""
    started: list[BareRunner] = []

    def start(broker: BrokerBundle, guarded: bool = True) -> RunnerSession:
        runner = BareRunner(broker, guarded)
        started.append(runner)
        return runner.session

    yield start
    for runner in started:
        runner.close()
