"""Fixtures for the web pages: an app on a real Redis and SMTP server, the users and
repository the stories need, a signed-in test client, and (for the browser tests) the
app served on 127.0.0.1 with a real headless Chromium pointed at it."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from rq import SimpleWorker
from rq.serializers import JSONSerializer

from brokerage.core.accounts import Role
from brokerage.platform import repositories
from brokerage.platform.db import session_scope
from brokerage.platform.deliveries import jobs as tasks
from brokerage.platform.deliveries.dispatch import Dispatcher
from brokerage.platform.issues import tracker
from brokerage.platform.runtime import Runtime
from brokerage.sandbox.fake import FakeBackend
from brokerage.sandbox.interface import BrokerBundle, Limits, RunResult, RunStatus
from tests.builtin_brokers.harness import BrokerRig, docker_image, rig, session_rig  # noqa: F401
from tests.support import PASSWORD, RedisServer, Seeder, SmtpSink, basic, build_app

if TYPE_CHECKING:
    from selenium import webdriver

    from tests.platform.web.browser import Browser

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


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
        AUTO_DISABLE_AFTER=2,
    )
    yield app
    app.extensions["brokerage.runtime"].close()


@pytest.fixture
def people(seed: Seeder) -> Seeder:
    """marcus owns private marcus/project-x (with a push token); eve owns public eve/open;
    olga operates, vera and otto vend, rita reviews, vic vends and reviews."""
    seed.user("marcus")
    seed.user("eve")
    seed.user("olga", Role.OPERATOR)
    seed.user("vera", Role.VENDOR)
    seed.user("rita", Role.REVIEWER)
    seed.user("vic", Role.VENDOR, Role.REVIEWER)
    seed.user("otto", Role.VENDOR)
    seed.repo("marcus", "project-x")
    seed.repo("eve", "open", is_private=False)
    return seed


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no CSRF token"
    return found.group(1)


class WebClient:
    """A test client signed in through the login form, carrying the session's CSRF token."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client
        self.token = ""

    def sign_in(self, username: str, password: str = PASSWORD) -> Any:
        token = csrf_of(self.client.get("/login").text)
        response = self.client.post(
            "/login", data={"username": username, "password": password, "csrf_token": token}
        )
        if response.status_code == 303:
            self.token = csrf_of(self.client.get("/").text)
        return response

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get(path, **kwargs)

    def post(self, path: str, data: dict[str, str] | None = None, **kwargs: Any) -> Any:
        return self.client.post(path, data={"csrf_token": self.token, **(data or {})}, **kwargs)


@pytest.fixture
def web(client: FlaskClient) -> WebClient:
    return WebClient(client)


# -- delivering ----------------------------------------------------------------------

CANNED_REQUESTS = [{
    "at": "2026-01-01T00:00:00.000+00:00", "method": "POST", "url": "http://hooks.example.com/ci",
    "status": 200, "bytes_sent": 1234, "bytes_received": 2, "seconds": 0.0123,
    "address": "203.0.113.7", "refused": None, "detail": None,
}, {
    "at": "2026-01-01T00:00:00.100+00:00", "method": "GET", "url": "http://169.254.169.254/latest",
    "status": 403, "bytes_sent": 0, "bytes_received": 0, "seconds": 0.001,
    "address": None, "refused": "address_denied", "detail": "169.254.169.254 is link-local",
}]  # fmt: skip
"""the gateway's log of one run, in the gateway's entry shape (sandbox/egress/proxy.py)"""


def canned_run(bundle: BrokerBundle, envelope: Any, _limits: Limits) -> RunResult:
    """What the fake sandbox answers: a success with log lines and a request log."""
    return RunResult(
        status=RunStatus.SUCCEEDED, exit_code=0, duration_seconds=0.042,
        result={"message": f"posted {len(envelope['commits'])} commit(s)"},
        logs=[f"{bundle.name}: delivery {envelope['delivery']['id']} attempt "
              f"{envelope['delivery']['attempt']}", "POST http://hooks.example.com/ci -> 200"],
        requests=[dict(r, delivery_id=envelope["delivery"]["id"]) for r in CANNED_REQUESTS],
    )  # fmt: skip


def work_queue(runtime: Runtime) -> None:
    """One RQ worker in burst mode: every job on the queue runs, then it returns."""
    worker = SimpleWorker([runtime.queue], connection=runtime.redis, serializer=JSONSerializer,
                          name=f"web-test-{uuid.uuid4().hex[:8]}")  # fmt: skip
    worker.work(burst=True, logging_level="WARNING")


@pytest.fixture
def fake() -> FakeBackend:
    return FakeBackend(handler=canned_run)


@pytest.fixture
def deliver(runtime: Runtime, fake: FakeBackend) -> Iterator[Any]:
    """``deliver()`` works the real RQ queue in burst mode with a dispatcher on the fake
    sandbox, as ``brokerage worker`` would with a real one."""
    tasks.install(Dispatcher(runtime, fake, worker_name="web-test-worker"))
    yield lambda: work_queue(runtime)
    tasks.install(None)


