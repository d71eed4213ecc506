"""Mail links to pages a person opens, never to API endpoints: the commit mail's Repository
URL, the auto-disable mail's Enable, and the mail that a service upgrade waits for an
answer. Every mail goes through the real SMTP server fixture; every link is then opened."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from brokerage.sandbox.fake import FakeBackend
from brokerage.sandbox.interface import RunResult, RunStatus
from tests.builtin_brokers.harness import BrokerRig
from tests.platform.web.conftest import Submissions, WebClient
from tests.support import Seeder, SmtpSink, basic

API = "/1.0/repositories/marcus/project-x"
SERVICES = "/repos/marcus/project-x/services"
LINK = re.compile(r"https?://\S+")


def links(body: str, app: Flask) -> list[str]:
    """The mail's links, as paths of this app (its CANON_URL taken off)."""
    canon = app.config["CANON_URL"].rstrip("/")
    found = LINK.findall(body)
    assert all(link.startswith(canon) for link in found), found
    return [link.removeprefix(canon) for link in found]


def mails_to(sink: SmtpSink, address: str) -> list[Any]:
    return [m["message"] for m in sink.messages if address in m["to"]]


def failing(*_args: Any) -> RunResult:
    error = {"type": "ConfigurationError", "kind": "configuration", "message": "bad URL"}
    return RunResult(status=RunStatus.FAILED, exit_code=1, error=error)


@pytest.mark.parametrize("fake", [FakeBackend(handler=failing)])
def test_the_auto_disable_mail_links_to_the_service_page(
    app: Flask, web: WebClient, people: Seeder, deliver: Any, fake: FakeBackend, smtp: SmtpSink
) -> None:
    web.sign_in("marcus")
    web.post(SERVICES, {"type": "POST", "f:URL": "http://127.0.0.1:9/hook"})
    for _ in range(2):  # AUTO_DISABLE_AFTER=2
        web.post(f"{SERVICES}/1/test")
        deliver()
    [mail] = mails_to(smtp, "marcus@example.org")
    body = mail.get_content()
    assert "/1.0/" not in body and "POST http" not in body
    service_page, deliveries = links(body, app)
    assert service_page == f"{SERVICES}/1"
    assert deliveries == "/repos/marcus/project-x/deliveries?service=1"
    page = web.get(service_page)
    assert page.status_code == 200 and ">Enable" in page.text
    assert web.get(deliveries).status_code == 200
    web.post(f"{service_page}/enable")
    assert "disabled after" not in web.get(service_page).text


def test_the_commit_mail_links_to_the_repository_page(
    app: Flask, client: FlaskClient, web: WebClient, people: Seeder, real_deliver: Any,
    rig: BrokerRig,
) -> None:  # fmt: skip
    """The Email broker, run for real in the sandbox, mails through the gateway."""
    made = client.post(
        f"{API}/services", data={"type": "Email", "Email": "team@example.com"},
        headers=basic("marcus"),
    )  # fmt: skip
    assert made.status_code == 200, made.json
    client.post(f"{API}/services/{made.json['id']}/test", headers=basic("marcus"))
    real_deliver()
    [mail] = mails_to(rig.mail, "team@example.com")
    body = mail.get_content()
    repository_url = body.split("Repository URL: ", 1)[1].split()[0]
    [path] = links(repository_url, app)
    assert path == "/repos/marcus/project-x/"
    assert web.get(path).status_code == 302  # signed out: to the sign-in page, then back
    web.sign_in("marcus")
    page = web.get(path)
    assert page.status_code == 200 and "marcus/project-x" in page.text


def test_an_upgrade_waiting_for_an_answer_is_mailed_with_its_page(
    app: Flask, client: FlaskClient, web: WebClient, people: Seeder, submissions: Submissions,
    smtp: SmtpSink,
) -> None:  # fmt: skip
    first = submissions.upload("vera")
    submissions.verify()
    submissions.decide(first, "approve")
    made = client.post(
        f"{API}/services", data={"type": "Acme Hook", "URL": "https://hooks.acme.test/in"},
        headers=basic("marcus"),
    )  # fmt: skip
    assert made.status_code == 200, made.json
    same = submissions.upload("vera", version="1.0.1")
    submissions.verify()
    submissions.decide(same, "approve")  # asks for no more: moves on, nobody is asked
    assert mails_to(smtp, "marcus@example.org") == []

    wider = submissions.upload("vera", version="1.1.0", egress=["hooks.acme.test", "api.acme.test"])
    submissions.verify()
    submissions.decide(wider, "approve")
    [mail] = mails_to(smtp, "marcus@example.org")
    assert mail["Subject"] == "[marcus/project-x] Acme Hook 1.1.0 waits for your answer"
    body = mail.get_content()
    assert "egress to api.acme.test" in body and "/1.0/" not in body
    [path] = links(body, app)
    assert path == f"{SERVICES}/1#upgrade"
    web.sign_in("marcus")
    page = web.get(path.split("#")[0]).text
    assert 'id="upgrade"' in page and "Accept version 1.1.0" in page
