"""The one harness for the built-in brokers' tests.

**The rig** (:class:`BrokerRig`, fixture ``rig``): built once per test session on the
runtime image — the real Docker sandbox behind a real egress gateway that reaches

- ``hook``: a recording HTTP receiver (``receiver.test``; :func:`BrokerRig.hook_url`);
- ``mail``: an SMTP server (the gateway's mail relay sends there);
- the service fakes (:mod:`tests.builtin_brokers.fakes`) on one HTTP server: the classic ones
  by their ``<name>.test`` host (``api.twitter.test`` ...), or the one a test installs
  with :meth:`BrokerRig.dispatch` under the service's real host name
  (``hooks.slack.com`` ...); :meth:`BrokerRig.url` names either;
- ``dead_port``: a port nothing listens on (a service that is down);
- the platform API: forwarded to the test's app by the ``platform_rig`` fixture.

Each test gets the rig with its receivers emptied and its fakes fresh.

**The vendors' path** (fixture ``verified``): a built-in broker's package through
``verify_package`` — what ``brokerage broker test`` and a submission's verification run:
the static checks, then every fixture in a strict Docker sandbox against the stand-ins.

Docker is a prerequisite CI installs (scripts/setup-sandbox.sh); without CI a missing
daemon skips the sandboxed tests, under CI it fails them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import socket
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from flask import Flask

from brokerage.platform.api.broker_access import AppApiForwarder
from brokerage.sandbox.egress.config import GatewayConfig
from brokerage.sandbox.egress.gateway import Gateway
from brokerage.sandbox.egress.mailer import MailConfig
from brokerage.sandbox.egress.policy import hosts_named_by
from brokerage.sandbox.egress.relay import ApiCall, ApiReply
from brokerage.sandbox.errors import BackendUnavailableError
from brokerage.sandbox.interface import BrokerBundle, Limits, RunResult, SandboxBackend
from brokerage.submissions.builtins import BUILTIN_DIR
from brokerage.submissions.bundles import folder_files
from brokerage.submissions.dynamic import backend_factory
from brokerage.submissions.package import read_package
from brokerage.submissions.verification import Outcome, verify_package
from tests.builtin_brokers.fakes.classic import fresh_fakes
from tests.builtin_brokers.fakes.wire import Answer, Fake, Reply, Request, reply
from tests.builtin_brokers.fixtures import fixture, variants
from tests.builtin_brokers.receiver import Receiver, receiver
from tests.builtin_brokers.sdk_path import sdk_module
from tests.support import RedisServer, SmtpSink, build_app

RECEIVER_HOST = "receiver.test"
"""the name tests give the recording receiver"""
DEAD_HOST = "down.test"
"""a name that resolves, on a port where nothing listens"""
SERVICE_HOSTS = frozenset({
    "hooks.slack.com", "discord.com", "contoso.webhook.office.com",
    "prod-27.westus.logic.azure.com", "www.pivotaltracker.com", "hook.geocommit.com",
})  # fmt: skip
"""real names the test gateway resolves to 127.0.0.1 (besides every ``*.test`` name)"""
MAIL_DOMAIN = "brokerage.test"
LIMITS = Limits(wall_seconds=60.0)


def missing(what: str, why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI must provide {what}: {why} (scripts/setup-sandbox.sh installs it)")
    pytest.skip(f"{what} unavailable: {why}")


@cache
def _image_tag() -> str:
    from brokerage.sandbox import image
    from brokerage.sandbox.docker_backend import docker_client

    return image.build_docker_image(docker_client())


def docker_image_tag() -> str:
    """The runtime image's tag, built (offline, cached by recipe) on first use."""
    try:
        return _image_tag()
    except BackendUnavailableError as exc:
        missing("a Docker daemon", str(exc))
        raise


def resolve_test_hosts(host: str, port: int) -> list[str]:
    if host.endswith(".test") or host in SERVICE_HOSTS:
        return ["127.0.0.1"]
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


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


# -- the fake server ----------------------------------------------------------------------


