"""One attempt of one delivery: claim it, run the broker in the sandbox, record what
happened, and decide what comes next (done, retry later, or give up).

Nothing a broker does can break this: every sandbox outcome is recorded on the
attempt, and an error of the platform itself is recorded as a failed attempt too.
"""

from __future__ import annotations

import json
import logging
import random
import socket
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit

from sqlalchemy import Connection, bindparam, func, select, update
from sqlalchemy.orm import joinedload

from brokerage.core.tables import utcnow
from brokerage.platform import branches, notify
from brokerage.platform.deliveries import queue as delivery_queue
from brokerage.platform.deliveries.states import (
    ATTEMPTS,
    AUTO_DISABLE_AFTER,
    DELIVERIES,
    LEASE_SECONDS,
    RETRY_DELAYS,
    Claim,
    DeliveryStatus,
    check_move,
    claim,
    due_at,
    retry_delay,
)
from brokerage.platform.models import Push, Service
from brokerage.platform.runtime import Runtime
from brokerage.sandbox.egress.policy import hosts_named_by
from brokerage.sandbox.egress.proxy import SENSITIVE_QUERY_KEYS
from brokerage.sandbox.interface import Limits, RunResult, RunStatus, SandboxBackend
from brokerage.submissions import bundles
from brokerage.submissions.fields import MASK, missing_required
from brokerage.submissions.models import BrokerVersion

log = logging.getLogger(__name__)

OUTPUT_KEPT_CHARS = 64 * 1024
"""characters of stdout/stderr kept on an attempt"""


class Outcome(StrEnum):
    """What one attempt means for its delivery."""

    SUCCEEDED = "succeeded"
    TRANSIENT = "transient"  # may work next time: retry
    CONFIGURATION = "configuration"  # the service's fields are wrong: do not retry
    BROKEN = "broken"  # the broker misbehaved in a way a retry repeats: do not retry
    SKIPPED = "skipped"
    DEFERRED = "deferred"  # the platform's own rate limits held it back: run again later,
    # not a failed attempt (no retry used, nothing counted towards auto-disable)


DEFER_MIN_SECONDS = 0.5
"""shortest delay before a deferred delivery runs again"""
DEFER_JITTER = 0.2
"""fraction added at random to a deferral's delay, so deferred deliveries do not return at once"""


def deferral(result: RunResult) -> float | None:
    """Seconds to wait when the gateway's rate limits refused a request of this run (the
    longest ``retry_after`` of its log); None when none did."""
    waits = [float(entry.get("retry_after") or 0) for entry in result.requests
             if entry.get("refused") == "rate_limited"]  # fmt: skip
    return max(waits) if waits else None


def classify(result: RunResult) -> Outcome:
    if result.status is RunStatus.SUCCEEDED:
        return Outcome.SUCCEEDED
    if result.status is RunStatus.FAILED and (result.error or {}).get("kind") == "configuration":
        return Outcome.CONFIGURATION
    if result.status in (RunStatus.OUT_OF_MEMORY, RunStatus.OUTPUT_EXCEEDED):
        return Outcome.BROKEN
    return Outcome.TRANSIENT


@dataclass(frozen=True)
class ServiceState:
    """The service's row as the attempt found it."""

    id: int
    enabled: bool
    config_ciphertext: str
    branches: str


@dataclass(frozen=True)
class Work:
    """Everything one attempt needs, read in the transaction that claimed it."""

    delivery_id: str
    claim: Claim
    payload: dict[str, Any]
    patches: dict[str, str] | None
    version: BrokerVersion
    service: ServiceState | None
    repository_id: int | None = None


@dataclass(frozen=True)
class Verdict:
    """What an attempt came to: its outcome, the message shown, and the run (if any)."""

    outcome: Outcome
    message: str
    result: RunResult | None = None
    wait: float = 0.0
    """DEFERRED: the seconds the gateway said to wait"""


