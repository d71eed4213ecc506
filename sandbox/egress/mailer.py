"""Mail sent on a broker's behalf: ``POST http://brokerage.internal/mail``.

The broker supplies recipients, subject and body; the platform supplies the
rest. Rules:

- From is always ``commits-noreply@<mail domain>`` (as Bitbucket's was
  ``commits-noreply@bitbucket.org``); a broker cannot set From, Reply-To, Cc,
  Bcc or any other header.
- Recipients are bare addresses (``user@example.com``), at most
  ``max_recipients`` distinct ones, optionally limited to operator-listed domains.
- No CR, LF or NUL in the subject; size caps on subject and body.
"""

from __future__ import annotations

import json
import re
import smtplib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import NoReturn

from brokerage.sandbox.egress.errors import EgressRefusedError, MailDeliveryError, Refusal

SENDER_LOCAL_PART = "commits-noreply"

_ADDRESS = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}"
    r"@(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)
_FIELDS = {"to", "subject", "body", "html"}


@dataclass(frozen=True)
class MailConfig:
    """Where and how mail leaves the platform."""

    host: str
    port: int
    domain: str
    """mail domain: From is ``commits-noreply@<domain>``"""
    max_recipients: int = 20
    """most distinct recipients in one message"""
    max_subject_chars: int = 998
    """RFC 5322's line limit"""
    max_body_bytes: int = 512 * 1024
    """cap on body plus html, UTF-8 encoded"""
    timeout_seconds: float = 10.0
    """SMTP connect and command timeout"""
    allowed_domains: tuple[str, ...] = ()
    """when non-empty, recipients must be in one of these domains"""

    @property
    def sender(self) -> str:
        return f"{SENDER_LOCAL_PART}@{self.domain}"


@dataclass(frozen=True)
class MailRequest:
    """A validated ``/mail`` request."""

    to: tuple[str, ...]
    subject: str
    body: str
    html: str | None = None

    @classmethod
    def from_json(cls, data: bytes, config: MailConfig) -> MailRequest:
        """Parse and validate the request body; ``MAIL_INVALID`` on any broken rule."""
        try:
            fields = json.loads(data)
        except ValueError:
            _invalid("the body is not JSON")
        if not isinstance(fields, dict) or set(fields) - _FIELDS:
            _invalid(f"expected a JSON object with keys {sorted(_FIELDS)}")
        request = cls(
            to=_recipients(fields.get("to"), config),
            subject=_subject(fields.get("subject"), config),
            body=_text(fields.get("body"), "body"),
            html=None if fields.get("html") is None else _text(fields["html"], "html"),
        )
        if len(request.body.encode()) + len((request.html or "").encode()) > config.max_body_bytes:
            _invalid(f"body larger than {config.max_body_bytes} bytes")
        return request


def _invalid(detail: str) -> NoReturn:
    raise EgressRefusedError(Refusal.MAIL_INVALID, detail)


def _recipients(value: object, config: MailConfig) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        _invalid("'to' must be a non-empty list of addresses")
    addresses: list[str] = []
    for address in value:
        if not isinstance(address, str) or not _ADDRESS.fullmatch(address):
            _invalid(f"not a bare email address: {address!r}")
        domain = address.rsplit("@", 1)[1].lower()
        if config.allowed_domains and domain not in config.allowed_domains:
            _invalid(f"recipient domain {domain} is not allowed")
        if address.lower() not in (a.lower() for a in addresses):
            addresses.append(address)
    if len(addresses) > config.max_recipients:
        _invalid(f"more than {config.max_recipients} recipients")
    return tuple(addresses)


def _subject(value: object, config: MailConfig) -> str:
    subject = _text(value, "subject")
    if any(c in subject for c in "\r\n\0"):
        _invalid("the subject contains CR, LF or NUL")
    if len(subject) > config.max_subject_chars:
        _invalid(f"subject longer than {config.max_subject_chars} characters")
    return subject


def _text(value: object, name: str) -> str:
    if not isinstance(value, str):
        _invalid(f"'{name}' must be a string")
    if "\0" in value:
        _invalid(f"'{name}' contains NUL")
    return value


class Mailer:
    """Sends :class:`MailRequest`\\ s through the configured SMTP server."""

    def __init__(self, config: MailConfig) -> None:
        self.config = config

    def compose(
        self, request: MailRequest, headers: Mapping[str, str] | None = None
    ) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.config.sender
        message["To"] = ", ".join(request.to)
        message["Subject"] = request.subject
        message["Date"] = format_datetime(datetime.now(UTC))
        message["Message-ID"] = make_msgid(domain=self.config.domain)
        message["Auto-Submitted"] = "auto-generated"
        for name, value in (headers or {}).items():
            message[name] = value
        message.set_content(request.body)
        if request.html is not None:
            message.add_alternative(request.html, subtype="html")
        return message

    def send(self, request: MailRequest, headers: Mapping[str, str] | None = None) -> str:
        """Send one message; return its Message-ID. ``MailDeliveryError`` if SMTP fails."""
        message = self.compose(request, headers)
        try:
            with smtplib.SMTP(
                self.config.host, self.config.port, timeout=self.config.timeout_seconds
            ) as smtp:
                smtp.send_message(message, from_addr=self.config.sender, to_addrs=list(request.to))
        except (OSError, smtplib.SMTPException) as exc:
            raise MailDeliveryError(f"SMTP {self.config.host}:{self.config.port}: {exc}") from exc
        return str(message["Message-ID"])
