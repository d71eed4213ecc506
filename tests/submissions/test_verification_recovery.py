"""Verifications survive their worker and Redis: the sweeper enqueues a submitted version's
lost verification job, and verifies again a version left ``verifying`` by a worker that died
(once it has been so for longer than any verification may run)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from brokerage.core.tables import utcnow
from brokerage.platform.deliveries import sweeper
from brokerage.platform.deliveries import verification_jobs as tasks
from brokerage.platform.runtime import Runtime
from brokerage.submissions import lifecycle
from brokerage.submissions.models import BrokerVersion, SubmissionEvent
from brokerage.submissions.states import SubmissionState
from tests.submissions.conftest import archive, package_files, upload
from tests.support import RedisServer


def submitted(client: Any, people: Any) -> int:
    response = upload(client, people.vendor, archive(package_files()))
    assert response.status_code == 201, response.json
    return int(response.json["id"])


def shown(client: Any, people: Any, version_id: int) -> dict[str, Any]:
    found: dict[str, Any] = client.get(f"/1.0/submissions/{version_id}", headers=people.vendor).json
    return found


def left_verifying(runtime: Runtime, version_id: int, seconds_ago: float) -> None:
    """What a worker that died mid-verification leaves: the version ``verifying`` since
    ``seconds_ago``, and no job in Redis (it was taken off the queue)."""
    runtime.queue.empty()
    with runtime.sessions() as session:
        version = session.get(BrokerVersion, version_id)
        assert version is not None
        lifecycle.move(session, version, SubmissionState.VERIFYING, None, "verification started")
        session.execute(
            update(SubmissionEvent)
            .where(SubmissionEvent.broker_version_id == version_id)
            .values(at=utcnow() - timedelta(seconds=seconds_ago))
        )
        session.commit()


def test_a_version_left_verifying_by_a_dead_worker_is_verified_again(
    client: Any, people: Any, runtime: Runtime, verify_with: Any
) -> None:
    version_id = submitted(client, people)
    left_verifying(runtime, version_id, tasks.VERIFY_LEASE_SECONDS + 1)
    assert sweeper.sweep(runtime).verifications == [version_id]
    verify_with()
    body = shown(client, people, version_id)
    assert body["state"] == "awaiting_review", body
    assert [(e["from"], e["to"]) for e in body["events"]][-3:] == [
        ("submitted", "verifying"),
        ("verifying", "verifying"),  # started again, audited
        ("verifying", "awaiting_review"),
    ]
    assert sweeper.sweep(runtime).verifications == []


def test_a_version_verifying_within_its_lease_is_left_alone(
    client: Any, people: Any, runtime: Runtime, verify_with: Any
) -> None:
    version_id = submitted(client, people)
    left_verifying(runtime, version_id, tasks.VERIFY_LEASE_SECONDS - 60)
    assert sweeper.sweep(runtime).verifications == []
    # and a restart job that finds the verification alive does nothing
    assert tasks.enqueue(runtime, version_id, restart=True)
    verify_with()
    assert shown(client, people, version_id)["state"] == "verifying"


def test_a_verification_job_lost_with_redis_is_enqueued_again(
    client: Any,
    people: Any,
    runtime: Runtime,
    verify_with: Any,
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sweeper, "GRACE", timedelta(0))
    version_id = submitted(client, people)
    redis_server.stop()
    redis_server.start()  # empty: the verification job is gone
    assert runtime.queue.count == 0
    assert sweeper.sweep(runtime).verifications == [version_id]
    assert sweeper.sweep(runtime).verifications == []  # its job is alive now: no duplicate
    verify_with()
    assert shown(client, people, version_id)["state"] == "awaiting_review"