PUSHES, SERVICES = Push.__table__, Service.__table__
_LOAD = (
    select(
        DELIVERIES.c.broker_version_id, DELIVERIES.c.repository_id, PUSHES.c.payload,
        PUSHES.c.patches, SERVICES.c.id, SERVICES.c.enabled, SERVICES.c.config_ciphertext,
        SERVICES.c.branches,
    )
    .select_from(
        DELIVERIES.join(PUSHES, PUSHES.c.id == DELIVERIES.c.push_id)
        .outerjoin(SERVICES, SERVICES.c.id == DELIVERIES.c.service_id)
    )
    .where(DELIVERIES.c.id == bindparam("delivery_id"))
)  # fmt: skip
_FINISH_ATTEMPT = update(ATTEMPTS).where(ATTEMPTS.c.id == bindparam("attempt_id"))
_SETTLE_DELIVERY = update(DELIVERIES).where(
    DELIVERIES.c.id == bindparam("delivery_id"),
    DELIVERIES.c.attempts == bindparam("number"),
    DELIVERIES.c.status == str(DeliveryStatus.RUNNING),
)
_DEFERRED_ATTEMPTS = select(func.count()).where(
    ATTEMPTS.c.delivery_id == bindparam("delivery_id"),
    ATTEMPTS.c.outcome == str(Outcome.DEFERRED),
)
_RESET_FAILURES = (
    update(SERVICES)
    .where(SERVICES.c.id == bindparam("service_id"), SERVICES.c.consecutive_failures != 0)
    .values(consecutive_failures=0)
)
"""Statements of the hot path, built once (plain Core: each delivery costs two short
transactions and no ORM unit of work)."""


def envelope(work: Work, values: dict[str, Any]) -> dict[str, Any]:
    """The push payload plus ``service``, ``broker`` and ``delivery`` (notes/contracts)."""
    branch_filter = work.service.branches if work.service else ""
    body = branches.filter_payload(dict(work.payload), branch_filter)
    if "repository:read" in work.version.manifest.get("permissions", []) and work.patches:
        body["patches"] = work.patches
    body["service"] = values
    body["broker"] = work.version.broker_type.name
    body["delivery"] = {"id": work.delivery_id, "attempt": work.claim.number}
    return body


