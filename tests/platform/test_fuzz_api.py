"""Schemathesis against the live API: a real waitress server on 127.0.0.1 (with the
platform's JSON error channel) over a real database, SQLite and PostgreSQL.

Every operation of ``/1.0/openapi.json`` gets ``EXAMPLES`` generated requests that fit the
document and ``EXAMPLES`` that do not (schemathesis's positive and negative modes); most of
them aim at a seeded repository and its objects, so they reach past the 404s. Each answer
must not be a 5xx, and must match the document (status, content type, body schema,
headers). A failure lists every operation that failed, with the request to replay it.

The document carries links (a created issue, service, token, test delivery or repository
leads to the calls that use it), but schemathesis's stateful mode is not run here: against a
server whose database keeps what earlier examples created, Hypothesis's replays diverge
(``FlakyStrategyDefinition``) in about half the runs. The seeded objects stand in for it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from brokerage.core.accounts import Role
from brokerage.platform.api import contract
from brokerage.platform.server import wsgi
from tests.support import FORM, Seeder, basic, free_port

EXAMPLES = 10
"""generated requests per operation and mode (about 900 in all per database)"""
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@pytest.fixture
def served(app: Flask, seed: Seeder) -> Iterator[dict[str, Any]]:
    """The app behind waitress, with a repository, a service, an issue and a push."""
    seed.user("fuzz", Role.OPERATOR, Role.REVIEWER, Role.VENDOR)
    seed.repo("fuzz", "repo", is_private=False)
    client = app.test_client()
    auth = basic("fuzz")
    service = client.post(
        "/1.0/repositories/fuzz/repo/services",
        data="type=POST&URL=http%3A%2F%2F127.0.0.1%3A9%2F",
        headers={**auth, **FORM},
    ).json["id"]
    issue = client.post("/1.0/repositories/fuzz/repo/issues", json={"title": "x"}, headers=auth)
    push_token = client.post("/1.0/repositories/fuzz/repo/push-token", headers=auth).json["token"]
    port = free_port()
    server = wsgi.create_server(app, "127.0.0.1", port, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield {
        "base_url": f"http://127.0.0.1:{port}",
        "token": seed.token("fuzz"),
        "push_token": push_token,
        "ids": {"service_id": service, "issue_id": issue.json["id"], "token_id": 1},
    }
    server.close()


AIM = st.sampled_from(["seeded", "seeded", "seeded", "as generated"])


def fuzzed(
    operation: Any, mode: schemathesis.GenerationMode, served: dict[str, Any], ran: list[int]
) -> Callable[[], None]:
    """A hypothesis test of one operation in one mode, aiming at the seeded objects."""
    token = served["push_token"] if operation.path.endswith("/pushes") else served["token"]
    headers = {"Authorization": f"Bearer {token}"}

    @given(case=operation.as_strategy(generation_mode=mode), aim=AIM)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any, aim: str) -> None:
        if aim == "seeded" and case.path_parameters:
            case.path_parameters |= {"account": "fuzz", "repo_slug": "repo"}
            for name, value in served["ids"].items():
                if name in case.path_parameters:
                    case.path_parameters[name] = value
        ran.append(1)
        case.call_and_validate(
            base_url=served["base_url"], headers=headers, checks=CHECKS, timeout=30
        )

    return run


def test_no_5xx_and_every_answer_matches_the_document(app: Flask, served: dict[str, Any]) -> None:
    schema = schemathesis.openapi.from_dict(contract.document())
    failures: list[str] = []
    ran: list[int] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            try:
                fuzzed(operation, mode, served, ran)()
            except hypothesis.errors.Unsatisfiable:
                continue  # nothing invalid to generate for this operation
            except (Exception, FailureGroup) as exc:  # noqa: BLE001  (reported together)
                failures.append(f"{operation.label} ({mode}): {exc}"[:3000])
    assert not failures, "\n\n".join(failures)
    assert len(ran) >= EXAMPLES * 40
