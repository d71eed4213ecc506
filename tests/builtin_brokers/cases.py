"""The one harness for the service brokers' failure tables: each test module declares its
broker once (``Broker``) and a table of ``Failure`` cases, and a one-line parametrized test
hands each case to ``run_failure``, which runs the broker in the sandbox against its fake
and checks the outcome, the error's kind and message, and that the fake recorded nothing."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from tests.builtin_brokers.harness import BrokerRig, assert_failed


@dataclass(frozen=True)
class Broker:
    """A broker under test: its name, its fake's host, and the settings that work."""

    name: str
    host: str
    settings: Callable[[BrokerRig], dict[str, str]]
    recorded: str
    """the fake's attribute listing what reached it (``comments``, ``entries``, ...)"""

    @property
    def egress(self) -> list[str]:
        return [self.host, "down.test"]


@dataclass(frozen=True)
class Failure:
    """One failing run: ``settings`` override the working ones (``{url}`` is the fake's
    base URL, ``{dead}`` a port nobody listens on); ``status`` makes every fake answer it."""

    id: str
    kind: str
    message: str = ""
    settings: Mapping[str, str] = field(default_factory=dict)
    status: int | None = None
    silent: bool = False
    """nothing may even be requested (the broker refuses before sending)"""


def failure_id(case: Failure) -> str:
    return case.id


def run_failure(rig: BrokerRig, broker: Broker, case: Failure) -> None:
    rig.fail_with(case.status)
    places = {"{url}": rig.url(broker.host), "{dead}": rig.dead_url()}
    overrides = {k: placed(v, places) for k, v in case.settings.items()}
    result = rig.run(broker.name, "1_commit", {**broker.settings(rig), **overrides}, broker.egress)
    assert_failed(result, case.kind, case.message)
    assert getattr(rig.fake(broker.host), broker.recorded) == []
    if case.silent:
        assert rig.requests == []


def placed(value: str, places: Mapping[str, str]) -> str:
    for placeholder, text in places.items():
        value = value.replace(placeholder, text)
    return value