@dataclass
class Dispatcher:
    runtime: Runtime
    sandbox: SandboxBackend
    limits: Limits = Limits()
    worker_name: str = socket.gethostname()
    gateway: HostNaming | None = None
    versions: dict[int, BrokerVersion] = field(default_factory=dict, repr=False)
    """broker versions by id, loaded once: the fields a run uses never change"""

    @property
    def lease_seconds(self) -> float:
        return float(self.runtime.config.get("LEASE_SECONDS") or LEASE_SECONDS)

    @property
    def delays(self) -> tuple[float, ...]:
        return tuple(self.runtime.config.get("RETRY_DELAYS") or RETRY_DELAYS)

    def run(self, delivery_id: str) -> str:
        """Run the next attempt of a delivery if it is free to run; returns its outcome."""
        work = self._claim(delivery_id)
        if work is None:
            return "not claimable"
        verdict = self._attempt(work)
        delay = self._settle(work, verdict)
        log.info("%s", attempt_line(work, verdict, delay, self.worker_name))
        if delay is not None:
            delivery_queue.enqueue(self.runtime, delivery_id, work.claim.number + 1, delay)
        return str(verdict.outcome)

    def _claim(self, delivery_id: str) -> Work | None:
        with self.runtime.engine.begin() as conn:
            claimed = claim(conn, delivery_id, self.worker_name, self.lease_seconds)
            if claimed is None:
                return None
            row = conn.execute(_LOAD, {"delivery_id": delivery_id}).one()
        service = None
        if row.id is not None:  # the service still exists
            service = ServiceState(row.id, row.enabled, row.config_ciphertext, row.branches)
        return Work(delivery_id, claimed, row.payload, row.patches,
                    self._version(row.broker_version_id), service, row.repository_id)  # fmt: skip

    def _version(self, version_id: int) -> BrokerVersion:
        if version_id not in self.versions:
            with self.runtime.sessions() as session:
                self.versions[version_id] = session.scalars(
                    select(BrokerVersion)
                    .where(BrokerVersion.id == version_id)
                    .options(joinedload(BrokerVersion.broker_type))
                ).one()
        return self.versions[version_id]

    def _attempt(self, work: Work) -> Verdict:
        service = work.service
        if service is None or not service.enabled:
            why = "the service was removed" if service is None else "the service is disabled"
            return Verdict(Outcome.SKIPPED, why)
        values = self.runtime.cipher.decrypt(service.config_ciphertext)
        missing = missing_required(work.version.fields, values)
        if missing:
            message = "configuration error: required field(s) empty: " + ", ".join(missing)
            return Verdict(Outcome.CONFIGURATION, message)
        result = self._run_sandboxed(work, values)
        result = scrub(result, secrets_of(work.version.fields, values))
        outcome, wait = classify(result), deferral(result)
        if outcome is not Outcome.SUCCEEDED and wait is not None:
            return Verdict(Outcome.DEFERRED, f"deferred by the platform's rate limits: "
                           f"runs again in {max(wait, DEFER_MIN_SECONDS):.1f}s", result,
                           wait)  # fmt: skip
        return Verdict(outcome, _message(result), result)

    def _run_sandboxed(self, work: Work, values: dict[str, Any]) -> RunResult:
        if self.gateway is not None:
            urls = _url_values(work.version.fields, values)
            self.gateway.name_hosts(work.delivery_id, hosts_named_by(urls))
            keys = {"service": str(work.service.id)} if work.service else {}
            if work.repository_id is not None:
                keys["repository"] = str(work.repository_id)
            self.gateway.limit_by(work.delivery_id, keys)
        try:
            bundle = bundles.load(work.version)
            # the trust unit: this service's sandboxes serve no other service
            tenant = f"service-{work.service.id}@{work.version.id}" if work.service else None
            return self.sandbox.run(bundle, envelope(work, values), self.limits, tenant)
        except Exception as exc:  # the platform's own failure: recorded, retried
            log.exception("delivery %s: the platform could not run the broker", work.delivery_id)
            return RunResult(
                status=RunStatus.SANDBOX_ERROR,
                error={
                    "type": type(exc).__name__,
                    "kind": "platform",
                    "message": str(exc),
                    "traceback": "",
                },
            )
        finally:
            if self.gateway is not None:
                self.gateway.forget(work.delivery_id)

    def _settle(self, work: Work, verdict: Verdict) -> float | None:
        """Record the attempt and move the delivery on (one transaction); the seconds until
        the next attempt, or None when there is none."""
        status, delay = self._next_status(work, verdict)
        check_move(work.delivery_id, DeliveryStatus.RUNNING, status)
        now = utcnow()
        with self.runtime.engine.begin() as conn:
            conn.execute(_FINISH_ATTEMPT, attempt_record(work.claim, verdict, now))
            settled = conn.execute(_SETTLE_DELIVERY, {
                "delivery_id": work.delivery_id, "number": work.claim.number,
                "status": str(status), "lease_until": None,
                "last_error": "" if verdict.outcome is Outcome.SUCCEEDED else verdict.message,
                "next_attempt_at": due_at(delay, now) if delay is not None else None,
                "finished_at": now if delay is None else None,
            }).rowcount  # fmt: skip
            if not settled:
                log.warning("delivery %s: attempt %d was taken from this worker; its result is "
                            "recorded, the delivery is left as it is",
                            work.delivery_id, work.claim.number)  # fmt: skip
                return None
            disabled = self._count(conn, work, verdict, status)
        if disabled:
            self._tell_admins(disabled)
        return delay

    def _next_status(self, work: Work, verdict: Verdict) -> tuple[DeliveryStatus, float | None]:
        outcome = verdict.outcome
        if outcome is Outcome.SUCCEEDED:
            return DeliveryStatus.SUCCEEDED, None
        if outcome is Outcome.SKIPPED:
            return DeliveryStatus.SKIPPED, None
        if outcome is Outcome.DEFERRED:  # queued again: no retry used, no failure counted
            wait = max(verdict.wait, DEFER_MIN_SECONDS)
            return DeliveryStatus.QUEUED, wait * random.uniform(1, 1 + DEFER_JITTER)
        if outcome is Outcome.TRANSIENT:
            delay = retry_delay(self._failed_attempts(work), self.delays)
            if delay is not None:
                return DeliveryStatus.RETRYING, delay
        return DeliveryStatus.FAILED, None

    def _failed_attempts(self, work: Work) -> int:
        """This attempt's number among the delivery's attempts that were not deferred."""
        if work.claim.number == 1:
            return 1
        with self.runtime.engine.connect() as conn:
            deferred = conn.execute(_DEFERRED_ATTEMPTS, {"delivery_id": work.delivery_id})
            return work.claim.number - int(deferred.scalar_one())

    def _count(self, conn: Connection, work: Work, verdict: Verdict,
               status: DeliveryStatus) -> int | None:  # fmt: skip
        """Reset or count the service's failures in a row; the id of a service this
        failure disabled (its admins are then told)."""
        if work.service is None or status not in (DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED):
            return None
        if status is DeliveryStatus.SUCCEEDED:
            conn.execute(_RESET_FAILURES, {"service_id": work.service.id})
            return None
        failures, enabled = conn.execute(
            update(SERVICES)
            .where(SERVICES.c.id == work.service.id)
            .values(consecutive_failures=SERVICES.c.consecutive_failures + 1)
            .returning(SERVICES.c.consecutive_failures, SERVICES.c.enabled)
        ).one()
        limit = int(self.runtime.config.get("AUTO_DISABLE_AFTER") or AUTO_DISABLE_AFTER)
        if not enabled or failures < limit:
            return None
        reason = (f"disabled after {failures} failed deliveries in a row; "
                  f"last error: {verdict.message}")  # fmt: skip
        conn.execute(
            update(SERVICES)
            .where(SERVICES.c.id == work.service.id)
            .values(enabled=False, disabled_reason=reason)
        )
        return work.service.id

    def _tell_admins(self, service_id: int) -> None:
        with self.runtime.sessions() as session:
            service = session.get(Service, service_id)
            if service is not None:
                notify.service_disabled(self.runtime, service)


