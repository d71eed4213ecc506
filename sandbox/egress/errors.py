"""Errors of the egress gateway (its proxy, policy, mailer and platform relay).

::

    BrokerageError
    └── GatewayError
        ├── GatewayConfigError   the operator's gateway settings are unsafe or malformed
        ├── EgressRefusedError   the policy refuses a request; answered with ``status``
        ├── UpstreamError        the allowed target could not be reached or timed out
        └── MailDeliveryError    the SMTP server refused or could not be reached

A refusal is a normal outcome (logged against the delivery, answered to the
broker); only ``GatewayConfigError`` stops anything, and only at start-up.
"""

from __future__ import annotations

from enum import StrEnum

from brokerage.core.errors import BrokerageError


class Refusal(StrEnum):
    """Why the gateway refused a request; the code brokers see in ``X-Brokerage-Refused``."""

    BAD_REQUEST = "bad_request"  # unparsable, CR/LF/NUL, smuggling-shaped framing
    BAD_HOST = "bad_host"  # not a valid host name or IP literal
    HOST_NOT_ALLOWED = "host_not_allowed"  # not in the manifest's egress list
    PORT_NOT_ALLOWED = "port_not_allowed"
    ADDRESS_DENIED = "address_denied"  # loopback, private, metadata, ...
    UNRESOLVABLE = "unresolvable"
    TOO_LARGE = "too_large"  # a per-request size cap
    RUN_CAP = "run_cap"  # a per-run cap (requests, bytes, time, mails)
    RATE_LIMITED = "rate_limited"  # over a rate limit for longer than the bounded wait
    NO_RUN = "no_run"  # nothing is running in this sandbox
    RUN_ENDED = "run_ended"  # the run ended while the request was in flight
    NOT_FOUND = "not_found"  # an unknown path on the reserved host
    MAIL_INVALID = "mail_invalid"  # recipients, subject or body break the mail rules
    API_DENIED = "api_denied"  # no platform API for this broker


REFUSAL_STATUS: dict[Refusal, int] = {
    Refusal.BAD_REQUEST: 400,
    Refusal.BAD_HOST: 400,
    Refusal.TOO_LARGE: 413,
    Refusal.RATE_LIMITED: 429,
    Refusal.RUN_CAP: 429,
    Refusal.NOT_FOUND: 404,
    Refusal.MAIL_INVALID: 400,
    Refusal.UNRESOLVABLE: 502,
}
"""HTTP status answered for each refusal; anything not listed is 403."""


class GatewayError(BrokerageError):
    """Raised by the egress gateway."""


class GatewayConfigError(GatewayError):
    """The gateway configuration is malformed or would weaken the guard (e.g. 0.0.0.0/0)."""


class EgressRefusedError(GatewayError):
    """The policy refuses this request; ``reason`` is the code, the message the detail."""

    def __init__(self, reason: Refusal, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail

    @property
    def status(self) -> int:
        return REFUSAL_STATUS.get(self.reason, 403)


class UpstreamError(GatewayError):
    """An allowed target failed: connection refused, reset, or timed out (``status`` 502/504)."""

    def __init__(self, detail: str, status: int = 502) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status


class MailDeliveryError(GatewayError):
    """The SMTP server could not be reached or refused the message."""
