"""Every built-in broker's fixtures table, run through the path ``brokerage broker test``
takes (and a vendor's submission too): ``verify_package`` — the static checks, then each
``fixtures/push__<variant>.json`` in the real Docker sandbox (strict mode), behind the real
egress gateway, against the stand-ins (recording receiver, SMTP recorder, the platform
API's stand-in tracker). One test per broker and fixture.

The brokers' own test modules go further (their services' fakes, failure tables); this
module is the floor every built-in stands on, as a vendor's broker does.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from brokerage.platform.cli import main
from brokerage.submissions.builtins import BUILTIN_DIR
from brokerage.submissions.dynamic import FixtureRun
from tests.builtin_brokers.harness import BUILTIN_FIXTURES, Verified, docker_image_tag

MAIL_BROKERS = {"email", "emaildiff"}


def run_of(verified: Verified, broker: str, variant: str) -> FixtureRun:
    outcome = verified(broker)
    static = [c for c in outcome.checks if c.name != "dynamic"]
    assert static and all(c.passed for c in static), [c.as_dict() for c in static]
    [run] = [r for r in outcome.runs if r.variant == variant]
    return run


@pytest.mark.parametrize(("broker", "variant"), BUILTIN_FIXTURES,
                         ids=[f"{b}-{v}" for b, v in BUILTIN_FIXTURES])  # fmt: skip
def test_the_builtin_s_fixture_passes_as_a_vendor_s_would(
    verified: Verified, broker: str, variant: str
) -> None:
    run = run_of(verified, broker, variant)
    assert run.passed, (run.problems, run.stderr[-500:])
    assert run.status == run.expected or run.expected == "any"
    assert all(entry["declared"] for entry in run.egress), run.egress
    if broker in MAIL_BROKERS:
        assert run.mails and all("dev@example.org" in mail["to"] for mail in run.mails)
        assert all(mail["from"].startswith("commits-noreply@") for mail in run.mails)


def test_every_builtin_broker_has_fixtures_in_the_table() -> None:
    brokers = sorted(p.parent.name for p in BUILTIN_DIR.glob("*/manifest.json"))
    assert len(brokers) == 20
    assert sorted({b for b, _ in BUILTIN_FIXTURES}) == brokers


@pytest.mark.parametrize("name", ["email", "emaildiff", "issues"])
def test_brokerage_broker_test_reports_a_builtin_s_runs(name: str) -> None:
    """The command itself: its report names each fixture, mail and API call."""
    env = {"BROKERAGE_SANDBOX_BACKEND": "docker", "BROKERAGE_SANDBOX_IMAGE": docker_image_tag()}
    result = CliRunner().invoke(
        main, ["broker", "test", str(BUILTIN_DIR / name)], env=env, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert "all checks passed (docker sandbox)" in result.output
    if name in MAIL_BROKERS:
        assert "mail to dev@example.org" in result.output
    else:
        assert "ok   fixture seed_examples: succeeded" in result.output
        assert "api POST /1.0/repositories/marcus/project-x/issues/1/changesets -> 404" in (
            result.output
        )
