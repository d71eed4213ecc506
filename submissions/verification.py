"""Automated verification of one submitted version, run as a queued job.

:func:`verify_version` moves the version ``submitted → verifying``, reads its package
from the artifact store, runs the static checks (:mod:`~brokerage.submissions.checks`)
and, when those pass, the fixtures in the sandbox (:mod:`~brokerage.submissions.dynamic`),
stores a :class:`~brokerage.submissions.models.VerificationReport` and moves the version
to ``awaiting_review`` or ``verification_failed``. The report is stored even when the
version was withdrawn meanwhile (the move is then skipped).

Built-in brokers pass through :func:`verify_builtin` at install: the same static checks,
report kept, approved by the platform when they pass. It runs on app start, so it does
not start sandboxes (their fixtures are run by their own test suites in the sandbox).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from brokerage.core.tables import utcnow
from brokerage.sandbox.runner.policy import DEFAULT_IMPORTS
from brokerage.submissions import lifecycle
from brokerage.submissions.artifacts import ArtifactStore
from brokerage.submissions.checks import CheckResult, Finding, static_checks
from brokerage.submissions.dynamic import (
    BackendFactory,
    FixtureRun,
    LocalRun,
    dynamic_check,
    run_fixtures,
)
from brokerage.submissions.errors import SubmissionError
from brokerage.submissions.models import BrokerVersion, SubmissionEvent, VerificationReport
from brokerage.submissions.package import Package, read_archive
from brokerage.submissions.states import SubmissionState

log = logging.getLogger(__name__)
S = SubmissionState


@dataclass
class Outcome:
    """A verification's findings before they are stored."""

    checks: list[CheckResult]
    runs: list[FixtureRun] = field(default_factory=list)
    backend: str = ""

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    def summary(self) -> str:
        failed = [c.name for c in self.checks if not c.passed]
        return "every check passed" if not failed else "failed: " + ", ".join(failed)


def verify_package(
    pkg: Package,
    make_backend: BackendFactory | None,
    allowed_imports: Iterable[str] = DEFAULT_IMPORTS,
    local: LocalRun | None = None,
) -> Outcome:
    """Static checks, then (when they pass and a backend is given) the fixtures (``local``:
    a vendor's local run, see :class:`~brokerage.submissions.dynamic.LocalRun`; a
    ValueError when it names an unknown fixture or a bad host)."""
    outcome = Outcome(static_checks(pkg, allowed_imports))
    if make_backend is None:
        return outcome
    if not outcome.passed:
        skipped = CheckResult("dynamic", summary="not run: the static checks failed", skipped=True)
        outcome.checks.append(skipped)
        return outcome
    if local is not None:
        local.fixtures_of(pkg)  # the vendor's own options are wrong: a ValueError says so
    try:
        outcome.runs, outcome.backend = run_fixtures(pkg, pkg.manifest, make_backend, local=local)
        outcome.checks.append(dynamic_check(outcome.runs))
    except Exception as exc:  # the sandbox could not run at all: a failed check, not a crash
        log.exception("dynamic checks could not run")
        failed = CheckResult("dynamic", summary="the sandbox could not run the fixtures")
        failed.findings.append(Finding("error", f"{type(exc).__name__}: {exc}"))
        outcome.checks.append(failed)
    return outcome


def store_report(
    session: Session, version: BrokerVersion, outcome: Outcome, started: Any = None
) -> VerificationReport:
    report = VerificationReport(
        broker_version=version,
        passed=outcome.passed,
        checks=[c.as_dict() for c in outcome.checks],
        transcript=[r.as_dict() for r in outcome.runs],
        backend=outcome.backend,
        started_at=started or utcnow(),
        finished_at=utcnow(),
    )
    session.add(report)
    session.flush()
    return report


RESTARTED = "verification started again: the worker running it stopped before it finished"


def verify_version(
    session: Session,
    version: BrokerVersion,
    store: ArtifactStore,
    make_backend: BackendFactory | None,
    allowed_imports: Iterable[str] = DEFAULT_IMPORTS,
    restart: bool = False,
) -> str:
    """Verify a submitted version (the caller commits). Returns the state it ends in.

    ``restart``: the version is left ``verifying`` by a verification that stopped with its
    worker; it is verified again from the start (audited as verifying → verifying)."""
    if restart and version.state == S.VERIFYING:
        session.add(SubmissionEvent(broker_version=version, from_state=str(S.VERIFYING),
                                    to_state=str(S.VERIFYING), actor=None,
                                    reason=RESTARTED))  # fmt: skip
    elif version.state != S.SUBMITTED:
        return f"skipped: the version is {version.state}"
    else:
        lifecycle.move(session, version, S.VERIFYING, None, "verification started")
    session.commit()
    started = utcnow()
    try:
        pkg = read_archive(store.get(version.artifact_digest or ""))
        outcome = verify_package(pkg, make_backend, allowed_imports)
    except SubmissionError as exc:
        broken = CheckResult("package", summary="the stored package cannot be read")
        broken.findings.append(Finding("error", str(exc)))
        outcome = Outcome([broken])
    session.refresh(version)
    store_report(session, version, outcome, started)
    if version.state == S.VERIFYING:
        target = S.AWAITING_REVIEW if outcome.passed else S.VERIFICATION_FAILED
        lifecycle.move(session, version, target, None, outcome.summary())
    return version.state


def verify_builtin(session: Session, version: BrokerVersion, pkg: Package) -> bool:
    """The built-in's path: draft → submitted → verifying → awaiting_review → approved by the
    platform when the static checks pass (verification_failed, and not offered, otherwise)."""
    checks = static_checks(pkg, code_expected=bool(pkg.code_files()))
    outcome = Outcome([c for c in checks if c.name != "size"])  # fixtures: their own suites
    lifecycle.record_creation(session, version, None, "built-in broker installed")
    lifecycle.move(session, version, S.SUBMITTED, None, "built-in broker installed")
    lifecycle.move(session, version, S.VERIFYING, None, "verification started (static checks)")
    store_report(session, version, outcome)
    if not outcome.passed:
        lifecycle.move(session, version, S.VERIFICATION_FAILED, None, outcome.summary())
        log.error(
            "built-in broker %s failed verification: %s",
            version.broker_type.name,
            outcome.summary(),
        )
        return False
    lifecycle.move(session, version, S.AWAITING_REVIEW, None, outcome.summary())
    lifecycle.move(session, version, S.APPROVED, None, "built-in broker, approved by the platform")
    return True
