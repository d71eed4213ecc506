"""Fixtures every test area may use: a configured app on a fresh database.

Databases: SQLite always; PostgreSQL when ``BROKERAGE_TEST_DATABASE_URL`` names a
server database (``scripts/test`` starts one and sets it). Under CI a missing
PostgreSQL is an error, never a silent skip.
"""

from __future__ import annotations

import base64
import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from brokerage.core.accounts import Role, User
from brokerage.core.tables import Base
from brokerage.platform import accounts, repositories
from brokerage.platform.app import create_app
from brokerage.platform.db import make_engine, session_scope
from brokerage.platform.models import Repository
from brokerage.platform.runtime import Runtime

TEST_FIELD_KEY = "x2qyJ1K9d6Yq0xg0c3cQ2wq4m7j0T8WZ8h3xYl5x0s8="
PASSWORD = "correct horse battery"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def postgres_url() -> str:
    url = os.environ.get("BROKERAGE_TEST_DATABASE_URL", "")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("CI must test PostgreSQL: scripts/test sets BROKERAGE_TEST_DATABASE_URL")
        pytest.skip("no PostgreSQL: set BROKERAGE_TEST_DATABASE_URL (scripts/test does)")
    return url


SCHEMAS_MADE: list[str] = []
"""URLs of the PostgreSQL schemas this test session made (dropped at its end)"""


@pytest.fixture(scope="session", autouse=True)
def drop_test_schemas() -> Iterator[None]:
    yield
    for url in SCHEMAS_MADE:
        drop_postgres_schema(url)


def fresh_postgres_schema(url: str) -> str:
    """A URL whose connections use a new, empty schema of their own (``search_path``), so
    tests never share tables — not with each other, nor with a concurrent test run."""
    schema = "t_" + uuid.uuid4().hex[:16]
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


def drop_postgres_schema(url: str) -> None:
    """Drop the schema :func:`fresh_postgres_schema` made (best effort, at teardown)."""
    schema = url.rsplit("search_path%3D", 1)[-1]
    engine = make_engine(url.split("?", 1)[0])
    with contextlib.suppress(Exception), engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


def build_app(tmp_path: Path, database: str = "sqlite", **overrides: Any) -> Flask:
    config: dict[str, Any] = {
        "DATA_DIR": str(tmp_path / "data"),
        "FIELD_KEYS": TEST_FIELD_KEY,
        "SECRET_KEY": "test-secret",
        "TESTING": True,
    }
    if database == "postgresql":
        config["DATABASE_URL"] = postgres_url()
        config["DATABASE_URL"] = fresh_postgres_schema(config["DATABASE_URL"])
        SCHEMAS_MADE.append(config["DATABASE_URL"])
    config.update(overrides)
    return create_app(config)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> str:
    """Which database the ``app`` fixture uses; override it to pin one."""
    return str(request.param)


@pytest.fixture
def app(tmp_path: Path, database: str) -> Iterator[Flask]:
    app = build_app(tmp_path, database)
    yield app
    app.extensions["brokerage.engine"].dispose()


@pytest.fixture
def runtime(app: Flask) -> Runtime:
    """The ``app`` fixture's runtime (engine, sessions, cipher, Redis queue)."""
    found: Runtime = app.extensions["brokerage.runtime"]
    return found


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


class Seeder:
    """Creates users and repositories straight in the database, for test set-up."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def user(self, username: str, *roles: Role, password: str = PASSWORD) -> User:
        with session_scope(self.app.extensions["brokerage.sessionmaker"]) as session:
            return accounts.create_user(
                session, username, password, f"{username}@example.org", set(roles)
            )

    def repo(
        self,
        owner: str,
        slug: str,
        *,
        is_private: bool = True,
        scm: str = "git",
        admins: tuple[str, ...] = (),
    ) -> Repository:
        with session_scope(self.app.extensions["brokerage.sessionmaker"]) as session:
            repo = repositories.create_repository(
                session,
                accounts.get_user(session, owner),
                slug,
                slug=slug,
                is_private=is_private,
                scm=scm,
            )
            for name in admins:
                repositories.add_admin(session, repo, name)
            return repo

    def token(self, username: str) -> str:
        with session_scope(self.app.extensions["brokerage.sessionmaker"]) as session:
            _token, secret = accounts.issue_token(
                session, accounts.get_user(session, username), "test"
            )
            return secret


@pytest.fixture
def seed(app: Flask) -> Seeder:
    return Seeder(app)


def post_fields(url: str) -> list[dict[str, str]]:
    """A POST service's fields as the API shows them: the seed's ``URL``, then Brokerage's
    additive optional fields at their defaults."""
    return [
        {"name": "URL", "value": url},
        {"name": "Content type", "value": "application/x-www-form-urlencoded"},
        {"name": "Secret", "value": ""},
        {"name": "Branches", "value": ""},
    ]


def basic(username: str, password: str = PASSWORD) -> dict[str, str]:
    """An ``Authorization`` header for HTTP Basic."""
    raw = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


SESSION_TABLES = {"sign_in_failures", "web_sessions"}
"""tables that signing in and out change on purpose (a refused sign-in is counted; a
session is a row from sign-in to sign-out): not part of what a refused request may touch"""


def snapshot(app: Flask) -> dict[str, list[str]]:
    """Every row of every table (less last-use timestamps): tests compare it before and after
    a refused request to show that nothing changed."""
    engine = app.extensions["brokerage.engine"]
    shot: dict[str, list[str]] = {}
    with engine.connect() as conn:
        for name, table in Base.metadata.tables.items():
            if name in SESSION_TABLES:
                continue
            columns = [c for c in table.columns if c.name != "last_used_at"]
            rows = conn.execute(table.select().with_only_columns(*columns)).all()
            shot[name] = sorted(repr(tuple(row)) for row in rows)
    return shot


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A real redis-server of the test's own, on a free port, that a test may stop and start."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: Any = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import subprocess
        import time

        import redis

        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        for _ in range(200):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


class SmtpSink:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps every message it receives."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[Any] = []
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802
        from email import message_from_bytes, policy

        message = message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append(
            {"from": envelope.mail_from, "to": list(envelope.rcpt_tos), "message": message}
        )
        return "250 OK"

    def __enter__(self) -> SmtpSink:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink
