"""Nothing is lost: the sweeper re-enqueues what Redis lost or never got, and a real RQ
worker (burst mode, fake sandbox) then delivers it exactly once per attempt."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from brokerage.core.tables import utcnow
from brokerage.platform.deliveries import queue as delivery_queue
from brokerage.platform.deliveries import sweeper
from brokerage.platform.deliveries.worker import run_worker
from brokerage.platform.models import Delivery
from brokerage.platform.runtime import Runtime
from tests.platform.deliveries.conftest import Repo, commit, push_body
from tests.support import RedisServer


@pytest.fixture(autouse=True)
def no_grace(monkeypatch: pytest.MonkeyPatch, runtime: Runtime) -> None:
    monkeypatch.setattr(sweeper, "GRACE", timedelta(0))
    runtime.config["SANDBOX_BACKEND"] = "fake"


def statuses(repo: Repo) -> list[str]:
    return [d["status"] for d in repo.get("deliveries")]


def test_a_real_worker_runs_every_queued_delivery(repo: Repo, runtime: Runtime) -> None:
    repo.add_service("type=POST&URL=http://127.0.0.1:9/a")
    for n in range(5):
        repo.push(push_body(commit(n + 1)))
    run_worker(runtime, "burst-worker", burst=True)
    assert statuses(repo) == ["succeeded"] * 5
    assert all(d["attempts"] == 1 for d in repo.get("deliveries"))


def test_pushes_made_while_redis_was_down_are_delivered_when_it_is_back(
    repo: Repo, runtime: Runtime, redis_server: RedisServer
) -> None:
    repo.add_service("type=POST&URL=http://127.0.0.1:9/a")
    redis_server.stop()
    for n in range(3):
        assert repo.push(push_body(commit(n + 1))).status_code == 202
    assert statuses(repo) == ["pending"] * 3
    assert sweeper.sweep(runtime).enqueued == []  # Redis still down: the sweep waits, loses nothing
    redis_server.start()
    assert len(sweeper.sweep(runtime).enqueued) == 3
    run_worker(runtime, "burst-worker", burst=True)
    assert statuses(repo) == ["succeeded"] * 3


def test_a_queued_delivery_whose_job_is_in_redis_is_left_alone(
    repo: Repo, runtime: Runtime
) -> None:
    repo.add_service("type=POST&URL=http://127.0.0.1:9/a")
    repo.push(push_body(commit(1)))
    assert statuses(repo) == ["queued"] and runtime.queue.count == 1
    assert sweeper.sweep(runtime).enqueued == []
    assert runtime.queue.count == 1


class Died(BaseException):
    """The web process stopping dead (SIGKILL, power cut): nothing after it runs."""


def test_deliveries_whose_web_process_died_before_the_enqueue_are_run_once(
    repo: Repo, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ingestion stores deliveries ``queued`` and enqueues right after its commit; dying in
    between leaves them ``queued`` with no job. The sweeper enqueues each one once."""
    repo.add_service("type=POST&URL=http://127.0.0.1:9/a")
    repo.add_service("type=POST&URL=http://127.0.0.1:9/b")

    def die(_runtime: Runtime, _ids: list[str]) -> bool:
        raise Died

    with monkeypatch.context() as patch:
        patch.setattr(delivery_queue, "enqueue_first_attempts", die)
        with pytest.raises(Died):
            repo.push(push_body(commit(1)))
    assert statuses(repo) == ["queued"] * 2  # committed before the process died
    assert runtime.queue.count == 0
    assert len(sweeper.sweep(runtime).enqueued) == 2
    assert sweeper.sweep(runtime).enqueued == []  # their jobs are alive now: no duplicates
    run_worker(runtime, "burst-worker", burst=True)
    assert statuses(repo) == ["succeeded"] * 2
    assert all(d["attempts"] == 1 for d in repo.get("deliveries"))


def test_jobs_lost_in_a_redis_restart_are_enqueued_again(
    repo: Repo, runtime: Runtime, redis_server: RedisServer
) -> None:
    repo.add_service("type=POST&URL=http://127.0.0.1:9/a")
    for n in range(4):
        repo.push(push_body(commit(n + 1)))
    assert statuses(repo) == ["queued"] * 4
    redis_server.stop()
    redis_server.start()  # an empty Redis: every job is gone
    assert runtime.queue.count == 0
    assert len(sweeper.sweep(runtime).enqueued) == 4
    assert sweeper.sweep(runtime).enqueued == []  # the jobs are alive now: no duplicates
    run_worker(runtime, "burst-worker", burst=True)
    assert statuses(repo) == ["succeeded"] * 4


def test_an_attempt_whose_worker_died_is_abandoned_and_run_again(
    repo: Repo, runtime: Runtime
) -> None:
    repo.add_service("type=POST&URL=http://127.0.0.1:9/a")
    [delivery] = repo.push(push_body(commit(1))).json["deliveries"]
    runtime.queue.empty()
    from brokerage.platform.deliveries.states import claim

    with runtime.sessions() as session:  # a worker claims attempt 1, then dies
        attempt = claim(session.connection(), delivery["id"], "dead-worker")
        assert attempt is not None and attempt.number == 1
        session.execute(update(Delivery).values(lease_until=utcnow() - timedelta(seconds=1)))
        session.commit()
    report = sweeper.sweep(runtime)
    assert report.abandoned == [delivery["id"]]
    run_worker(runtime, "burst-worker", burst=True)
    shown = repo.get(f"deliveries/{delivery['id']}")
    assert shown["status"] == "succeeded"
    assert [(a["number"], a["outcome"]) for a in shown["attempt_log"]] == [
        (1, "abandoned"),
        (2, "succeeded"),
    ]
