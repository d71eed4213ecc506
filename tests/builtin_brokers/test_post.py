"""The POST broker through the real sandbox and gateway to a recording receiver on
127.0.0.1: one line per case — fixture, service fields, expected outcome."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.builtin_brokers.fixtures import fixture
from tests.builtin_brokers.harness import RECEIVER_HOST, BrokerRig
from tests.builtin_brokers.receiver import Recorded
from tests.builtin_brokers.sdk_path import sdk_module

signing = sdk_module("sdk_signing")

EGRESS = [RECEIVER_HOST]
ENVELOPE_ONLY = ("service", "broker", "delivery")


def sent_payload(request: Recorded) -> dict[str, Any]:
    """What the receiver got, decoded the way the content type says."""
    if request.headers["content-type"] == "application/json":
        loaded: dict[str, Any] = json.loads(request.body)
        return loaded
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert list(request.form) == ["payload"]  # as the classic POST sent it
    decoded: dict[str, Any] = json.loads(request.form["payload"])
    return decoded


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@dataclass
class Case:
    variant: str
    service: dict[str, str]
    outcome: str = "succeeded"  # or the error kind: configuration / transient
    message: str = ""
    check: Callable[[Recorded], None] | None = None
    requests: int = 1
    id: str = field(default="")


def signed(request: Recorded) -> None:
    signing.verify("s3cret", request.headers, request.body)
    assert request.headers["webhook-id"] == request.headers["x-brokerage-delivery"]


CASES = [
    Case("1_commit", {"URL": "{url}/hook"}, id="form-encoded like Bitbucket"),
    Case("3_commits", {"URL": "{url}/hook?token=abc", "Content type": "application/json"},
         id="JSON body, token in the query"),
    Case("truncated_with_refs", {"URL": "{url}/hook"}, id="additive keys are forwarded"),
    Case("1_commit", {"URL": "{auth}/hook"}, id="HTTP Basic from user:pass@",
         check=lambda r: _equal(r.headers["authorization"], basic_auth("bob", "p@ss word"))),
    Case("3_commits", {"URL": "{url}/hook", "Secret": "s3cret"}, check=signed,
         id="Standard Webhooks signature"),
    Case("1_commit", {"URL": "{url}/status/404"}, "configuration", "answered 404", id="404"),
    Case("1_commit", {"URL": "{url}/status/401"}, "configuration", "answered 401", id="401"),
    Case("1_commit", {"URL": "{url}/status/410"}, "configuration", "answered 410", id="410"),
    Case("1_commit", {"URL": "{url}/moved"}, "configuration", "redirecting to", id="redirect"),
    Case("1_commit", {"URL": "{url}/status/500"}, "transient", "answered 500", id="500"),
    Case("1_commit", {"URL": "{url}/status/503"}, "transient", "answered 503", id="503"),
    Case("1_commit", {"URL": ""}, "configuration", "URL: required", requests=0, id="no URL"),
    Case("1_commit", {"URL": "ftp://receiver.test/x"}, "configuration", "not an http or https URL",
         requests=0, id="not http"),
    Case("1_commit", {"URL": "http://elsewhere.example/hook"}, "configuration", "host_not_allowed",
         requests=0, id="host outside the egress list"),
    Case("1_commit", {"URL": "{url}/hook", "Content type": "text/xml"}, "configuration",
         "Content type", requests=0, id="unknown content type"),
]  # fmt: skip


def _equal(got: Any, expected: Any) -> None:
    assert got == expected


def fill(service: dict[str, str], rig: BrokerRig) -> dict[str, str]:
    url = rig.hook_url("").rstrip("/")
    auth = rig.hook_url("", userinfo="bob:p%40ss%20word@").rstrip("/")
    return {k: v.replace("{url}", url).replace("{auth}", auth) for k, v in service.items()}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_post(rig: BrokerRig, case: Case) -> None:
    result = rig.run("post", case.variant, fill(case.service, rig), egress=EGRESS)
    assert len(rig.hook.requests) == case.requests, result
    if case.outcome == "succeeded":
        assert result.status == "succeeded", result.error
        request = rig.hook.requests[0]
        assert request.method == "POST"
        assert "@" not in request.path and "bob" not in request.path
        expected = {
            k: v for k, v in fixture("post", case.variant).items() if k not in ENVELOPE_ONLY
        }
        assert sent_payload(request) == expected
        assert request.headers["x-brokerage-delivery"]
        assert ("webhook-signature" in request.headers) == ("Secret" in case.service)
        if case.check:
            case.check(request)
        assert result.requests and result.requests[-1]["status"] == 200
        assert result.result and result.result["status"] == 200
    else:
        assert result.status == "failed"
        assert result.error and result.error["kind"] == case.outcome
        assert case.message in result.error["message"]
        assert "p@ss" not in json.dumps(result.error) and "s3cret" not in json.dumps(result.error)


def test_the_real_manifest_never_reaches_private_addresses(rig: BrokerRig) -> None:
    """POST's manifest allows any *public* host: a URL on 127.0.0.1 is refused by the
    gateway (even with 127.0.0.1/32 opened) unless the run's service named that host —
    the dispatcher does that for the service's URL fields; this bare run names none."""
    result = rig.run("post", "1_commit", {"URL": rig.hook.url("/hook")})
    assert rig.hook.requests == []
    assert result.error and result.error["kind"] == "configuration"
    assert "address_denied" in result.error["message"]
