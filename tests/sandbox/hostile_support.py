"""What the hostile suites by family share: backends (bare runner, Docker warm and strict,
bubblewrap), canaries and the check that nothing escaped.

A canary is two random tokens: a *marker* the broker gets in its envelope and returns
only if its escape worked ("ESCAPED-<marker>"), and a *secret* written to a host file
the broker is told the path of. On the bare runner (RestrictedPython alone, on the
host) the file is readable to anything that gets past the guards; in a sandbox it is
not even there. Neither token may ever appear in a run's result, logs, output or error.
"""

from __future__ import annotations

import secrets
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from brokerage.sandbox.interface import BrokerBundle, Limits, RunResult, RunStatus
from brokerage.sandbox.pool import PoolPolicy
from brokerage.sandbox.sandboxes import Mode
from tests.sandbox.conftest import make_backend
from tests.sandbox.sandbox_fixtures import FAST, TRIVIAL, BareRunner, bundle, envelope

KINDS = ("bare", "docker-warm", "docker-strict", "bubblewrap")
"""bare: the runner on the host, RestrictedPython the only layer"""


class BareBackend:
    """The runner as a host subprocess per run, behind the backends' ``run``."""

    name = "bare"

    def run(self, broker: BrokerBundle, env: dict[str, Any], limits: Limits) -> RunResult:
        runner = BareRunner(broker)
        try:
            return runner.session.run(env, limits)
        finally:
            runner.close()

    def close(self) -> None:
        pass


def start(kind: str, request: pytest.FixtureRequest) -> Any:
    if kind == "bare":
        return BareBackend()
    backend, _, mode = kind.partition("-")
    if mode == "strict":
        return make_backend(backend, request, mode=Mode.STRICT)
    return make_backend(backend, request, pool=PoolPolicy(size=1))


@dataclass
class Canary:
    marker: str
    secret: str
    path: Path

    def envelope(self, **extra: Any) -> dict[str, Any]:
        return envelope(marker=self.marker, canary_path=str(self.path), **extra)

    def assert_untouched(self, result: RunResult) -> None:
        seen = repr(result)
        assert f"ESCAPED-{self.marker}" not in seen, result
        assert self.secret not in seen, result


def canary(tmp_path: Path) -> Canary:
    secret = "HOST-SECRET-" + secrets.token_hex(12)
    path = tmp_path / "canary.txt"
    path.write_text(secret)
    path.chmod(0o644)
    return Canary(secrets.token_hex(8), secret, path)


HANDLER = """\
from brokerage_sdk import BaseBroker

{prelude}

class Broker(BaseBroker):
    def handle(self, payload):
        path = payload["canary_path"]
        got = None
{body}
        return {{"escaped": "ESCAPED-" + payload["marker"], "got": str(got)[:400]}}
"""


def escape_bundle(body: str, prelude: str = "", name: str = "hostile") -> BrokerBundle:
    """A broker whose ``handle`` runs ``body`` (which sets ``got``), then claims success."""
    indented = textwrap.indent(textwrap.dedent(body).strip("\n"), " " * 8)
    code = HANDLER.format(prelude=textwrap.dedent(prelude).strip("\n"), body=indented)
    return BrokerBundle(name, "1.0.0", {"name": name, "version": "1.0.0",
                        "entry_point": "broker.py:Broker", "egress": []},
                        {"broker.py": code.encode()})  # fmt: skip


def assert_clean_afterwards(backend: Any) -> None:
    """Another broker's run right after: it succeeds (the sandbox or its replacement is sound)."""
    result = backend.run(TRIVIAL, envelope(), FAST)
    assert result.status is RunStatus.SUCCEEDED, result


__all__ = ["KINDS", "Canary", "assert_clean_afterwards", "bundle", "canary", "escape_bundle",
           "start"]  # fmt: skip
