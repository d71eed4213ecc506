"""Superfeedr through the real sandbox and gateway against a local fake PubSubHubbub hub
(``hub.mode=publish``)."""

from __future__ import annotations

import pytest

from tests.builtin_brokers.cases import Broker, Failure, failure_id, run_failure
from tests.builtin_brokers.harness import BrokerRig, assert_succeeded

HOST = "superfeedr.test"
EGRESS = [HOST, "down.test"]
FEED = "https://brokerage.example/marcus/project-x/rss"


def service(rig: BrokerRig, **overrides: str) -> dict[str, str]:
    return {"Hub URL": rig.url(HOST, "/"), **overrides}


@pytest.mark.parametrize("variant", ["1_commit", "3_commits"])
def test_a_push_is_one_publish_ping_for_the_repository_feed(
    rig: BrokerRig,
    variant: str,
) -> None:
    result = assert_succeeded(rig.run("superfeedr", variant, service(rig), EGRESS))
    assert rig.fake(HOST).pings == [FEED]
    assert result["message"] == f"pinged the hub for {FEED}: 204"
    (request,) = rig.requests
    assert request.form == {"hub.mode": "publish", "hub.url": FEED}


def test_feed_url_overrides_the_repository_feed(rig: BrokerRig) -> None:
    elsewhere = service(rig, **{"Feed URL": "https://feeds.example/x.atom"})
    run = rig.run("superfeedr", "1_commit", elsewhere, EGRESS)
    assert_succeeded(run)
    assert rig.fake(HOST).pings == ["https://feeds.example/x.atom"]


BROKER = Broker("superfeedr", HOST, service, "pings")
FAILURES = [
    Failure("feed-url-without-scheme", "configuration", "Feed URL:",
            {"Feed URL": "feeds.example/x.atom"}),
    Failure("wrong-hub-path", "configuration", "answered 404", {"Hub URL": "{url}/hubbub"}),
    Failure("hub-url-without-scheme", "configuration", "Hub URL:", {"Hub URL": "superfeedr.test"}),
    Failure("the-hub-failing", "transient", "answered 503", status=503),
    Failure("the-hub-unreachable", "transient", "502", {"Hub URL": "{dead}/"}),
]  # fmt: skip


@pytest.mark.parametrize("case", FAILURES, ids=failure_id)
def test_failures(rig: BrokerRig, case: Failure) -> None:
    run_failure(rig, BROKER, case)
