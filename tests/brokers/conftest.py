"""Fixtures for the built-in brokers: the real Docker sandbox behind a real egress gateway,
a recording HTTP receiver and an SMTP server on 127.0.0.1, and an app whose platform API
the gateway forwards broker calls to.

Docker is a prerequisite CI installs (scripts/setup-sandbox.sh); without CI a missing
daemon skips the sandboxed tests, under CI it fails them.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from brokerage.platform.api.broker_access import AppApiForwarder
from brokerage.sandbox.egress.gateway import Gateway, GatewayConfig
from brokerage.sandbox.egress.mailer import MailConfig
from brokerage.sandbox.egress.relay import ApiCall, ApiReply
from brokerage.sandbox.errors import BackendUnavailableError
from brokerage.sandbox.interface import BrokerBundle, Limits, RunResult, SandboxBackend
from brokerage.submissions.builtins import BUILTIN_DIR
from brokerage.submissions.bundles import folder_files
from tests.brokers.fixtures import fixture
from tests.brokers.receiver import Receiver, receiver
from tests.support import RedisServer, SmtpSink, build_app

RECEIVER_HOST = "receiver.test"
"""the name tests give the receiver (the gateway's test resolver maps it to 127.0.0.1)"""
MAIL_DOMAIN = "brokerage.test"
LIMITS = Limits(wall_seconds=60.0)


def fake_resolver(host: str, port: int) -> list[str]:
    if host == RECEIVER_HOST:
        return ["127.0.0.1"]
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


def missing(what: str, why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI must provide {what}: {why} (scripts/setup-sandbox.sh installs it)")
    pytest.skip(f"{what} unavailable: {why}")


def builtin_bundle(name: str, egress: list[str] | None = None) -> BrokerBundle:
    """A built-in broker as the platform loads it; ``egress`` replaces the manifest's.

    POST's manifest says ``"*"`` (any *public* host), which the gateway never opens to
    127.0.0.1, so tests name the receiver instead — the only change to the bundle."""
    folder = BUILTIN_DIR / name
    manifest = json.loads((folder / "manifest.json").read_text())
    if egress is not None:
        manifest["egress"] = egress
    return BrokerBundle(name=name, version=manifest["version"], manifest=manifest,
                        files=folder_files(folder))  # fmt: skip


class SwitchableForwarder:
    """The gateway is built once per session; each test points it at its own app."""

    def __init__(self) -> None:
        self.target: AppApiForwarder | None = None

    def __call__(self, call: ApiCall) -> ApiReply:
        if self.target is None:
            return ApiReply(503, {"Content-Type": "text/plain"}, b"no app in this test")
        return self.target(call)


@dataclass
class Rig:
    """The sandbox, its gateway, and the receivers it may reach."""

    backend: SandboxBackend
    gateway: Gateway
    hook: Receiver
    mail: SmtpSink
    forwarder: SwitchableForwarder
    results: list[RunResult] = field(default_factory=list)

    def url(self, path: str = "/hook", userinfo: str = "") -> str:
        return self.hook.url(path, host=RECEIVER_HOST, userinfo=userinfo)

    def run(self, broker: str, variant: str, service: Mapping[str, Any],
            egress: list[str] | None = None) -> RunResult:  # fmt: skip
        envelope = dict(fixture(broker, variant), service=dict(service), broker=broker,
                        delivery={"id": str(uuid.uuid4()), "attempt": 1})  # fmt: skip
        result = self.backend.run(builtin_bundle(broker, egress), envelope, LIMITS)
        self.results.append(result)
        return result

    def reset(self) -> None:
        self.hook.requests.clear()
        self.mail.messages.clear()


@pytest.fixture(scope="session")
def docker_image() -> str:
    from brokerage.sandbox import image
    from brokerage.sandbox.docker_backend import docker_client

    try:
        client = docker_client()
    except BackendUnavailableError as exc:
        missing("a Docker daemon", str(exc))
    return image.build_docker_image(client)


@pytest.fixture(scope="session")
def session_rig(docker_image: str) -> Iterator[Rig]:
    from brokerage.sandbox.docker_backend import DockerBackend

    forwarder = SwitchableForwarder()
    with receiver() as hook, SmtpSink() as mail:
        config = GatewayConfig(
            allowed_ports=frozenset({80, 443, hook.port}),
            extra_ranges=("127.0.0.1/32",),
            resolver=fake_resolver,
            mail=MailConfig("127.0.0.1", mail.port, MAIL_DOMAIN),
            api_forwarder=forwarder,
        )
        gateway = Gateway(config)
        backend = DockerBackend(image_tag=docker_image, egress=gateway)
        try:
            yield Rig(backend, gateway, hook, mail, forwarder)
        finally:
            backend.close()
            gateway.close()


@pytest.fixture
def rig(session_rig: Rig) -> Iterator[Rig]:
    session_rig.reset()
    yield session_rig
    session_rig.forwarder.target = None


# -- the platform side (Issues): an app with Redis, and the gateway forwarding to it ----


@pytest.fixture
def app(tmp_path: Path, database: str, redis_server: RedisServer) -> Iterator[Flask]:
    app = build_app(tmp_path, database, REDIS_URL=redis_server.url, MAIL_DOMAIN=MAIL_DOMAIN,
                    CANON_URL="https://brokerage.example", RETRY_DELAYS=[0.01, 0.01])  # fmt: skip
    yield app
    app.extensions["brokerage.runtime"].close()


@pytest.fixture
def platform_rig(rig: Rig, app: Flask) -> Rig:
    """The rig with the gateway's ``/api`` forwarded to this test's app."""
    rig.forwarder.target = AppApiForwarder(app)
    return rig