class FakeServer(ThreadingHTTPServer):
    """Serves the installed fake if there is one, else the classic fake of the request's
    ``Host``; ``fail_with`` makes every answer that status (the service is down)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _FakeHandler)
        self.requests: list[Request] = []
        self.fakes: dict[str, Any] = fresh_fakes()
        self.installed: Fake | None = None
        self.fail_with: int | None = None

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def answer(self, request: Request) -> Answer:
        if self.fail_with:
            return reply(self.fail_with, "service unavailable", "text/plain")
        fake = self.installed or self.fakes.get(request.host)
        if fake is None:
            return reply(404, "no such host", "text/plain")
        found = fake.answer(request)
        if isinstance(found, Reply):
            body, headers = found.encoded()
            return found.status, headers, body
        answer: Answer = found
        return answer


class _FakeHandler(BaseHTTPRequestHandler):
    server: FakeServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib's name)
        pass

    def serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        host = headers.get("host", "").rsplit(":", 1)[0].lower()
        request = Request(self.command, host, self.path, headers, body)
        self.server.requests.append(request)
        status, extra, data = self.server.answer(request)
        self.send_response(status)
        for name, value in extra.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = serve


def unused_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the rig ------------------------------------------------------------------------------


@dataclass
class BrokerRig:
    """The sandbox, its gateway, and everything it may reach."""

    backend: SandboxBackend
    gateway: Gateway
    hook: Receiver
    mail: SmtpSink
    forwarder: SwitchableForwarder
    server: FakeServer
    dead_port: int
    results: list[RunResult] = field(default_factory=list)

    @property
    def requests(self) -> list[Request]:
        """What the fake server received."""
        return self.server.requests

    def hook_url(self, path: str = "/hook", userinfo: str = "") -> str:
        return self.hook.url(path, host=RECEIVER_HOST, userinfo=userinfo)

    def url(self, host: str, path: str = "", port: int | None = None, userinfo: str = "") -> str:
        """A URL on the fake server under ``host`` (or on ``port``)."""
        return f"http://{userinfo}{host}:{port or self.server.port}{path}"

    def dead_url(self, path: str = "") -> str:
        return f"http://{DEAD_HOST}:{self.dead_port}{path}"

    def fake(self, host: str) -> Any:
        return self.server.fakes[host]

    def fail_with(self, status: int | None) -> None:
        self.server.fail_with = status

    def reset(self) -> None:
        self.hook.requests.clear()
        self.mail.messages.clear()
        self.server.requests.clear()
        self.server.fakes = fresh_fakes()
        self.server.installed = None
        self.server.fail_with = None

    def run(self, broker: str, variant: str, service: Mapping[str, Any],
            egress: list[str] | None = None, attempt: int = 1) -> RunResult:  # fmt: skip
        """One run of ``broker`` on a fixture; ``egress`` replaces the manifest's (None: keep)."""
        return self._run(builtin_bundle(broker, egress), broker, variant, service, attempt)

    def dispatch(self, broker: str, variant: str, service: Mapping[str, Any], fake: Fake,
                 egress: list[str] | None = None) -> RunResult:  # fmt: skip
        """Run ``broker`` against ``fake`` as the dispatcher would: the hosts its URL fields
        (and password fields holding a URL: webhooks) name are told to the gateway."""
        self.server.requests.clear()
        self.server.installed = fake
        bundle = builtin_bundle(broker, egress)
        delivery = str(uuid.uuid4())
        values = [str(service.get(f["label"]) or "") for f in bundle.manifest["fields"]
                  if f["type"] in ("url", "password")]  # fmt: skip
        urls = [v for v in values if v.startswith(("http://", "https://"))]
        self.gateway.name_hosts(delivery, hosts_named_by(urls))
        try:
            return self._run(bundle, broker, variant, service, 1, delivery)
        finally:
            self.gateway.forget(delivery)
            self.server.installed = None

    def _run(self, bundle: BrokerBundle, broker: str, variant: str, service: Mapping[str, Any],
             attempt: int, delivery: str | None = None) -> RunResult:  # fmt: skip
        delivery = delivery or str(uuid.uuid4())
        envelope = dict(fixture(broker, variant), service=dict(service), broker=broker,
                        delivery={"id": delivery, "attempt": attempt})  # fmt: skip
        result = self.backend.run(bundle, envelope, LIMITS)
        self.results.append(result)
        return result


