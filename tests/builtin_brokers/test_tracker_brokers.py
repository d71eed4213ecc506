"""Pivotal Tracker and Geocommit through the real sandbox and gateway to local fakes of
their APIs: one line per case. Both services are gone (Tracker since 2025); each broker's
API address is an optional field, defaulting to the real one, so a compatible server —
here the fake, on the real host name — takes its place."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.builtin_brokers.fakes.modern import GeocommitFake, TrackerFake, UnavailableFake
from tests.builtin_brokers.fakes.wire import Fake, Request
from tests.builtin_brokers.fixtures import fixture
from tests.builtin_brokers.harness import BrokerRig

TOKEN = "s3cret-tracker-token"
HOOK = "{base}/api/bitbucket"
TRACKER_API = "{base}/services/v5"
"""compatible servers' addresses ("{base}": the fake's, or a closed port's, base URL)"""
HOSTS = {"pivotaltracker": "www.pivotaltracker.com", "geocommit": "hook.geocommit.com"}


def tracker(token: str = TOKEN, api: str = TRACKER_API) -> dict[str, str]:
    return {"Token": token, "API URL": api}


@dataclass
class Case:
    broker: str
    variant: str
    service: dict[str, str]
    fake: Callable[[], Fake]
    outcome: str = "succeeded"  # or the error kind: configuration / transient
    message: str = ""
    sent: int = 1
    down: bool = False  # the service's port has nothing listening
    id: str = ""


CASES = [
    Case("pivotaltracker", "1_commit", tracker(), TrackerFake, id="tracker-1"),
    Case("pivotaltracker", "3_commits", tracker(), TrackerFake, sent=2,
         id="tracker-3-two-name-stories"),
    Case("pivotaltracker", "no_story", tracker(), TrackerFake, sent=0,
         id="tracker-no-story-sends-nothing"),
    Case("pivotaltracker", "1_commit", tracker(token="wrong"), TrackerFake, "configuration",
         "Token: Pivotal Tracker refused the API token (403 invalid_authentication)",
         id="tracker-bad-token"),
    Case("pivotaltracker", "1_commit", tracker(api="ftp://tracker.example/"), TrackerFake,
         "configuration", "API URL: 'ftp://tracker.example/' is not an http or https URL",
         sent=0, id="tracker-bad-api-url"),
    Case("pivotaltracker", "1_commit", tracker(token=""), TrackerFake, "configuration",
         "Token: required", sent=0, id="tracker-no-token"),
    Case("pivotaltracker", "1_commit", tracker(), TrackerFake, "transient", "502",
         sent=0, down=True, id="tracker-down"),
    Case("pivotaltracker", "1_commit", tracker(), UnavailableFake, "transient",
         "answered 503", id="tracker-503"),
    Case("geocommit", "1_commit", {"Hook URL": HOOK}, GeocommitFake, id="geocommit-1"),
    Case("geocommit", "3_commits", {"Hook URL": HOOK}, GeocommitFake,
         id="geocommit-3-two-located"),
    Case("geocommit", "no_location", {"Hook URL": HOOK}, GeocommitFake, sent=0,
         id="geocommit-no-location-sends-nothing"),
    Case("geocommit", "1_commit", {"Hook URL": HOOK}, GeocommitFake, "transient", "502",
         sent=0, down=True, id="geocommit-down"),
    Case("geocommit", "1_commit", {"Hook URL": HOOK}, UnavailableFake, "transient",
         "answered 503", id="geocommit-503"),
    Case("geocommit", "1_commit", {"Hook URL": "ftp://hook.geocommit.com/"}, GeocommitFake,
         "configuration", "Hook URL: 'ftp://hook.geocommit.com/' is not an http or https URL",
         sent=0, id="geocommit-bad-url"),
]  # fmt: skip


def fill(case: Case, rig: BrokerRig) -> dict[str, str]:
    port = rig.dead_port if case.down else rig.server.port
    base = rig.url(HOSTS[case.broker], "", port=port).rstrip("/")
    return {k: v.replace("{base}", base) for k, v in case.service.items()}


def check_tracker(variant: str, requests: list[Request]) -> None:
    push = fixture("pivotaltracker", variant)
    named = [c for c in push["commits"] if "[" in c["message"] and "#" in c["message"]]
    assert len(requests) == len(named)
    for request, commit in zip(requests, named, strict=True):
        assert request.method == "POST"
        assert request.headers["x-trackertoken"] == TOKEN
        sent = json.loads(request.body)["source_commit"]
        assert sent == {
            "commit_id": commit["raw_node"],
            "message": commit["message"].strip(),
            "url": f"https://brokerage.example/marcus/project-x/commits/{commit['raw_node']}",
            "author": "Marcus Bertrand",
        }


def check_geocommit(variant: str, requests: list[Request], result: dict[str, Any]) -> None:
    push = fixture("geocommit", variant)
    located = [c for c in push["commits"] if "geocommit" in c["message"]]
    (request,) = requests
    assert request.path == "/api/bitbucket"
    payload = json.loads(request.form["payload"])
    assert payload["commits"] == located
    assert payload["repository"] == push["repository"]
    assert not {"service", "broker", "delivery"} & set(payload)
    assert [(p["lat"], p["long"]) for p in result["locations"]] == EXPECTED_PLACES[variant]


EXPECTED_PLACES = {
    "1_commit": [(52.5, 13.4)],
    "3_commits": [(-33.8688, 151.2093), (48.137, 11.575)],
}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_tracker_broker(rig: BrokerRig, case: Case) -> None:
    result = rig.dispatch(case.broker, case.variant, fill(case, rig), case.fake())
    assert len(rig.requests) == case.sent, (result.error, result.requests)
    if case.outcome == "succeeded":
        assert result.status == "succeeded", result.error
        assert result.result is not None
        if case.sent == 0:
            assert "nothing sent" in result.result["message"]
        elif case.broker == "pivotaltracker":
            check_tracker(case.variant, rig.requests)
        else:
            check_geocommit(case.variant, rig.requests, result.result)
    else:
        assert result.status == "failed", result
        assert result.error and result.error["kind"] == case.outcome, result.error
        assert case.message in result.error["message"]
        assert TOKEN not in json.dumps(result.error)


def test_tracker_reports_the_stories_each_commit_names(rig: BrokerRig) -> None:
    service = fill(CASES[0], rig)
    result = rig.dispatch("pivotaltracker", "3_commits", service, TrackerFake())
    assert result.result is not None
    assert [s["stories"] for s in result.result["sent"]] == [["12345", "12346"], ["12347"]]


def test_geocommit_defaults_to_the_published_hook(rig: BrokerRig) -> None:
    """An empty Hook URL means geocommit.com's; "*" never opens 127.0.0.1 to a host nobody
    named, so the gateway refuses it here — its log shows where the broker went."""
    result = rig.dispatch("geocommit", "1_commit", {"Hook URL": ""}, GeocommitFake())
    assert rig.requests == []
    assert [r["url"] for r in result.requests] == ["http://hook.geocommit.com/api/bitbucket"]
    assert result.error and "address_denied" in result.error["message"]


def test_tracker_defaults_to_trackers_own_api(rig: BrokerRig) -> None:
    """An empty API URL means Tracker's (over HTTPS: the gateway sees a tunnel to it, and
    refuses it here, as nobody named the host to open 127.0.0.1 for it)."""
    result = rig.dispatch("pivotaltracker", "1_commit", tracker(api=""), TrackerFake())
    assert rig.requests == []
    assert [r["url"] for r in result.requests] == ["www.pivotaltracker.com:443"]
    assert result.error and result.error["kind"] == "transient"
