"""Built-in brokers take the vendors' path at install: verified, report kept, approved by the
platform, every move audited."""

from __future__ import annotations

from sqlalchemy import select

from brokerage.platform import catalogue
from brokerage.submissions.models import (
    BrokerType,
    BrokerVersion,
    SubmissionEvent,
    VerificationReport,
)


def test_builtins_are_verified_and_approved_with_reports(app, runtime) -> None:
    with runtime.sessions() as session:
        versions = session.scalars(
            select(BrokerVersion).join(BrokerType).where(BrokerType.builtin)
        ).all()
        assert versions and {v.state for v in versions} == {"approved"}
        post = next(v for v in versions if v.broker_type.name == "post")
        [report] = session.scalars(
            select(VerificationReport).where(VerificationReport.broker_version_id == post.id)
        )
        assert report.passed and report.backend == ""
        assert [c["name"] for c in report.checks] == [
            "schema",
            "restricted_python",
            "imports",
            "secrets",
            "fields",
        ]
        events = session.scalars(
            select(SubmissionEvent)
            .where(SubmissionEvent.broker_version_id == post.id)
            .order_by(SubmissionEvent.id)
        ).all()
        assert [(e.to_state, e.actor_name) for e in events] == [
            ("draft", "platform"),
            ("submitted", "platform"),
            ("verifying", "platform"),
            ("awaiting_review", "platform"),
            ("approved", "platform"),
        ]
        assert post.digest and len(post.digest) == 64
        assert catalogue.install_builtin_brokers(session) == 0  # idempotent
