"""The Issues API as a broker reaches it, one contract and two implementations: the
platform's (``platform/api/issues.py`` behind the gateway's forwarder, for a running
delivery of the Issues broker) and the stand-in that verification and ``brokerage broker
test`` give a broker instead (``submissions/standins.py``). A vendor's fixture that passes
against the stand-in must mean the broker works against the platform."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from brokerage.platform.api.broker_access import AppApiForwarder
from brokerage.platform.deliveries.states import claim
from brokerage.platform.models import Delivery
from brokerage.sandbox.egress.relay import ApiCall, ApiReply
from brokerage.submissions.standins import ApiStandIn, StandInTracker
from tests.platform.deliveries.conftest import Repo, commit, push_body
from tests.support import RedisServer, Seeder, basic, build_app

ISSUES = "/1.0/repositories/marcus/project-x/issues"
ISSUE_KEYS = {"id", "title", "content", "status", "reporter", "created_on", "updated_on",
              "comment_count"}  # fmt: skip
COMMENT_KEYS = {"id", "author", "content", "created_on"}
CHANGESET = {"command": "resolve", "raw_node": "ab" * 20, "node": "abababababab",
             "author": "marcus", "message": "fixes #1", "branch": "main"}  # fmt: skip


@dataclass
class Tracker:
    """One implementation: the forwarder a gateway would call, and the running delivery."""

    forward: Callable[[ApiCall], ApiReply]
    delivery: str

    def answer(self, method: str, path: str, document: Any = None,
               permissions: tuple[str, ...] = ("issues:write",)) -> tuple[int, Any]:  # fmt: skip
        body = json.dumps(document).encode() if document is not None else b""
        call = ApiCall(method, path, {"content-type": "application/json"}, body, self.delivery,
                       "issues", "1.0.0", permissions)  # fmt: skip
        reply = self.forward(call)
        return reply.status, json.loads(reply.body)


IMPLEMENTATIONS = ["platform-sqlite", "platform-postgresql", "stand-in"]


@pytest.fixture(params=IMPLEMENTATIONS)
def implementation(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database(implementation: str) -> str:
    return implementation.partition("-")[2] or "sqlite"


@pytest.fixture
def tracker(implementation: str, request: pytest.FixtureRequest) -> Iterator[Tracker]:
    """Issues #1 "Crash" (new) and #2 "Typo" (open) on marcus/project-x, and a running
    delivery of the Issues broker there."""
    if implementation == "stand-in":
        standin = ApiStandIn()
        issues = [{"id": 1, "title": "Crash"}, {"id": 2, "title": "Typo", "status": "open"}]
        standin.begin("d-1", StandInTracker.from_fixture(
            {"owner": "marcus", "slug": "project-x"}, issues))  # fmt: skip
        yield Tracker(standin, "d-1")
        return
    tmp_path: Path = request.getfixturevalue("tmp_path")
    redis_server: RedisServer = request.getfixturevalue("redis_server")
    app = build_app(tmp_path, request.getfixturevalue("database"), REDIS_URL=redis_server.url)
    try:
        yield Tracker(AppApiForwarder(app), running_delivery(app, Seeder(app)))
    finally:
        app.extensions["brokerage.runtime"].close()


def running_delivery(app: Flask, seed: Seeder) -> str:
    client = app.test_client()
    repo = Repo(client, seed)
    repo.add_service("type=Issues")
    for title in ("Crash", "Typo"):
        assert (
            client.post(ISSUES, json={"title": title}, headers=basic("marcus")).status_code == 201
        )
    client.put(f"{ISSUES}/2", json={"status": "open"}, headers=basic("marcus"))
    assert repo.push(push_body(commit(1, "no command here"))).status_code in (200, 201, 202)
    with app.extensions["brokerage.sessionmaker"]() as session:
        delivery_id = session.query(Delivery.id).scalar()
        assert claim(session.connection(), delivery_id, "test-worker") is not None
        session.commit()
    return str(delivery_id)


def test_listing_and_filtering(tracker: Tracker) -> None:
    status, listed = tracker.answer("GET", ISSUES)
    assert status == 200 and listed["count"] == 2
    assert [(i["id"], i["title"], i["status"]) for i in listed["issues"]] == [
        (1, "Crash", "new"), (2, "Typo", "open")]  # fmt: skip
    assert all(set(issue) == ISSUE_KEYS for issue in listed["issues"]), listed
    status, open_only = tracker.answer("GET", f"{ISSUES}?status=open")
    assert status == 200 and [i["id"] for i in open_only["issues"]] == [2]
    assert tracker.answer("GET", f"{ISSUES}?status=eaten")[0] == 400


def test_a_changeset_applies_once(tracker: Tracker) -> None:
    status, applied = tracker.answer("POST", f"{ISSUES}/1/changesets", CHANGESET)
    assert status == 201 and applied["applied"] is True
    assert applied["issue"]["status"] == "resolved" and set(applied["issue"]) == ISSUE_KEYS
    status, again = tracker.answer("POST", f"{ISSUES}/1/changesets", CHANGESET)
    assert status == 200 and again["applied"] is False
    status, shown = tracker.answer("GET", f"{ISSUES}/1")
    assert status == 200 and set(shown) == ISSUE_KEYS | {"comments"}
    [comment] = shown["comments"]
    assert set(comment) == COMMENT_KEYS
    assert comment["content"].startswith("Changeset abababababab on branch main")
    reopen = {**CHANGESET, "command": "reopen"}
    assert tracker.answer("POST", f"{ISSUES}/1/changesets", reopen)[1]["issue"]["status"] == "open"


BAD_CALLS = [
    (f"{ISSUES}/9/changesets", CHANGESET, 404),  # no such issue
    (f"{ISSUES}/1/changesets", {**CHANGESET, "command": "eat"}, 400),
    (f"{ISSUES}/1/changesets", {**CHANGESET, "raw_node": "not hex"}, 400),
    (f"{ISSUES}/2/comments", {"content": "  "}, 400),
    (ISSUES, {"title": ""}, 400),
]


def test_bad_calls_get_the_same_error(tracker: Tracker) -> None:
    for path, document, status in BAD_CALLS:
        got, answer = tracker.answer("POST", path, document)
        assert got == status, (path, document, answer)
        assert answer["error"]["status"] == status and answer["error"]["message"]
    assert tracker.answer("GET", ISSUES)[1]["count"] == 2  # nothing changed


def test_comments_and_new_issues_are_the_broker_s(tracker: Tracker) -> None:
    status, comment = tracker.answer("POST", f"{ISSUES}/2/comments", {"content": "Seen"})
    assert status == 201 and comment["author"] == "issues (broker)"
    assert set(comment) == COMMENT_KEYS
    status, made = tracker.answer("POST", ISSUES, {"title": "New one"})
    assert status == 201 and made["id"] == 3 and made["reporter"] == "issues (broker)"
    assert made["status"] == "new" and made["comments"] == []
    status, updated = tracker.answer("PUT", f"{ISSUES}/3", {"status": "wontfix"})
    assert status == 200 and updated["status"] == "wontfix"


def test_the_grant_decides(tracker: Tracker) -> None:
    other = "/1.0/repositories/eve/open/issues"
    assert tracker.answer("GET", other)[0] == 404
    read_only = ("issues:read",)
    status, refused = tracker.answer("POST", f"{ISSUES}/1/comments", {"content": "x"}, read_only)
    assert status == 403 and "issues:write" in refused["error"]["message"]
    assert tracker.answer("GET", f"{ISSUES}/1")[1]["comment_count"] == 0
