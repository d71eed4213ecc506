"""The platform's own rate limits never fail a delivery, and one repository's never hold
back another's: POST deliveries run by the Dispatcher in the real Docker sandbox, behind the
real gateway, to a real receiver on 127.0.0.1; and the deferral rules on the fake sandbox."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from brokerage.platform.deliveries.dispatch import Dispatcher
from brokerage.platform.models import Service
from brokerage.platform.runtime import Runtime
from brokerage.sandbox.egress.config import GatewayConfig
from brokerage.sandbox.egress.gateway import Gateway
from brokerage.sandbox.errors import BackendUnavailableError
from brokerage.sandbox.fake import FakeBackend
from brokerage.sandbox.interface import BrokerBundle, Limits, RunResult, RunStatus
from brokerage.submissions import bundles
from brokerage.submissions.builtins import BUILTIN_DIR
from brokerage.submissions.bundles import folder_files
from brokerage.submissions.models import BrokerVersion
from tests.builtin_brokers.receiver import Receiver, receiver
from tests.platform.deliveries.conftest import Repo, commit, push_body
from tests.support import FORM, Seeder, basic

LIMITS = Limits(wall_seconds=60.0)
RECEIVER_HOST = "receiver.test"
"""the receiver's name here (the test resolver maps it to 127.0.0.1)"""


def resolve(host: str, port: int) -> list[str]:
    if host == RECEIVER_HOST:
        return ["127.0.0.1"]
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


def post_bundle() -> BrokerBundle:
    """The built-in POST broker, its egress naming the receiver (its own "*" never opens
    127.0.0.1): the only change to the bundle."""
    folder = BUILTIN_DIR / "post"
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["egress"] = [RECEIVER_HOST]
    return BrokerBundle("post", manifest["version"], manifest, folder_files(folder))


@pytest.fixture(scope="module")
def hook() -> Iterator[Receiver]:
    with receiver() as found:
        yield found


@pytest.fixture  # a gateway per test: its buckets are keyed by ids each database reuses
def limited(hook: Receiver) -> Iterator[tuple[Gateway, Any]]:
    """A Docker sandbox behind a gateway whose repository limit is 2 requests at once, then
    one every 5 s, with a wait of at most 0.05 s: a third request at once is deferred."""
    from brokerage.sandbox import image
    from brokerage.sandbox.docker_backend import DockerBackend, docker_client

    try:
        tag = image.build_docker_image(docker_client())
    except BackendUnavailableError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must provide a Docker daemon: {exc}")
        pytest.skip(f"a Docker daemon unavailable: {exc}")
    config = GatewayConfig(
        allowed_ports=frozenset({80, 443, hook.port}), extra_ranges=("127.0.0.1/32",),
        resolver=resolve, repository_rate=0.2, repository_burst=2, limit_wait_seconds=0.05,
    )  # fmt: skip
    gateway = Gateway(config)
    backend = DockerBackend(image_tag=tag, egress=gateway)
    try:
        yield gateway, backend
    finally:
        backend.close()
        gateway.close()


@pytest.fixture
def named_receiver(monkeypatch: pytest.MonkeyPatch) -> None:
    """POST's manifest allows any *public* host ("*"), never 127.0.0.1; name the receiver."""

    def load(version: BrokerVersion) -> BrokerBundle:
        assert version.broker_type.name == "post"
        return post_bundle()

    monkeypatch.setattr(bundles, "load", load)


def _other_repo(client: FlaskClient, seed: Seeder, hook: Receiver) -> tuple[str, str]:
    seed.repo("marcus", "quiet")
    base = "/1.0/repositories/marcus/quiet"
    token = client.post(f"{base}/push-token", headers=basic("marcus")).get_json()["token"]
    body = f"type=POST&URL={hook.url('/quiet', host=RECEIVER_HOST)}"
    assert client.post(f"{base}/services", data=body,
                       headers={**basic("marcus"), **FORM}).status_code == 200  # fmt: skip
    return base, str(token)


def _run_until_done(dispatcher: Dispatcher, repo: Repo, delivery_id: str) -> list[str]:
    """Run the delivery's attempts, each once it is due, until it has finished."""
    outcomes = []
    for _ in range(30):
        outcomes.append(dispatcher.run(delivery_id))
        shown = repo.get(f"deliveries/{delivery_id}")
        if shown["status"] in ("succeeded", "failed"):
            return outcomes
        time.sleep(1.0)  # a token comes every 5 s
    return outcomes


