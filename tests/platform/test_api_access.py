"""Delivery tokens: the gateway's forwarder reaches the app for a running delivery of a
broker whose manifest declares the permission, for its own repository only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from brokerage.platform.api import broker_access as api_access
from brokerage.platform.deliveries.states import claim
from brokerage.platform.models import Delivery
from brokerage.sandbox.egress.relay import ApiCall
from tests.platform.deliveries.conftest import Repo, commit, push_body
from tests.support import RedisServer, Seeder, basic, build_app

ISSUES = "/1.0/repositories/marcus/project-x/issues"


@pytest.fixture
def app(tmp_path: Path, database: str, redis_server: RedisServer) -> Iterator[Flask]:
    app = build_app(tmp_path, database, REDIS_URL=redis_server.url)
    yield app
    app.extensions["brokerage.runtime"].close()


@pytest.fixture
def delivery(app: Flask, client: FlaskClient, seed: Seeder) -> str:
    """A running delivery of the Issues broker on marcus/project-x, with issue #1."""
    repo = Repo(client, seed)
    repo.add_service("type=Issues")
    client.post(ISSUES, json={"title": "It breaks"}, headers=basic("marcus"))
    assert repo.push(push_body(commit(1, "fixes #1"))).status_code in (200, 201, 202)
    with app.extensions["brokerage.sessionmaker"]() as session:
        delivery_id = session.query(Delivery.id).scalar()
        attempt = claim(session.connection(), delivery_id, "test-worker")
        session.commit()
        assert attempt is not None and attempt.number == 1
    return str(delivery_id)


def call(delivery_id: str, path: str, method: str = "GET", body: bytes = b"",
         permissions: tuple[str, ...] = ("issues:write",)) -> ApiCall:  # fmt: skip
    return ApiCall(method=method, path=path, headers={"content-type": "application/json"},
                   body=body, delivery_id=delivery_id, broker="issues", version="1.0.0",
                   permissions=permissions)  # fmt: skip


def test_a_running_delivery_reads_and_writes_its_tracker(app: Flask, delivery: str) -> None:
    forward = api_access.AppApiForwarder(app)
    listed = forward(call(delivery, ISSUES))
    assert listed.status == 200, listed.body
    body = b'{"command": "resolve", "raw_node": "' + b"a" * 40 + b'"}'
    applied = forward(call(delivery, f"{ISSUES}/1/changesets", "POST", body))
    assert applied.status == 201, applied.body
    assert b'"resolved"' in applied.body
    assert applied.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    ("path", "permissions", "status"),
    [
        ("/1.0/repositories/marcus/other/issues", ("issues:write",), 404),
        (ISSUES, ("repository:admin",), 403),
        ("/1.0/repositories/marcus/project-x/services", ("issues:write",), 401),
    ],
)
def test_the_grant_reaches_nothing_else(
    app: Flask, seed: Seeder, delivery: str, path: str, permissions: tuple[str, ...], status: int
) -> None:
    seed.repo("marcus", "other", is_private=False)
    reply = api_access.AppApiForwarder(app)(call(delivery, path, permissions=permissions))
    assert reply.status == status, reply.body


def test_no_token_outlives_its_run(app: Flask, delivery: str) -> None:
    with app.extensions["brokerage.sessionmaker"]() as session:
        found = session.get(Delivery, delivery)
        assert found is not None
        found.status = "succeeded"
        session.commit()
    reply = api_access.AppApiForwarder(app)(call(delivery, ISSUES))
    assert reply.status == 401
    assert b"not running" in reply.body


@pytest.mark.parametrize("tamper", ["signature", "delivery"])
def test_forged_tokens_are_refused(
    app: Flask, client: FlaskClient, delivery: str, tamper: str
) -> None:
    token = api_access.mint(app.config["SECRET_KEY"], delivery, ["issues:write"])
    if tamper == "signature":
        token = token[:-4] + "0000"
    else:
        token = api_access.mint("another key", delivery, ["issues:write"])
    response: Any = client.get(ISSUES, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
