"""A vendor's view of their own broker's runs on the platform (``brokerage broker logs``).

Each attempt of every delivery that ran a version of the vendor's broker, newest first,
redacted for the vendor:

- every value of the service's fields (not only passwords: a URL field may carry a token)
  and the repository's owner, slug and name, and the pusher's name, are masked
  wherever they appear (log lines, message, error, the tail of stderr);
- requests show method, host, status and refusal only — never a path or query;
- the repository appears as an opaque service number, the push not at all (no commits).

Only the vendor who owns the broker sees its runs; to anyone else it does not exist.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from brokerage.core.accounts import User
from brokerage.core.errors import BadRequestError, NotFoundError
from brokerage.platform import services
from brokerage.platform.encryption import FieldCipher
from brokerage.platform.models import Delivery, DeliveryAttempt
from brokerage.submissions.fields import MASK
from brokerage.submissions.models import BrokerType, BrokerVersion

DEFAULT_RUNS = 20
MAX_RUNS = 100
STDERR_TAIL_CHARS = 2000
"""characters of the end of stderr shown (a traceback's last frames)"""
MIN_MASKED_CHARS = 4
"""shorter values are not masked (they would mask ordinary words)"""


def clamp_limit(raw: str | None) -> int:
    """``?limit=`` as a number of runs: 1 to ``MAX_RUNS`` (default ``DEFAULT_RUNS``)."""
    if raw is None or raw == "":
        return DEFAULT_RUNS
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_RUNS:
        raise BadRequestError(f"limit: a whole number from 1 to {MAX_RUNS}, got {raw!r}")
    return int(raw)


def owned_broker(session: Session, vendor: User, name: str) -> BrokerType:
    found = session.scalar(select(BrokerType).where(BrokerType.name == name))
    if found is None or found.builtin or found.owner_id != vendor.id:
        raise NotFoundError(f"you have no broker named {name!r}")
    return found


def runs_of(
    session: Session, vendor: User, name: str, cipher: FieldCipher, limit: int = DEFAULT_RUNS
) -> list[dict[str, Any]]:
    """The newest ``limit`` attempts of the vendor's broker ``name``, redacted."""
    broker = owned_broker(session, vendor, name)
    query = (
        select(DeliveryAttempt)
        .join(Delivery, DeliveryAttempt.delivery_id == Delivery.id)
        .join(BrokerVersion, Delivery.broker_version_id == BrokerVersion.id)
        .where(BrokerVersion.broker_type_id == broker.id)
        .order_by(DeliveryAttempt.started_at.desc(), DeliveryAttempt.id.desc())
        .limit(limit)
    )
    return [redacted(attempt, cipher) for attempt in session.scalars(query)]


def hidden_values(delivery: Delivery, cipher: FieldCipher) -> list[str]:
    """What the vendor must not read: the service's field values, the repository's names and
    the pusher's name (longest first, so a value containing another is masked whole)."""
    found: set[str] = set()
    if delivery.service is not None:
        for value in services.values_of(delivery.service, cipher).values():
            items = value if isinstance(value, list) else [value]
            found.update(str(item) for item in items if isinstance(item, str))
    repo = delivery.push.repository
    found.update({repo.owner.username, repo.slug, repo.name, repo.full_name})
    found.add(str(delivery.push.user or ""))
    return sorted((v for v in found if len(v) >= MIN_MASKED_CHARS), key=len, reverse=True)


def _mask(value: Any, hidden: list[str]) -> Any:
    text = json.dumps(value)
    for secret in hidden:
        text = text.replace(json.dumps(secret)[1:-1], MASK)
    return json.loads(text)


def _host(url: str, method: str | None) -> str:
    if method == "CONNECT":
        return url.rpartition(":")[0]
    return urlsplit(url).hostname or ""


def redacted(attempt: DeliveryAttempt, cipher: FieldCipher) -> dict[str, Any]:
    delivery = attempt.delivery
    hidden = hidden_values(delivery, cipher)
    requests = [
        {
            "method": entry.get("method"),
            "host": _host(str(entry.get("url") or ""), entry.get("method")),
            "status": entry.get("status"),
            "refused": entry.get("refused"),
        }
        for entry in attempt.requests
    ]
    shown = {
        "delivery": delivery.id,
        "attempt": attempt.number,
        "version": delivery.broker_version.version,
        "service": delivery.service_id,
        "started_at": attempt.started_at.isoformat(),
        "duration_seconds": attempt.duration_seconds,
        "outcome": attempt.outcome,
        "run_status": attempt.run_status,
        "exit_code": attempt.exit_code,
        "message": attempt.message,
        "logs": attempt.logs,
        "requests": requests,
        "stderr": attempt.stderr[-STDERR_TAIL_CHARS:],
    }
    masked: dict[str, Any] = _mask(shown, hidden)
    masked["delivery"], masked["version"] = delivery.id, delivery.broker_version.version
    return masked
