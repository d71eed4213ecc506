"""One attempt at a time: claim, run in the (fake) sandbox, record, retry or give up."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

from brokerage.platform.deliveries.dispatch import Dispatcher
from brokerage.platform.deliveries.states import claim
from brokerage.platform.models import Delivery, Service
from brokerage.platform.runtime import Runtime
from brokerage.sandbox.fake import FakeBackend
from brokerage.sandbox.interface import BrokerBundle, Limits, RunResult, RunStatus
from tests.platform.deliveries.conftest import Repo, commit, push_body
from tests.support import SmtpSink


def deliver(repo: Repo, service_body: str = "type=POST&URL=http://127.0.0.1:9/a") -> str:
    repo.add_service(service_body)
    return str(repo.push(push_body(commit(1))).json["deliveries"][0]["id"])


def results(*statuses: RunResult) -> Any:
    queue = list(statuses)

    def handler(_bundle: BrokerBundle, _envelope: Mapping[str, Any], _limits: Limits) -> RunResult:
        return queue.pop(0)

    return handler


def failed(kind: str = "error", message: str = "receiver said 503") -> RunResult:
    return RunResult(
        status=RunStatus.FAILED,
        error={"type": "HTTPError", "kind": kind, "message": message, "traceback": ""},
    )


def test_a_success_is_recorded_with_the_envelope_the_broker_got(
    repo: Repo, dispatcher: Dispatcher, fake: FakeBackend
) -> None:
    fake.handler = results(
        RunResult(
            status=RunStatus.SUCCEEDED,
            exit_code=0,
            duration_seconds=0.01,
            result={"status": 200},
            logs=["INFO posted"],
            requests=[{"method": "POST", "status": 200}],
        )
    )
    delivery_id = deliver(repo)
    assert dispatcher.run(delivery_id) == "succeeded"
    envelope = fake.calls[0].envelope
    assert envelope["service"]["URL"] == "http://127.0.0.1:9/a"
    assert envelope["broker"] == "post"
    assert envelope["delivery"] == {"id": delivery_id, "attempt": 1}
    assert envelope["commits"] == [commit(1)]
    shown = repo.get(f"deliveries/{delivery_id}")
    # the sandbox's trust unit: the service (and its broker version), never shared
    assert str(fake.calls[0].tenant).startswith(f"service-{shown['service']}@")
    assert shown["status"] == "succeeded"
    assert shown["attempts"] == 1
    [attempt] = shown["attempt_log"]
    assert attempt["outcome"] == "succeeded"
    assert attempt["logs"] == ["INFO posted"]
    assert attempt["requests"] == [{"method": "POST", "status": 200}]
    assert attempt["worker"] == "test-worker"


def test_transient_failures_retry_with_the_same_delivery_id(
    repo: Repo, dispatcher: Dispatcher, fake: FakeBackend, runtime: Runtime
) -> None:
    fake.handler = results(
        RunResult(status=RunStatus.TIMED_OUT),
        failed(),
        RunResult(status=RunStatus.SUCCEEDED, result={}),
    )
    delivery_id = deliver(repo)
    assert dispatcher.run(delivery_id) == "transient"
    assert repo.get(f"deliveries/{delivery_id}")["status"] == "retrying"
    assert dispatcher.run(delivery_id) == "transient"
    assert dispatcher.run(delivery_id) == "succeeded"
    assert [c.envelope["delivery"] for c in fake.calls] == [
        {"id": delivery_id, "attempt": n} for n in (1, 2, 3)
    ]
    shown = repo.get(f"deliveries/{delivery_id}")
    assert [a["outcome"] for a in shown["attempt_log"]] == ["transient", "transient", "succeeded"]
    assert shown["attempt_log"][0]["message"].startswith("timed_out")


def test_retries_run_out_and_the_delivery_fails(
    repo: Repo, dispatcher: Dispatcher, fake: FakeBackend
) -> None:
    fake.handler = results(*[failed() for _ in range(4)])
    delivery_id = deliver(repo)
    outcomes = [dispatcher.run(delivery_id) for _ in range(5)]
    assert outcomes == ["transient"] * 4 + [
        "not claimable"
    ]  # RETRY_DELAYS has 3 entries: 4 attempts
    shown = repo.get(f"deliveries/{delivery_id}")
    assert shown["status"] == "failed"
    assert "receiver said 503" in shown["last_error"]


def test_a_configuration_error_is_not_retried(
    repo: Repo, dispatcher: Dispatcher, fake: FakeBackend
) -> None:
    fake.handler = results(failed("configuration", "URL is not reachable"))
    delivery_id = deliver(repo)
    assert dispatcher.run(delivery_id) == "configuration"
    shown = repo.get(f"deliveries/{delivery_id}")
    assert shown["status"] == "failed"
    assert shown["last_error"].startswith("configuration error")


def test_empty_required_fields_fail_without_running(
    repo: Repo, dispatcher: Dispatcher, fake: FakeBackend
) -> None:
    delivery_id = deliver(repo, "type=POST")
    assert dispatcher.run(delivery_id) == "configuration"
    assert fake.calls == []
    assert "required field(s) empty: URL" in repo.get(f"deliveries/{delivery_id}")["last_error"]


def test_a_failing_service_is_disabled_and_its_admins_mailed(
    repo: Repo, dispatcher: Dispatcher, fake: FakeBackend, runtime: Runtime, smtp: SmtpSink
) -> None:
    fake.handler = lambda *_: failed("configuration", "bad token")
    sid = repo.add_service("type=POST&URL=http://127.0.0.1:9/a")
    for n in range(3):
        [delivery] = repo.push(push_body(commit(n + 1))).json["deliveries"]
        dispatcher.run(delivery["id"])
    with runtime.sessions() as session:
        service = session.get(Service, sid)
        assert not service.enabled
        assert "3 failed deliveries in a row" in service.disabled_reason
    [mail] = smtp.messages
    assert mail["to"] == ["marcus@example.org"]
    assert mail["message"]["Subject"] == "[marcus/project-x] POST service disabled"
    assert "bad token" in mail["message"].get_content()
    assert repo.push(push_body(commit(9))).json["deliveries"] == []
    enabled = repo.client.post(
        f"/1.0/repositories/marcus/project-x/services/{sid}/enable", headers=repo.auth
    )
    assert enabled.json == {"id": sid, "enabled": True}
    assert len(repo.push(push_body(commit(10))).json["deliveries"]) == 1


def test_a_success_resets_the_failure_count(
    repo: Repo, dispatcher: Dispatcher, fake: FakeBackend, runtime: Runtime
) -> None:
    fake.handler = results(
        failed("configuration"),
        failed("configuration"),
        RunResult(status=RunStatus.SUCCEEDED),
        failed("configuration"),
        failed("configuration"),
    )
    sid = repo.add_service("type=POST&URL=http://127.0.0.1:9/a")
    for n in range(5):
        [delivery] = repo.push(push_body(commit(n + 1))).json["deliveries"]
        dispatcher.run(delivery["id"])
    with runtime.sessions() as session:
        assert session.get(Service, sid).enabled


def test_a_platform_error_is_recorded_not_raised(
    repo: Repo, dispatcher: Dispatcher, fake: FakeBackend
) -> None:
    def explode(*_: Any) -> RunResult:
        raise OSError("docker daemon went away")

    fake.handler = explode
    delivery_id = deliver(repo)
    assert dispatcher.run(delivery_id) == "transient"
    attempt = repo.get(f"deliveries/{delivery_id}")["attempt_log"][0]
    assert attempt["run_status"] == "sandbox_error"
    assert "docker daemon went away" in attempt["message"]


def test_a_removed_service_skips_its_delivery(
    repo: Repo, dispatcher: Dispatcher, fake: FakeBackend
) -> None:
    delivery_id = deliver(repo)
    sid = repo.get("services")[0]["id"]
    repo.client.delete(f"/1.0/repositories/marcus/project-x/services/{sid}", headers=repo.auth)
    assert dispatcher.run(delivery_id) == "skipped"
    assert fake.calls == []
    assert repo.get(f"deliveries/{delivery_id}")["status"] == "skipped"


def test_only_one_of_many_concurrent_claims_wins(repo: Repo, runtime: Runtime) -> None:
    delivery_id = deliver(repo)
    won: list[int | None] = []
    barrier = threading.Barrier(8)

    def contend() -> None:
        with runtime.engine.begin() as conn:
            barrier.wait()
            attempt = claim(conn, delivery_id, "contender")
        won.append(attempt.number if attempt else None)

    threads = [threading.Thread(target=contend) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(won, key=lambda x: x or 0) == [None] * 7 + [1]
    with runtime.sessions() as session:
        assert session.get(Delivery, delivery_id).attempts == 1


def test_the_branch_filter_decides_deliveries_and_what_the_broker_sees(
    repo: Repo, dispatcher: Dispatcher, fake: FakeBackend
) -> None:
    repo.add_service("type=POST&URL=http://127.0.0.1:9/all")
    repo.add_service("type=POST&URL=http://127.0.0.1:9/release&Branches=release/*")
    body = push_body(commit(1, branch="master"), commit(2, branch="release/1.0"))
    deliveries = repo.push(body).json["deliveries"]
    assert len(deliveries) == 2
    for delivery in deliveries:
        dispatcher.run(delivery["id"])
    seen = {
        c.envelope["service"]["URL"]: [x["branch"] for x in c.envelope["commits"]]
        for c in fake.calls
    }
    assert seen == {
        "http://127.0.0.1:9/all": ["master", "release/1.0"],
        "http://127.0.0.1:9/release": ["release/1.0"],
    }
    only_master = repo.push(push_body(commit(3, branch="master"))).json["deliveries"]
    assert len(only_master) == 1  # the filtered service gets no delivery for master alone


def test_secret_values_are_masked_in_everything_an_attempt_records(
    repo: Repo, dispatcher: Dispatcher, fake: FakeBackend
) -> None:
    """A chat webhook's URL is its credential: neither the gateway's request log nor the
    broker's own output may keep it (or its secret path) on the delivery."""
    hook = "https://hooks.slack.com/services/T000/B000/XXXXsecretXXXX"
    fake.handler = results(RunResult(
        status=RunStatus.FAILED, stdout=f"posting to {hook}\n", logs=["INFO token s3cr3t-token"],
        requests=[{"method": "POST", "url": "https://hooks.slack.com/services/T000/B000/XXXXsecretXXXX",
                   "status": 404}],
        error={"type": "ConfigurationError", "kind": "configuration",
               "message": "Slack answered 404 for /services/T000/B000/XXXXsecretXXXX",
               "traceback": ""},
    ))  # fmt: skip
    repo.add_service(
        "type=Basecamp&Username=u&Password=s3cr3t-token&Discussion%20URL=http://b.example/d"
    )
    sid = repo.add_service(f"type=Slack&Webhook%20URL={hook}")
    [delivery] = [
        d for d in repo.push(push_body(commit(1))).json["deliveries"] if d["service"] == sid
    ]
    dispatcher.run(delivery["id"])
    shown = json.dumps(repo.get(f"deliveries/{delivery['id']}"))
    assert "XXXXsecretXXXX" not in shown
    assert "posting to ********" in shown
    assert "/services/T000/B000/" not in shown