@pytest.fixture(scope="session")
def docker_image() -> str:
    return docker_image_tag()


@pytest.fixture(scope="session")
def session_rig(docker_image: str) -> Iterator[BrokerRig]:
    from brokerage.sandbox.docker_backend import DockerBackend

    forwarder = SwitchableForwarder()
    server = FakeServer()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    dead_port = unused_port()
    try:
        with receiver() as hook, SmtpSink() as mail:
            config = GatewayConfig(
                allowed_ports=frozenset({80, 443, hook.port, server.port, dead_port}),
                extra_ranges=("127.0.0.1/32",),
                resolver=resolve_test_hosts,
                mail=MailConfig("127.0.0.1", mail.port, MAIL_DOMAIN),
                api_forwarder=forwarder,
                destination_rate=1000.0,
                destination_burst=1000,
            )
            gateway = Gateway(config)
            backend = DockerBackend(image_tag=docker_image, egress=gateway)
            try:
                yield BrokerRig(backend, gateway, hook, mail, forwarder, server, dead_port)
            finally:
                backend.close()
                gateway.close()
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def rig(session_rig: BrokerRig) -> Iterator[BrokerRig]:
    """The session's rig, its receivers empty and its fakes fresh for this test."""
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
def platform_rig(rig: BrokerRig, app: Flask) -> BrokerRig:
    """The rig with the gateway's ``/api`` forwarded to this test's app."""
    rig.forwarder.target = AppApiForwarder(app)
    return rig


# -- the vendors' path: verify_package, as `brokerage broker test` runs it ----------------


BUILTIN_FIXTURES = [
    (path.parent.name, variant)
    for path in sorted(BUILTIN_DIR.glob("*/manifest.json"))
    for variant in variants(path.parent.name)
]
"""(broker, variant) for every fixture of every built-in broker"""

Verified = Callable[[str], Outcome]


@pytest.fixture(scope="session")
def verified() -> Verified:
    """``verified(broker)``: the built-in's verification outcome, run once per session."""

    @cache
    def verify(broker: str) -> Outcome:
        config = {"SANDBOX_BACKEND": "docker", "SANDBOX_IMAGE": docker_image_tag()}
        return verify_package(read_package(BUILTIN_DIR / broker), backend_factory(config))

    return verify


# -- helpers for the tests' tables --------------------------------------------------------


def fill(service: Mapping[str, str], values: Mapping[str, str]) -> dict[str, str]:
    """``service`` with ``{name}`` placeholders replaced from ``values``."""
    filled = {}
    for label, value in service.items():
        for name, replacement in values.items():
            value = value.replace("{" + name + "}", replacement)
        filled[label] = value
    return filled


def decoded_path(request: Request) -> str:
    return unquote(urlsplit(request.path).path)


SECRET_PATTERN = re.compile(r"secret|remote-key|lh-token|AUTH-TOKEN|ACSID-COOKIE")
"""the secret values the tests give services (field labels are capitalised)"""


def assert_failed(result: RunResult, kind: str, message: str = "") -> None:
    """The run failed with an error of ``kind`` whose message holds ``message``, and no
    secret of the tests' services shows in it."""
    assert result.status == "failed", result.result
    assert result.error and result.error["kind"] == kind, result.error
    assert message in result.error["message"], result.error["message"]
    assert not SECRET_PATTERN.search(json.dumps(result.error)), result.error


def assert_succeeded(result: RunResult) -> dict[str, Any]:
    assert result.status == "succeeded", result.error
    assert result.result is not None
    found: dict[str, Any] = result.result
    return found


def broker_module(broker: str, name: str = "broker") -> ModuleType:
    """A module of a built-in broker's folder, imported on the host for unit tests of its
    pure functions (SDK imports resolve to the in-sandbox SDK's modules)."""
    sdk_module("brokerage_sdk")
    path = Path(BUILTIN_DIR) / broker / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"builtin_{broker}_{name}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