def attempt_record(claimed: Claim, verdict: Verdict, now: datetime) -> dict[str, Any]:
    """The attempt row's columns once it is over (parameters of ``_FINISH_ATTEMPT``)."""
    record: dict[str, Any] = {"attempt_id": claimed.attempt_id, "outcome": str(verdict.outcome),
                              "message": verdict.message, "finished_at": now}  # fmt: skip
    result = verdict.result
    if result is not None:
        record.update(
            run_status=str(result.status), exit_code=result.exit_code,
            duration_seconds=result.duration_seconds, result=result.result,
            logs=list(result.logs), requests=list(result.requests),
            stdout=result.stdout[:OUTPUT_KEPT_CHARS], stderr=result.stderr[:OUTPUT_KEPT_CHARS],
        )  # fmt: skip
    return record


MIN_SCRUBBED_CHARS = 4
"""shorter secret values are not scrubbed (they would mask ordinary words)"""


def secrets_of(fields: list[dict[str, Any]], values: dict[str, Any]) -> list[str]:
    """The service's secret values as they may appear in logs: each password field's value
    (also as a form or query encodes it), for a secret URL (a chat webhook) its path and
    query on their own, and a URL field's ``user:password@`` and secret query values (the
    names the gateway masks in a URL: ``token``, ``key``, ...)."""
    found: list[str] = []
    for spec in fields:
        value = str(values.get(spec["label"]) or "")
        if spec["type"] == "url":
            found += [quote_plus(s) for s in _url_secrets(value)] + _url_secrets(value)
            continue
        if spec["type"] != "password" or len(value) < MIN_SCRUBBED_CHARS:
            continue
        found += {value, quote_plus(value), quote(value, safe="")}
        parts = urlsplit(value)
        if parts.scheme in ("http", "https") and len(parts.path) > 1:
            found.append(parts.path + (f"?{parts.query}" if parts.query else ""))
    return sorted(set(found), key=len, reverse=True)