# -- the browser -----------------------------------------------------------------------


def require_browser() -> None:
    """Fail (CI) or skip (a workstation without it) when Chromium, chromedriver or the
    Selenium client is absent: scripts/setup-browser.sh installs all three."""
    missing = [p for p in ("/usr/bin/chromium", "/usr/bin/chromedriver") if not shutil.which(p)]
    if importlib.util.find_spec("selenium") is None:
        missing.append("the selenium package")
    if missing:
        message = f"{', '.join(missing)} missing: run scripts/setup-browser.sh"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def chromium() -> Iterator[webdriver.Chrome]:
    require_browser()
    from tests.platform.web.browser import start_chromium

    driver = start_chromium()
    yield driver
    driver.quit()


@pytest.fixture
def browser(app: Flask, chromium: webdriver.Chrome) -> Iterator[Browser]:
    from tests.platform.web.browser import Browser, LiveServer

    with LiveServer(app) as server:
        chromium.delete_all_cookies()
        yield Browser(chromium, server.url)
        chromium.delete_all_cookies()


# -- submissions ---------------------------------------------------------------------------


class Submissions:
    """Vendors upload through the REST API; verification runs on the real queue with the
    fake sandbox (as tests/submissions does)."""

    def __init__(self, client: FlaskClient, runtime: Runtime) -> None:
        self.client = client
        self.runtime = runtime

    def upload(self, vendor: str, **manifest_changes: Any) -> int:
        from tests.submissions.conftest import archive, package_files

        response = self.client.post(
            "/1.0/submissions",
            data=archive(package_files(**manifest_changes)),
            headers={**basic(vendor), "Content-Type": "application/gzip"},
        )
        body: dict[str, Any] = response.get_json()
        assert response.status_code == 201, body
        return int(body["id"])

    def verify(self) -> None:
        from brokerage.platform.deliveries import verification_jobs as verification
        from brokerage.submissions.artifacts import store_from_config
        from tests.submissions.conftest import fake_factory

        store = store_from_config(self.runtime.config)
        verification.install(verification.Context(self.runtime, store, fake_factory()))
        try:
            work_queue(self.runtime)
        finally:
            verification.install(None)

    def decide(
        self, version_id: int, decision: str, reviewer: str = "rita", comment: str = ""
    ) -> None:
        response = self.client.post(
            f"/1.0/submissions/{version_id}/decision",
            json={"decision": decision, "comment": comment},
            headers=basic(reviewer),
        )
        assert response.status_code == 200, response.json

    def state(self, version_id: int, who: str = "rita") -> str:
        body: dict[str, Any] = self.client.get(
            f"/1.0/submissions/{version_id}", headers=basic(who)
        ).get_json()
        return str(body["state"])


@pytest.fixture
def submissions(app: Flask, runtime: Runtime) -> Submissions:
    return Submissions(app.test_client(), runtime)


# -- issues ---------------------------------------------------------------------------------


def changeset(n: int, message: str) -> dict[str, str]:
    return {"raw_node": f"{n:040x}", "node": f"{n:012x}", "author": "marcus", "branch": "main",
            "message": message}  # fmt: skip


@pytest.fixture
def issues(app: Flask, people: Seeder) -> None:
    """30 issues on marcus/project-x; #2 resolved by a commit, #3 referenced by one."""
    with session_scope(app.extensions["brokerage.sessionmaker"]) as session:
        repo = repositories.find_repository(session, "marcus", "project-x")
        assert repo is not None
        made = [tracker.create_issue(session, repo, f"Issue number {n}", reporter="eve")
                for n in range(1, 31)]  # fmt: skip
        tracker.apply_changeset(
            session, made[1], "resolve", changeset(1, "Fix the parser, fixes #2")
        )
        tracker.apply_changeset(session, made[2], "link", changeset(2, "Tidy up, refs #3 <b>"))


# -- the real sandbox ------------------------------------------------------------------------


@pytest.fixture
def real_deliver(
    runtime: Runtime,
    rig: BrokerRig,  # noqa: F811 (the fixture)
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Any]:
    """``real_deliver()`` works the queue with a dispatcher on the real Docker sandbox
    behind the real egress gateway (tests/builtin_brokers' rig: a recording receiver on 127.0.0.1
    named ``receiver.test``; Docker is a CI prerequisite). POST's
    manifest opens any *public* host, never 127.0.0.1, so the bundle names the receiver's
    host instead (as tests/builtin_brokers does): the only change to the broker."""
    from brokerage.submissions import bundles
    from tests.builtin_brokers.harness import LIMITS, RECEIVER_HOST, builtin_bundle

    def load(version: Any) -> BrokerBundle:
        found = builtin_bundle(version.broker_type.name)
        if "*" in found.manifest["egress"]:
            return builtin_bundle(version.broker_type.name, egress=[RECEIVER_HOST])
        return found

    monkeypatch.setattr(bundles, "load", load)
    tasks.install(Dispatcher(runtime, rig.backend, LIMITS, worker_name="web-test-docker"))
    yield lambda: work_queue(runtime)
    tasks.install(None)
