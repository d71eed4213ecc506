"""An in-memory backend for unit tests of other components. Runs nothing.

It answers from canned results (per broker name) or a handler you give it, and
records every call, so a dispatcher's tests can run without Docker. It is
checked against :class:`SandboxBackend` like the real backends; config only
selects it when asked for by name.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from brokerage.sandbox.interface import BrokerBundle, Limits, RunResult, RunStatus

Handler = Callable[[BrokerBundle, Mapping[str, Any], Limits], RunResult]


@dataclass(frozen=True)
class FakeCall:
    bundle: BrokerBundle
    envelope: Mapping[str, Any]
    limits: Limits
    tenant: str | None = None


class FakeBackend:
    name = "fake"

    def __init__(
        self,
        results: Mapping[str, RunResult] | None = None,
        handler: Handler | None = None,
    ) -> None:
        self.results = dict(results or {})
        self.handler = handler
        self.calls: list[FakeCall] = []
        self.closed = False

    def run(self, bundle: BrokerBundle, envelope: Mapping[str, Any], limits: Limits,
            tenant: str | None = None) -> RunResult:  # fmt: skip
        self.calls.append(FakeCall(bundle, copy.deepcopy(dict(envelope)), limits, tenant))
        if self.handler is not None:
            return self.handler(bundle, envelope, limits)
        canned = self.results.get(bundle.name)
        if canned is not None:
            return replace(canned, backend=self.name)
        return RunResult(status=RunStatus.SUCCEEDED, exit_code=0, result={}, backend=self.name)

    def close(self) -> None:
        self.closed = True
