"""Email and Email Diff through the real sandbox and gateway to a real SMTP server on
127.0.0.1: one line per case — broker, fixture, field, expected outcome."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.builtin_brokers.fixtures import fixture
from tests.builtin_brokers.harness import MAIL_DOMAIN, BrokerRig


@dataclass
class Case:
    broker: str
    variant: str
    email: str
    subject: str = ""
    error: str = ""  # the configuration error's text, when the case fails
    diffs: int = 0


CASES = [
    Case("email", "1_commit", "dev@example.org", "commit/project-x: marcus: Test bitbucket hook"),
    Case("email", "3_commits", "dev@example.org, qa@example.org",
         "commit/project-x: 3 new changesets"),
    Case("emaildiff", "1_commit", "dev@example.org",
         "commit/project-x: marcus: Test bitbucket hook", diffs=1),
    Case("emaildiff", "3_commits_one_without_patch", "dev@example.org",
         "commit/project-x: 3 new changesets", diffs=2),
    Case("email", "1_commit", "", error="Email: required"),
    Case("email", "1_commit", "dev@example.org, not an address",
         error="Email: not an email address: not, an, address"),
    Case("emaildiff", "1_commit", "Dev <dev@example.org>", error="not an email address"),
]  # fmt: skip


@pytest.mark.parametrize(
    "case", CASES, ids=[f"{c.broker}-{c.variant}-{c.email or 'none'}" for c in CASES]
)
def test_mail(rig: BrokerRig, case: Case) -> None:
    result = rig.run(case.broker, case.variant, {"Email": case.email})
    if case.error:
        assert result.status == "failed"
        assert result.error and result.error["kind"] == "configuration"
        assert case.error in result.error["message"]
        assert rig.mail.messages == []
        return
    assert result.status == "succeeded", result.error
    assert len(rig.mail.messages) == 1  # one mail per push
    sent = rig.mail.messages[0]
    message = sent["message"]
    assert sent["from"] == f"commits-noreply@{MAIL_DOMAIN}"
    assert message["From"] == f"commits-noreply@{MAIL_DOMAIN}"
    assert sorted(sent["to"]) == sorted(a.strip() for a in case.email.split(","))
    assert message["Subject"] == case.subject
    assert message["X-Brokerage-Delivery"]
    body = message.get_content()
    for commit in fixture(case.broker, case.variant)["commits"]:
        assert commit["raw_node"] in body
    assert body.count("diff --git") == case.diffs


def test_mail_not_configured_is_transient(docker_image: str) -> None:
    """No SMTP on the platform is the operator's problem: retried, never held against the
    service as a configuration error."""
    from brokerage.sandbox.docker_backend import DockerBackend
    from brokerage.sandbox.egress.config import GatewayConfig
    from brokerage.sandbox.egress.gateway import Gateway
    from tests.builtin_brokers.harness import LIMITS, builtin_bundle

    envelope = dict(fixture("email", "1_commit"), service={"Email": "dev@example.org"},
                    broker="email", delivery={"id": "d-1", "attempt": 1})  # fmt: skip
    with Gateway(GatewayConfig()) as gateway:
        backend = DockerBackend(image_tag=docker_image, egress=gateway)
        try:
            result = backend.run(builtin_bundle("email"), envelope, LIMITS)
        finally:
            backend.close()
    assert result.error and result.error["kind"] == "transient"
    assert "mail is not configured" in result.error["message"]
