"""Mail through ``http://brokerage.internal/mail`` to a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from brokerage.sandbox.egress.mailer import MailConfig
from brokerage.sandbox.egress.proxy import REFUSED_HEADER

MAIL_URL = "http://brokerage.internal/mail"


@dataclass
class Inbox:
    messages: list[Any] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp(free_port) -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


@pytest.fixture
def mail_side(smtp, make_gateway, broker_side):
    _, port = smtp
    config = MailConfig("127.0.0.1", port, "brokerage.example", max_recipients=3)
    return broker_side(["hooks.example.com"], via=make_gateway(mail=config))


def _parse(envelope: Any) -> email.message.EmailMessage:
    return email.message_from_bytes(envelope.content, policy=email.policy.default)


def test_mail_is_sent_from_the_platform_address(smtp, mail_side) -> None:
    inbox, _ = smtp
    reply = mail_side.session.post(
        MAIL_URL,
        json={"to": ["dev@example.com"], "subject": "[repo] 1 commit", "body": "hello"},
        timeout=10,
    )
    assert reply.status_code == 202 and reply.json()["to"] == ["dev@example.com"]
    [envelope] = inbox.messages
    assert envelope.mail_from == "commits-noreply@brokerage.example"
    assert envelope.rcpt_tos == ["dev@example.com"]
    message = _parse(envelope)
    assert message["From"] == "commits-noreply@brokerage.example"
    assert message["Subject"] == "[repo] 1 commit"
    assert message["X-Brokerage-Delivery"] == "delivery-0"
    assert message.get_content().strip() == "hello"
    [entry] = mail_side.end_run()
    assert (entry["method"], entry["url"], entry["status"]) == ("POST", MAIL_URL, 202)


def test_html_goes_as_an_alternative(smtp, mail_side) -> None:
    inbox, _ = smtp
    document = {"to": ["a@example.com"], "subject": "s", "body": "plain", "html": "<b>rich</b>"}
    assert mail_side.session.post(MAIL_URL, json=document, timeout=10).status_code == 202
    message = _parse(inbox.messages[0])
    html = message.get_body(("html",))
    assert html is not None and html.get_content().strip() == "<b>rich</b>"


@pytest.mark.parametrize(
    "document",
    [
        {"to": ["a@example.com"], "subject": "s", "body": "b", "from": "ceo@example.com"},
        {"to": ["a@example.com"], "subject": "s", "body": "b", "headers": {"Bcc": "x@y.z"}},
        {"to": ["a@example.com"], "subject": "hi\r\nBcc: spy@evil.example", "body": "b"},
        {"to": ["a@example.com"], "subject": "hi\nX: y", "body": "b"},
        {"to": ["a@example.com, spy@evil.example"], "subject": "s", "body": "b"},
        {"to": ["Boss <a@example.com>"], "subject": "s", "body": "b"},
        {"to": ["a@example.com\r\nRCPT TO:<spy@evil.example>"], "subject": "s", "body": "b"},
        {"to": ["not-an-address"], "subject": "s", "body": "b"},
        {"to": [], "subject": "s", "body": "b"},
        {"to": ["a@x.com", "b@x.com", "c@x.com", "d@x.com"], "subject": "s", "body": "b"},
        {"to": ["a@example.com"], "subject": 5, "body": "b"},
        {"to": ["a@example.com"], "subject": "s", "body": "b\x00"},
        {"to": ["a@example.com"], "subject": "s", "body": "x" * 600_000},
    ],
)
def test_mail_rules_are_enforced(document: dict[str, Any], smtp, mail_side) -> None:
    inbox, _ = smtp
    reply = mail_side.session.post(MAIL_URL, json=document, timeout=10)
    assert (reply.status_code, reply.headers[REFUSED_HEADER]) == (400, "mail_invalid")
    assert inbox.messages == []
    assert mail_side.end_run()[0]["refused"] == "mail_invalid"


def test_a_mail_body_that_is_not_json_is_refused(mail_side) -> None:
    reply = mail_side.session.post(MAIL_URL, data=b"to=a@example.com", timeout=10)
    assert reply.headers[REFUSED_HEADER] == "mail_invalid"


def test_mail_per_run_is_capped(smtp, make_gateway, broker_side) -> None:
    inbox, port = smtp
    config = MailConfig("127.0.0.1", port, "brokerage.example")
    side = broker_side([], via=make_gateway(mail=config, max_mails_per_run=2))
    document = {"to": ["a@example.com"], "subject": "s", "body": "b"}
    statuses = [side.session.post(MAIL_URL, json=document, timeout=10).status_code for _ in "abc"]
    assert statuses == [202, 202, 429]
    assert len(inbox.messages) == 2


def test_recipient_domains_can_be_limited(smtp, make_gateway, broker_side) -> None:
    _, port = smtp
    config = MailConfig("127.0.0.1", port, "b.example", allowed_domains=("corp.example",))
    side = broker_side([], via=make_gateway(mail=config))
    ok = {"to": ["a@corp.example"], "subject": "s", "body": "b"}
    assert side.session.post(MAIL_URL, json=ok, timeout=10).status_code == 202
    bad = {"to": ["a@elsewhere.example"], "subject": "s", "body": "b"}
    assert side.session.post(MAIL_URL, json=bad, timeout=10).status_code == 400


def test_an_smtp_outage_is_a_502_and_is_logged(make_gateway, broker_side, free_port) -> None:
    config = MailConfig("127.0.0.1", free_port(), "brokerage.example", timeout_seconds=2)
    side = broker_side([], via=make_gateway(mail=config))
    document = {"to": ["a@example.com"], "subject": "s", "body": "b"}
    assert side.session.post(MAIL_URL, json=document, timeout=10).status_code == 502
    [entry] = side.end_run()
    assert entry["status"] == 502 and "MailDeliveryError" in entry["detail"]


@pytest.mark.parametrize(
    ("method", "url", "reason"),
    [
        ("GET", MAIL_URL, "bad_request"),
        ("POST", "http://brokerage.internal/admin", "not_found"),
        ("POST", "http://brokerage.internal:8080/mail", "port_not_allowed"),
        ("GET", "http://brokerage.internal/api/1.0/user", "api_denied"),
    ],
)
def test_the_reserved_host_serves_nothing_else(method, url, reason, mail_side) -> None:
    reply = mail_side.session.request(method, url, timeout=10)
    assert reply.headers[REFUSED_HEADER] == reason


def test_mail_is_not_configured_by_default(broker_side) -> None:
    side = broker_side([])
    document = {"to": ["a@example.com"], "subject": "s", "body": "b"}
    assert side.session.post(MAIL_URL, json=document, timeout=10).status_code == 404