def _url_secrets(url: str) -> list[str]:
    try:
        parts = urlsplit(url)
        found = [unquote(parts.password or "")]
    except ValueError:
        return []
    found += [v for k, v in parse_qsl(parts.query) if k.lower() in SENSITIVE_QUERY_KEYS]
    return [v for v in found if len(v) >= MIN_SCRUBBED_CHARS]


def scrub(result: RunResult, secrets: list[str]) -> RunResult:
    """The result with every secret value masked in what the attempt records (request log,
    log lines, output, error, result): nothing a broker or the gateway logged leaks them."""
    if not secrets:
        return result
    text = json.dumps(
        [result.requests, result.logs, result.stdout, result.stderr, result.error, result.result]
    )
    for secret in secrets:
        text = text.replace(json.dumps(secret)[1:-1], MASK)
    requests, logs, stdout, stderr, error, body = json.loads(text)
    return replace(result, requests=requests, logs=logs, stdout=stdout, stderr=stderr,
                   error=error, result=body)  # fmt: skip


class HostNaming(Protocol):
    """The part of the gateway the dispatcher uses: hosts the admin named and the keys its
    rate limits go by (service, repository), per delivery."""

    def name_hosts(self, delivery_id: str, hosts: frozenset[str]) -> None: ...

    def limit_by(self, delivery_id: str, keys: dict[str, str]) -> None: ...

    def forget(self, delivery_id: str) -> None: ...


def _url_values(fields: list[dict[str, Any]], values: dict[str, Any]) -> list[str]:
    """Values of fields that hold a URL: url-typed ones, and secrets that are URLs (a chat
    webhook's URL is its credential, so it is kept in a password field)."""
    found = [str(values.get(f["label"]) or "") for f in fields
             if f["type"] in ("url", "password")]  # fmt: skip
    return [v for v in found if v.startswith(("http://", "https://"))]


def _message(result: RunResult) -> str:
    if result.status is RunStatus.SUCCEEDED:
        return str((result.result or {}).get("message", "ok"))
    error = result.error or {}
    detail = error.get("message") or result.stderr.strip().splitlines()[-1:] or ""
    if isinstance(detail, list):
        detail = detail[0] if detail else ""
    prefix = "configuration error" if error.get("kind") == "configuration" else str(result.status)
    kind = error.get("type")
    return f"{prefix}: {kind}: {detail}" if kind else f"{prefix}: {detail}".rstrip(": ")


LOGGED_MESSAGE_CHARS = 200
"""characters of an attempt's message in its log line"""


def attempt_line(work: Work, verdict: Verdict, delay: float | None, worker: str) -> str:
    """One attempt as one log line of ``key=value`` pairs (the message JSON-quoted; it is the
    attempt's recorded message, secrets already masked)."""
    result = verdict.result
    fields = {
        "delivery": work.delivery_id,
        "attempt": work.claim.number,
        "service": work.service.id if work.service else "-",
        "broker": f"{work.version.broker_type.name}@{work.version.version}",
        "outcome": verdict.outcome,
        "duration": f"{result.duration_seconds:.3f}s" if result else "-",
        "requests": len(result.requests) if result else 0,
        "next": f"{delay:.0f}s" if delay is not None else "-",
        "worker": worker,
        "message": json.dumps(verdict.message[:LOGGED_MESSAGE_CHARS], ensure_ascii=False),
    }
    return "attempt " + " ".join(f"{key}={value}" for key, value in fields.items())