def test_a_busy_repository_defers_its_own_deliveries_and_never_fails_them(
    repo: Repo, client: FlaskClient, seed: Seeder, runtime: Runtime, hook: Receiver,
    limited: tuple[Gateway, Any], named_receiver: None,
) -> None:  # fmt: skip
    gateway, backend = limited
    dispatcher = Dispatcher(runtime, backend, LIMITS, gateway=gateway)
    hook.requests.clear()
    for n in range(4):
        repo.add_service(f"type=POST&URL={hook.url(f'/busy{n}', host=RECEIVER_HOST)}")
    busy = [d["id"] for d in repo.push(push_body(commit(1))).json["deliveries"]]
    quiet_base, quiet_token = _other_repo(client, seed, hook)

    first = [dispatcher.run(d) for d in busy]
    assert first == ["succeeded", "succeeded", "deferred", "deferred"]
    # the quiet repository's delivery, right after: not held back by the busy one
    pushed = client.post(f"{quiet_base}/pushes", json=push_body(commit(2)),
                         headers={"Authorization": f"Bearer {quiet_token}"})  # fmt: skip
    [quiet] = [d["id"] for d in pushed.json["deliveries"]]
    assert dispatcher.run(quiet) == "succeeded"
    shown = client.get(f"{quiet_base}/deliveries/{quiet}", headers=basic("marcus")).json
    [request] = shown["attempt_log"][0]["requests"]
    assert request["status"] == 200 and request["refused"] is None and "waited" not in request

    deferred = repo.get(f"deliveries/{busy[2]}")
    assert deferred["status"] == "queued"
    attempt = deferred["attempt_log"][0]
    assert attempt["outcome"] == "deferred"
    assert attempt["message"].startswith("deferred by the platform's rate limits")
    assert attempt["requests"][0]["refused"] == "rate_limited"

    for delivery_id in busy[2:]:  # delivered later, with no failed attempt on record
        assert _run_until_done(dispatcher, repo, delivery_id)[-1] == "succeeded"
    for delivery_id in busy:
        shown = repo.get(f"deliveries/{delivery_id}")
        assert shown["status"] == "succeeded"
        assert {a["outcome"] for a in shown["attempt_log"]} <= {"succeeded", "deferred"}
    assert sorted(r.path for r in hook.requests) == ["/busy0", "/busy1", "/busy2", "/busy3",
                                                     "/quiet"]  # fmt: skip
    with runtime.sessions() as session:
        for service in session.query(Service):
            assert (service.enabled, service.consecutive_failures) == (True, 0)


def _throttled() -> RunResult:
    return RunResult(
        status=RunStatus.FAILED,
        error={"type": "TransientError", "kind": "transient", "message": "rate_limited",
               "traceback": ""},
        requests=[{"method": "POST", "status": 429, "refused": "rate_limited",
                   "retry_after": 0.01}],
    )  # fmt: skip


def _failed() -> RunResult:
    return RunResult(
        status=RunStatus.FAILED,
        error={"type": "HTTPError", "kind": "error", "message": "503", "traceback": ""},
    )


def test_deferrals_use_no_retry_and_never_count_towards_auto_disable(
    repo: Repo, dispatcher: Dispatcher, fake: FakeBackend, runtime: Runtime
) -> None:
    queue = (
        [_throttled() for _ in range(6)]
        + [_failed() for _ in range(3)]
        + [RunResult(status=RunStatus.SUCCEEDED, result={})]
    )

    def handler(*_args: Any) -> RunResult:
        return queue.pop(0)

    fake.handler = handler
    service_id = repo.add_service("type=POST&URL=http://127.0.0.1:9/a")
    [delivery] = [d["id"] for d in repo.push(push_body(commit(1))).json["deliveries"]]
    outcomes = [dispatcher.run(delivery) for _ in range(10)]
    # more deferrals than AUTO_DISABLE_AFTER (3) and than retries (RETRY_DELAYS: 3), and still
    # every retry is left for real failures
    assert outcomes == ["deferred"] * 6 + ["transient"] * 3 + ["succeeded"]
    shown = repo.get(f"deliveries/{delivery}")
    assert shown["status"] == "succeeded"
    with runtime.sessions() as session:
        service = session.get(Service, service_id)
        assert service is not None
        assert (service.enabled, service.consecutive_failures) == (True, 0)


def test_a_throttled_request_in_a_successful_run_changes_nothing(
    repo: Repo, dispatcher: Dispatcher, fake: FakeBackend
) -> None:
    ok = RunResult(status=RunStatus.SUCCEEDED, result={},
                   requests=_throttled().requests)  # fmt: skip
    fake.handler = lambda *_args: ok
    repo.add_service("type=POST&URL=http://127.0.0.1:9/a")
    [delivery] = [d["id"] for d in repo.push(push_body(commit(1))).json["deliveries"]]
    assert dispatcher.run(delivery) == "succeeded"
