"""Running deliveries again at any time: "retry now" while a delivery waits for its next
retry (no second job, no early extra attempt), and "redeliver every failed delivery of this
service since ..." — in the REST API and on the pages (CSRF, admins only), on the real
Redis and RQ workers (burst ``SimpleWorker``) with the fake sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from rq.job import Job
from sqlalchemy import update

from brokerage.platform.db import session_scope
from brokerage.platform.deliveries import queue as delivery_queue
from brokerage.platform.models import Delivery
from brokerage.platform.runtime import Runtime
from brokerage.sandbox.fake import FakeBackend
from brokerage.sandbox.interface import BrokerBundle, Limits, RunResult, RunStatus
from tests.platform.web.conftest import WebClient
from tests.support import RedisServer, Seeder, SmtpSink, basic, build_app

API = "/1.0/repositories/marcus/project-x"
PAGE = "/repos/marcus/project-x"


@pytest.fixture
def app(
    tmp_path: Path, database: str, redis_server: RedisServer, smtp: SmtpSink
) -> Iterator[Flask]:
    """Retries 10 and 30 minutes apart, as in production; no auto-disable in these tests."""
    app = build_app(tmp_path, database, REDIS_URL=redis_server.url, SMTP_HOST="127.0.0.1",
                    SMTP_PORT=smtp.port, MAIL_DOMAIN="brokerage.test",
                    RETRY_DELAYS=[600, 1800], AUTO_DISABLE_AFTER=100)  # fmt: skip
    yield app
    app.extensions["brokerage.runtime"].close()


class Script:
    """What the fake sandbox answers: ``fail`` is "transient" (retried), "configuration"
    (failed at once) or "" (succeeds)."""

    def __init__(self) -> None:
        self.fail = "transient"

    def __call__(self, bundle: BrokerBundle, envelope: Any, _limits: Limits) -> RunResult:
        if not self.fail:
            return RunResult(status=RunStatus.SUCCEEDED, exit_code=0, result={"message": "ok"})
        kind = "configuration" if self.fail == "configuration" else "network"
        error = {"type": "HTTPError", "kind": kind, "message": "receiver down for maintenance"}
        return RunResult(status=RunStatus.FAILED, exit_code=1, error=error)


@pytest.fixture
def script() -> Script:
    return Script()


@pytest.fixture
def fake(script: Script) -> FakeBackend:
    return FakeBackend(handler=script)


def new_delivery(client: FlaskClient) -> str:
    """One POST service on marcus/project-x (made once) and a test push to it."""
    if not client.get(f"{API}/services", headers=basic("marcus")).json:
        made = client.post(
            f"{API}/services", data={"type": "POST", "URL": "http://127.0.0.1:9/hook"},
            headers=basic("marcus"),
        )  # fmt: skip
        assert made.status_code == 200, made.json
    response = client.post(f"{API}/services/1/test", headers=basic("marcus"))
    assert response.status_code == 202, response.json
    return str(response.json["id"])


def shown(client: FlaskClient, delivery_id: str) -> dict[str, Any]:
    found: dict[str, Any] = client.get(
        f"{API}/deliveries/{delivery_id}", headers=basic("marcus")
    ).json
    return found


def scheduled(runtime: Runtime) -> list[str]:
    return list(runtime.queue.scheduled_job_registry.get_job_ids())


def attempts_run(fake: FakeBackend) -> list[tuple[str, int]]:
    return [(c.envelope["delivery"]["id"], c.envelope["delivery"]["attempt"]) for c in fake.calls]


# -- retry now ------------------------------------------------------------------------------


def test_retry_now_runs_the_pending_retry_once(
    client: FlaskClient, people: Seeder, deliver: Any, fake: FakeBackend, script: Script,
    runtime: Runtime,
) -> None:  # fmt: skip
    delivery_id = new_delivery(client)
    deliver()
    waiting = shown(client, delivery_id)
    assert waiting["status"] == "retrying" and waiting["next_attempt_at"]
    assert scheduled(runtime) == [delivery_queue.job_id(delivery_id, 2)]  # ~10 minutes away

    script.fail = ""
    response = client.post(f"{API}/deliveries/{delivery_id}/retry", headers=basic("marcus"))
    assert response.status_code == 202
    assert (response.json["action"], response.json["status"]) == ("retried", "queued")
    assert response.json["next_attempt_at"] is None
    assert scheduled(runtime) == []  # taken off the schedule ...
    assert runtime.queue.get_job_ids() == [delivery_queue.job_id(delivery_id, 2)]  # ... queued

    again = client.post(f"{API}/deliveries/{delivery_id}/redeliver", headers=basic("marcus"))
    assert again.status_code == 409
    assert "already on its way" in again.json["error"]["message"]
    assert runtime.queue.get_job_ids() == [delivery_queue.job_id(delivery_id, 2)]

    deliver()
    deliver()  # nothing is left to run: no second copy of attempt 2, no early attempt 3
    assert attempts_run(fake) == [(delivery_id, 1), (delivery_id, 2)]
    done = shown(client, delivery_id)
    assert done["status"] == "succeeded" and done["attempts"] == 2
    assert scheduled(runtime) == [] and runtime.queue.get_job_ids() == []


def test_retry_now_after_the_scheduler_queued_the_job_adds_none(
    client: FlaskClient, people: Seeder, deliver: Any, fake: FakeBackend, script: Script,
    runtime: Runtime,
) -> None:  # fmt: skip
    """The retry fell due and RQ's scheduler moved it to the queue just before the click:
    the delivery moves on, and the job on the queue is the only one."""
    delivery_id = new_delivery(client)
    deliver()
    job = Job.fetch(delivery_queue.job_id(delivery_id, 2), connection=runtime.redis,
                    serializer=runtime.queue.serializer)  # fmt: skip
    runtime.queue.scheduled_job_registry.remove(job)
    runtime.queue.enqueue_job(job)  # what the scheduler does when the job is due

    response = client.post(f"{API}/deliveries/{delivery_id}/retry", headers=basic("marcus"))
    assert response.status_code == 202
    assert runtime.queue.get_job_ids() == [job.id]
    script.fail = ""
    deliver()
    assert attempts_run(fake) == [(delivery_id, 1), (delivery_id, 2)]
    assert shown(client, delivery_id)["status"] == "succeeded"


def test_retry_now_on_the_page(
    web: WebClient, client: FlaskClient, people: Seeder, deliver: Any, fake: FakeBackend,
    script: Script,
) -> None:  # fmt: skip
    delivery_id = new_delivery(client)
    deliver()
    web.sign_in("marcus")
    page = f"{PAGE}/deliveries/{delivery_id}"
    assert ">Retry now</button>" in web.get(page).text
    forged = web.client.post(f"{page}/redeliver", data={"csrf_token": "forged"})
    assert forged.status_code == 400
    assert shown(client, delivery_id)["status"] == "retrying"  # the forged form changed nothing

    script.fail = ""
    response = web.post(f"{page}/redeliver")
    assert response.status_code == 303
    assert "retried now (attempt 2)" in web.get(response.location).text
    deliver()
    assert attempts_run(fake) == [(delivery_id, 1), (delivery_id, 2)]
    assert ">Redeliver</button>" in web.get(page).text  # finished: redeliver again any time


def test_only_admins_retry(
    web: WebClient, client: FlaskClient, people: Seeder, deliver: Any
) -> None:
    delivery_id = new_delivery(client)
    deliver()
    response = client.post(f"{API}/deliveries/{delivery_id}/retry", headers=basic("eve"))
    assert response.status_code == 404  # marcus/project-x is private
    web.sign_in("eve")
    assert web.post(f"{PAGE}/deliveries/{delivery_id}/redeliver").status_code == 404
    assert shown(client, delivery_id)["status"] == "retrying"


# -- redeliver every failed delivery since ----------------------------------------------------


def age(app: Flask, delivery_id: str, days: int) -> None:
    with session_scope(app.extensions["brokerage.sessionmaker"]) as session:
        when = datetime.now(UTC) - timedelta(days=days)
        session.execute(update(Delivery).where(Delivery.id == delivery_id).values(created_at=when))


def failed_deliveries(
    app: Flask, client: FlaskClient, deliver: Any, script: Script
) -> tuple[str, list[str]]:
    """Three deliveries failed for good: one 10 days old, two from today."""
    script.fail = "configuration"
    old, *recent = (new_delivery(client) for _ in range(3))
    deliver()
    assert {shown(client, d)["status"] for d in [old, *recent]} == {"failed"}
    age(app, old, 10)
    return old, recent


def test_redeliver_every_failed_delivery_since(
    app: Flask, client: FlaskClient, people: Seeder, deliver: Any, fake: FakeBackend,
    script: Script,
) -> None:  # fmt: skip
    old, recent = failed_deliveries(app, client, deliver, script)
    script.fail = ""
    since = (datetime.now(UTC) - timedelta(days=5)).date().isoformat()
    response = client.post(f"{API}/services/1/redeliver?since={since}", headers=basic("marcus"))
    assert response.status_code == 202, response.json
    assert response.json["redelivered"] == 2 and response.json["more"] is False
    assert sorted(response.json["deliveries"]) == sorted(recent)
    deliver()
    assert {d: shown(client, d)["status"] for d in [old, *recent]} == {
        old: "failed",
        recent[0]: "succeeded",
        recent[1]: "succeeded",
    }
    again = client.post(f"{API}/services/1/redeliver", json={"since": since},
                        headers=basic("marcus"))  # fmt: skip
    assert again.status_code == 202 and again.json["redelivered"] == 0


def test_bulk_redelivery_refuses_bad_input(
    app: Flask, client: FlaskClient, people: Seeder, deliver: Any, script: Script
) -> None:
    failed_deliveries(app, client, deliver, script)
    auth = basic("marcus")
    for query, status, message in (
        ("", 400, "since: required"),
        ("?since=yesterday", 400, "not an ISO 8601"),
    ):
        response = client.post(f"{API}/services/1/redeliver{query}", headers=auth)
        assert (response.status_code, message in response.json["error"]["message"]) == (
            status, True
        )  # fmt: skip
    assert (
        client.post(f"{API}/services/9/redeliver?since=2026-01-01", headers=auth).status_code == 404
    )
    assert (
        client.post(
            f"{API}/services/1/redeliver?since=2026-01-01", headers=basic("eve")
        ).status_code
        == 404
    )
    client.post(f"{API}/services/1/disable", headers=auth)
    disabled = client.post(f"{API}/services/1/redeliver?since=2026-01-01", headers=auth)
    assert disabled.status_code == 409 and "enable it first" in disabled.json["error"]["message"]
    assert {d["status"] for d in client.get(f"{API}/deliveries", headers=auth).json} == {"failed"}


def test_bulk_redelivery_on_the_services_deliveries_page(
    app: Flask, web: WebClient, client: FlaskClient, people: Seeder, deliver: Any,
    fake: FakeBackend, script: Script,
) -> None:  # fmt: skip
    old, recent = failed_deliveries(app, client, deliver, script)
    web.sign_in("marcus")
    listing = web.get(f"{PAGE}/deliveries?service=1").text
    assert 'action="/repos/marcus/project-x/services/1/redeliver"' in listing
    assert 'type="date" id="since" name="since"' in listing
    since = (datetime.now(UTC) - timedelta(days=5)).date().isoformat()
    forged = web.client.post(f"{PAGE}/services/1/redeliver", data={"since": since})
    assert forged.status_code == 400
    assert web.post(f"{PAGE}/services/1/redeliver", {"since": "not a date"}).status_code == 400

    script.fail = ""
    response = web.post(f"{PAGE}/services/1/redeliver", {"since": since})
    assert response.status_code == 303
    assert response.location.endswith("/deliveries?service=1")
    assert (
        f"2 failed deliveries since {since} 00:00 UTC queued again."
        in web.get(response.location).text
    )
    deliver()
    assert sorted(d for d, n in attempts_run(fake) if n == 2) == sorted(recent)
    assert shown(client, old)["status"] == "failed"
