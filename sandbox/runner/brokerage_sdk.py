"""The broker SDK: what broker code imports as ``brokerage_sdk``.

Kept small on purpose; richer helpers (gateway session, mail, templates, the
platform API client) build on it. Everything here runs inside the sandbox.

``BaseBroker`` keeps Bitbucket's shape::

    class MyBroker(BaseBroker):
        def handle(self, payload):
            url = self.get_local("URL")
            self.log.info("posting to %s", url)
            return {"posted": True}

Raise :class:`ConfigurationError` when the service's settings are wrong (the
platform may disable the service), :class:`TransientError` when a retry may
succeed.

The richer helpers live one module each next to this file and are re-exported
here, so broker code imports everything from ``brokerage_sdk`` (docs/vendors.md):
``sdk_http`` (a session through the gateway), ``sdk_signing`` (Standard Webhooks
signatures), ``sdk_mail`` (mail through the platform), ``sdk_templates`` and
``sdk_shortlinks`` (``${...}`` templates, ``${commit.tinyurl}``), ``sdk_api`` (the
platform API of the push's repository), ``sdk_commitmail`` (Bitbucket's commit mails),
``sdk_chat`` (push summaries for chat messages).
"""

from __future__ import annotations

import json
from typing import Any, TextIO

__all__ = [
    "REFUSED_HEADER",
    "BaseBroker",
    "BrokerError",
    "ChatCommit",
    "ConfigurationError",
    "GatewaySession",
    "Logger",
    "PushSummary",
    "RepositoryApi",
    "SignatureError",
    "TransientError",
    "chat_webhook_url",
    "commit_mail_body",
    "commit_mail_subject",
    "delivery_headers",
    "escape_markdown",
    "forward_payload",
    "gateway_session",
    "judge_chat_answer",
    "logger",
    "mail_recipients",
    "push_summary",
    "raise_for_outcome",
    "redact_url",
    "render",
    "send_mail",
    "short_url",
    "template_values",
    "verify_webhook",
    "webhook_headers",
]

ENVELOPE_KEYS = ("service", "broker", "delivery")
"""envelope keys that are not part of the push payload"""


class BrokerError(Exception):
    """Base of the errors a broker raises on purpose."""

    kind = "error"


class ConfigurationError(BrokerError):
    """The service's settings are wrong; retrying will not help."""

    kind = "configuration"


class TransientError(BrokerError):
    """Something outside failed for now; a retry may succeed."""

    kind = "transient"


class Logger:
    """Log lines that travel to the run's result on the runner's channel."""

    def __init__(self) -> None:
        self._sink: TextIO | None = None

    def attach(self, sink: TextIO | None) -> None:
        self._sink = sink

    def _emit(self, level: str, message: str, args: tuple[Any, ...]) -> None:
        text = message % args if args else str(message)
        if self._sink is None:
            return
        self._sink.write(json.dumps({"log": f"{level} {text}"}) + "\n")
        self._sink.flush()

    def debug(self, message: str, *args: Any) -> None:
        self._emit("DEBUG", message, args)

    def info(self, message: str, *args: Any) -> None:
        self._emit("INFO", message, args)

    def warning(self, message: str, *args: Any) -> None:
        self._emit("WARNING", message, args)

    def error(self, message: str, *args: Any) -> None:
        self._emit("ERROR", message, args)


logger = Logger()
"""the one logger of this run"""


def forward_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """The push payload without the service's settings (secrets) and run metadata."""
    return {key: value for key, value in payload.items() if key not in ENVELOPE_KEYS}


class BaseBroker:
    """Bitbucket's broker base class: subclass it and implement ``handle``."""

    log = logger
    payload: dict[str, Any] = {}  # noqa: RUF012 - the runner sets it per instance

    def get_local(self, key: str, default: Any = None) -> Any:
        """The service field ``key`` (its label, case-insensitive), else ``default``."""
        service = self.payload.get("service") or {}
        for label, value in service.items():
            if str(label).lower() == str(key).lower():
                return value
        return default

    def handle(self, payload: dict[str, Any]) -> Any:
        raise NotImplementedError("a broker implements handle(payload)")


# -- the richer helpers, one module each next to this file (imported last: they use the
# -- errors above) -----------------------------------------------------------------------

from sdk_api import RepositoryApi  # noqa: E402
from sdk_chat import ChatCommit, PushSummary, push_summary  # noqa: E402
from sdk_chat import backslash_escape as escape_markdown  # noqa: E402
from sdk_chat import judge as judge_chat_answer  # noqa: E402
from sdk_chat import webhook_url as chat_webhook_url  # noqa: E402
from sdk_commitmail import body as commit_mail_body  # noqa: E402
from sdk_commitmail import recipients as mail_recipients  # noqa: E402
from sdk_commitmail import subject as commit_mail_subject  # noqa: E402
from sdk_http import (  # noqa: E402
    REFUSED_HEADER,
    GatewaySession,
    delivery_headers,
    gateway_session,
    raise_for_outcome,
)
from sdk_http import redact as redact_url  # noqa: E402
from sdk_mail import send_mail  # noqa: E402
from sdk_shortlinks import short_url  # noqa: E402
from sdk_signing import SignatureError, webhook_headers  # noqa: E402
from sdk_signing import verify as verify_webhook  # noqa: E402
from sdk_templates import render, template_values  # noqa: E402
