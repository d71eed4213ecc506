"""Fixtures for the push → delivery pipeline: an app wired to a real Redis and SMTP server,
a repository with a push token and services, and a dispatcher on the fake sandbox."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from brokerage.platform.deliveries.dispatch import Dispatcher
from brokerage.platform.runtime import Runtime
from brokerage.sandbox.fake import FakeBackend
from tests.support import FORM, RedisServer, Seeder, SmtpSink, basic, build_app


@pytest.fixture
def app(
    tmp_path: Path, database: str, redis_server: RedisServer, smtp: SmtpSink
) -> Iterator[Flask]:
    app = build_app(
        tmp_path,
        database,
        REDIS_URL=redis_server.url,
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=smtp.port,
        MAIL_DOMAIN="brokerage.test",
        RETRY_DELAYS=[0.01, 0.01, 0.01],
        AUTO_DISABLE_AFTER=3,
    )
    yield app
    app.extensions["brokerage.runtime"].close()


@pytest.fixture
def fake() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def dispatcher(runtime: Runtime, fake: FakeBackend) -> Dispatcher:
    return Dispatcher(runtime, fake, worker_name="test-worker")


class Repo:
    """marcus/project-x with a push token, and helpers to add services and push."""

    def __init__(self, client: FlaskClient, seed: Seeder) -> None:
        self.client = client
        seed.user("marcus")
        seed.repo("marcus", "project-x")
        self.auth = basic("marcus")
        response = client.post("/1.0/repositories/marcus/project-x/push-token", headers=self.auth)
        self.token = str(response.get_json()["token"])

    def add_service(self, body: str) -> int:
        response = self.client.post(
            "/1.0/repositories/marcus/project-x/services", data=body, headers={**self.auth, **FORM}
        )
        assert response.status_code == 200, response.json
        return int(response.get_json()["id"])

    def push(self, body: dict[str, Any], token: str | None = None) -> Any:
        return self.client.post(
            "/1.0/repositories/marcus/project-x/pushes",
            json=body,
            headers={"Authorization": f"Bearer {token or self.token}"},
        )

    def get(self, path: str) -> Any:
        response = self.client.get(f"/1.0/repositories/marcus/project-x/{path}", headers=self.auth)
        assert response.status_code == 200, response.json
        return response.json


@pytest.fixture
def repo(client: FlaskClient, seed: Seeder) -> Repo:
    return Repo(client, seed)


def commit(
    n: int, message: str = "Added some more things to somefile.py\n", branch: str = "master"
) -> dict[str, Any]:
    raw = f"{n:040x}"
    return {
        "author": "marcus",
        "branch": branch,
        "files": [{"file": "somefile.py", "type": "modified"}],
        "message": message,
        "node": raw[:12],
        "parents": [f"{n - 1:040x}"[:12]],
        "raw_author": "Marcus Bertrand <marcus@somedomain.com>",
        "raw_node": raw,
        "revision": None,
        "size": -1,
        "timestamp": "2012-05-30 05:58:56",
        "utctimestamp": "2012-05-30 03:58:56+00:00",
    }


def push_body(*commits: dict[str, Any], push_id: str | None = None) -> dict[str, Any]:
    return {
        "scm": "git",
        "user": "marcus",
        "push_id": push_id or str(uuid.uuid4()),
        "truncated": False,
        "refs": [
            {"ref": "refs/heads/master", "type": "branch", "old": f"{0:040x}", "new": f"{1:040x}"}
        ],
        "commits": list(commits),
    }
