"""The spool of push bodies waiting to be sent, sending one to the platform, flushing the
spool oldest first, and keeping what the platform refused in ``rejected/``."""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

from brokerage.platform.hooks.config import HookConfig, Repository

FLUSH_BUDGET_SECONDS = 20.0
"""seconds one hook run spends resending spooled pushes; the rest wait for the next run."""

LOCK_WAIT_SECONDS = 10.0
"""seconds a hook run waits for another run's flush; on timeout its push stays spooled."""

LOCK_POLL_SECONDS = 0.05
"""seconds between two tries to take the flush lock."""

SPOOL_DIR_NAME = "brokerage-spool"
REJECTED_DIR_NAME = "rejected"


class SendOutcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    """transient: the push stays spooled and the flush stops, to keep pushes in order."""
    REJECTED = "rejected"
    """permanent: the platform refused this body; resending it unchanged will not help."""


@dataclass(frozen=True)
class SendResult:
    outcome: SendOutcome
    detail: str
    status: int | None = None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirected POST would silently become a GET; treat any redirect as a refusal."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def send(config: HookConfig, body: bytes) -> SendResult:
    """POST one push body; never raises for network or HTTP trouble."""
    opener = urllib.request.build_opener(_NoRedirects)
    try:
        with opener.open(_request(config, body), timeout=config.timeout) as response:
            return SendResult(SendOutcome.DELIVERED, f"HTTP {response.status}", response.status)
    except urllib.error.HTTPError as exc:
        return _classify(exc.code, _error_text(exc))
    except (OSError, ValueError, http.client.HTTPException) as exc:  # URLError, timeouts, resets
        reason = getattr(exc, "reason", exc)
        return SendResult(SendOutcome.RETRY, f"cannot reach {config.url}: {reason}")


def _request(config: HookConfig, body: bytes) -> urllib.request.Request:
    return urllib.request.Request(
        config.push_url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {config.token}",
            "User-Agent": "brokerage-hook/1",
        },
    )


def _classify(status: int, text: str) -> SendResult:
    if status in (408, 429) or status >= 500:
        return SendResult(SendOutcome.RETRY, f"HTTP {status}: {text}", status)
    return SendResult(SendOutcome.REJECTED, f"HTTP {status}: {text}", status)


def _error_text(exc: urllib.error.HTTPError) -> str:
    """The platform's error message ({"error": {"message": ...}}), else the start of the body."""
    try:
        raw = exc.read(4096).decode("utf-8", "replace")
    except OSError:
        return exc.reason if isinstance(exc.reason, str) else ""
    try:
        error = json.loads(raw).get("error")
    except (ValueError, AttributeError):
        error = None
    if isinstance(error, dict) and "message" in error:
        return str(error["message"])
    if isinstance(error, str):
        return error
    return raw.strip()[:500] or str(exc.reason)


class Spool:
    """Push bodies waiting to be sent, one JSON file each, named so they sort oldest first."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.rejected_dir = directory / REJECTED_DIR_NAME

    def add(self, body: Mapping[str, Any]) -> Path:
        """Store a body durably (write + rename), before any attempt to send it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{time.time_ns():020d}-{body['push_id']}.json"
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(body, ensure_ascii=False), encoding="utf-8")
        os.replace(temporary, path)
        return path

    def pending(self) -> list[Path]:
        return sorted(self.directory.glob("*.json"))

    def rejected(self) -> list[Path]:
        return sorted(self.rejected_dir.glob("*.json"))

    def reject(self, path: Path, reason: str) -> Path:
        """Keep a refused body, with the reason next to it, out of the resend queue."""
        self.rejected_dir.mkdir(parents=True, exist_ok=True)
        target = self.rejected_dir / path.name
        target.with_suffix(".reason.txt").write_text(reason + "\n", encoding="utf-8")
        os.replace(path, target)
        return target

    def requeue_rejected(self) -> int:
        """Move refused bodies back into the queue (after fixing the token, the URL...)."""
        paths = self.rejected()
        for path in paths:
            os.replace(path, self.directory / path.name)
            path.with_suffix(".reason.txt").unlink(missing_ok=True)
        return len(paths)

    @contextlib.contextmanager
    def lock(self, wait: float = LOCK_WAIT_SECONDS) -> Iterator[bool]:
        """Hold the flush lock; yields False when another flush kept it for ``wait`` seconds."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / ".lock", "w") as handle:
            if not _acquire(handle, wait):
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _acquire(handle: IO[str], wait: float) -> bool:
    """Take an exclusive flock on ``handle`` within ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(LOCK_POLL_SECONDS)


@dataclass
class FlushReport:
    delivered: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    waiting: int = 0
    """pushes still spooled after this flush."""


def flush(
    config: HookConfig,
    spool: Spool,
    *,
    budget: float = FLUSH_BUDGET_SECONDS,
    lock_wait: float = LOCK_WAIT_SECONDS,
    out: IO[str] = sys.stderr,
) -> FlushReport:
    """Send spooled pushes oldest first; stop at the first transient failure to keep order."""
    report = FlushReport()
    deadline = time.monotonic() + budget
    with spool.lock(lock_wait) as locked:
        if not locked:
            print("brokerage: another hook is sending; this push stays spooled", file=out)
        else:
            _flush_locked(config, spool, deadline, report, out)
        report.waiting = len(spool.pending())
    if report.waiting:
        print(
            f"brokerage: {report.waiting} push(es) spooled in {spool.directory}; they are "
            "resent on the next push or by `brokerage hook flush`",
            file=out,
        )
    return report


def _flush_locked(
    config: HookConfig, spool: Spool, deadline: float, report: FlushReport, out: IO[str]
) -> None:
    for path in spool.pending():
        if time.monotonic() > deadline:
            return
        if not _send_spooled(config, spool, path, report, out):
            return


def _send_spooled(
    config: HookConfig, spool: Spool, path: Path, report: FlushReport, out: IO[str]
) -> bool:
    """Send one spooled body and file it by the answer; False when the flush must stop."""
    result = send(config, path.read_bytes())
    if result.outcome is SendOutcome.DELIVERED:
        path.unlink()
        report.delivered.append(path.name)
        return True
    if result.outcome is SendOutcome.REJECTED:
        kept = spool.reject(path, result.detail)
        report.rejected.append(path.name)
        print(
            f"brokerage: the platform refused this push ({result.detail}); kept in "
            f"{kept}, resend with `brokerage hook flush --include-rejected`",
            file=out,
        )
        return True
    print(f"brokerage: {result.detail}", file=out)
    return False


def spool_of(repo: Repository) -> Spool:
    """The spool of a server-side repository (in its git directory, or ``.hg``)."""
    return Spool(repo.control_dir / SPOOL_DIR_NAME)
