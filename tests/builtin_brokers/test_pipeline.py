"""Built-in brokers end to end: a push through the REST API, its delivery run by the
Dispatcher in the real Docker sandbox behind the real gateway, and the outcome on the
delivery — POST to a recording receiver, Issues to the platform's own tracker."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient

from brokerage.platform.deliveries.dispatch import Dispatcher
from brokerage.platform.runtime import Runtime
from brokerage.sandbox.interface import BrokerBundle
from brokerage.submissions import bundles
from brokerage.submissions.models import BrokerVersion
from tests.builtin_brokers.fixtures import fixture
from tests.builtin_brokers.harness import LIMITS, RECEIVER_HOST, BrokerRig, builtin_bundle
from tests.platform.deliveries.conftest import Repo, push_body
from tests.support import Seeder, basic

ISSUES = "/1.0/repositories/marcus/project-x/issues"


@pytest.fixture
def repo(client: FlaskClient, seed: Seeder) -> Repo:
    return Repo(client, seed)


@pytest.fixture
def named_receiver(monkeypatch: pytest.MonkeyPatch) -> None:
    """POST's manifest allows any *public* host ("*"), never 127.0.0.1; name the receiver."""

    def load(version: BrokerVersion) -> BrokerBundle:
        found = builtin_bundle(version.broker_type.name)
        if "*" in found.manifest["egress"]:
            return builtin_bundle(version.broker_type.name, egress=[RECEIVER_HOST])
        return found

    monkeypatch.setattr(bundles, "load", load)


def deliveries(repo: Repo, body: dict[str, Any]) -> list[str]:
    response = repo.push(body)
    assert response.status_code in (200, 201, 202), response.json
    return [d["id"] for d in response.json["deliveries"]]


def test_post_end_to_end(
    repo: Repo, runtime: Runtime, rig: BrokerRig, named_receiver: None
) -> None:
    repo.add_service(f"type=POST&URL={rig.hook_url('/hook')}&Secret=s3cret")
    commits = fixture("post", "3_commits")["commits"]
    [delivery_id] = deliveries(repo, push_body(*commits))
    assert Dispatcher(runtime, rig.backend, LIMITS).run(delivery_id) == "succeeded"
    [request] = rig.hook.requests
    sent = json.loads(request.form["payload"])
    assert sent["commits"] == commits
    assert set(sent) >= {"canon_url", "commits", "repository", "user"}
    assert not set(sent) & {"service", "broker", "delivery"}
    assert request.headers["x-brokerage-delivery"] == delivery_id
    assert request.headers["webhook-id"] == delivery_id
    shown = repo.get(f"deliveries/{delivery_id}")
    assert shown["status"] == "succeeded"
    attempt = shown["attempt_log"][0]
    assert [r["status"] for r in attempt["requests"]] == [200]
    assert "s3cret" not in json.dumps(shown)


def test_post_configuration_error_on_the_delivery(
    repo: Repo, runtime: Runtime, rig: BrokerRig, named_receiver: None
) -> None:
    repo.add_service(f"type=POST&URL={rig.hook_url('/status/404')}")
    [delivery_id] = deliveries(repo, push_body(*fixture("post", "1_commit")["commits"]))
    assert Dispatcher(runtime, rig.backend, LIMITS).run(delivery_id) == "configuration"
    shown = repo.get(f"deliveries/{delivery_id}")
    assert shown["status"] == "failed"
    assert shown["last_error"].startswith("configuration error: ConfigurationError: POST")
    assert "answered 404" in shown["last_error"]


def test_issues_end_to_end(
    repo: Repo, client: FlaskClient, runtime: Runtime, platform_rig: BrokerRig
) -> None:
    for title in ("one", "two", "three", "four", "five"):
        client.post(ISSUES, json={"title": title}, headers=basic("marcus"))
    repo.add_service("type=Issues")
    commits = fixture("issues", "seed_examples")["commits"]
    [delivery_id] = deliveries(repo, push_body(*commits))
    dispatcher = Dispatcher(runtime, platform_rig.backend, LIMITS)
    assert dispatcher.run(delivery_id) == "succeeded", repo.get(f"deliveries/{delivery_id}")
    issues = {i["id"]: i for i in client.get(ISSUES, headers=basic("marcus")).json["issues"]}
    assert {n: i["status"] for n, i in issues.items()} == {
        1: "resolved", 2: "open", 3: "new", 4: "new", 5: "new"}  # fmt: skip
    assert [i["comment_count"] for i in issues.values()] == [1, 1, 1, 1, 1]
    result = repo.get(f"deliveries/{delivery_id}")["attempt_log"][0]["result"]
    assert len(result["applied"]) == 5 and result["already_applied"] == []

    # the same changesets again (a redelivery) change nothing
    client.put(f"{ISSUES}/1", json={"status": "open"}, headers=basic("marcus"))
    again = client.post(f"/1.0/repositories/marcus/project-x/deliveries/{delivery_id}/redeliver",
                        headers=basic("marcus"))  # fmt: skip
    assert again.status_code in (200, 202), again.json
    assert dispatcher.run(delivery_id) == "succeeded"
    shown = client.get(f"{ISSUES}/1", headers=basic("marcus")).json
    assert shown["status"] == "open" and len(shown["comments"]) == 1
    result = repo.get(f"deliveries/{delivery_id}")["attempt_log"][-1]["result"]
    assert result["applied"] == [] and len(result["already_applied"]) == 5


def test_issues_unknown_issue_is_reported_not_failed(
    repo: Repo, client: FlaskClient, runtime: Runtime, platform_rig: BrokerRig
) -> None:
    client.post(ISSUES, json={"title": "one"}, headers=basic("marcus"))
    repo.add_service("type=Issues")
    [delivery_id] = deliveries(repo, push_body(*fixture("issues", "unknown_issue")["commits"]))
    assert Dispatcher(runtime, platform_rig.backend, LIMITS).run(delivery_id) == "succeeded"
    result = repo.get(f"deliveries/{delivery_id}")["attempt_log"][0]["result"]
    assert result["unknown_issues"] == [99]
    assert len(result["applied"]) == 1


def test_email_diff_end_to_end(repo: Repo, runtime: Runtime, rig: BrokerRig) -> None:
    repo.add_service("type=Email&Email=dev@example.org")
    repo.add_service("type=Email Diff&Email=dev@example.org, qa@example.org")
    pushed = fixture("emaildiff", "3_commits_one_without_patch")
    body = dict(push_body(*pushed["commits"]), patches=pushed["patches"])
    ids = deliveries(repo, body)
    dispatcher = Dispatcher(runtime, rig.backend, LIMITS)
    assert [dispatcher.run(i) for i in ids] == ["succeeded", "succeeded"]
    mails = sorted(rig.mail.messages, key=lambda m: len(m["to"]))
    assert [m["message"]["Subject"] for m in mails] == ["commit/project-x: 3 new changesets"] * 2
    plain, with_diffs = (m["message"].get_content() for m in mails)
    assert plain.count("diff --git") == 0
    assert with_diffs.count("diff --git") == 2
    assert sorted(mails[1]["to"]) == ["dev@example.org", "qa@example.org"]
