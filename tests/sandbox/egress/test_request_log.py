"""What the request log keeps of each relayed request: its headers and body, the answer's
status, headers and body, cut at the configured sizes, credentials masked."""

from __future__ import annotations

import json

from tests.sandbox.egress.egress_tables import NAMED


def test_request_and_response_are_kept(broker_side, receiver) -> None:
    side = broker_side(NAMED)
    response = side.session.post(
        receiver.url("/hook"), json={"commits": [1, 2]}, headers={"X-Event": "push"}, timeout=10
    )
    [entry] = side.end_run()
    request, answer = entry["request"], entry["response"]
    sent = dict(request["headers"])
    assert sent["Host"] == f"receiver.test:{receiver.port}"
    assert sent["X-Event"] == "push" and sent["Content-Length"] == "19"
    assert (request["body"], request["body_bytes"], request["body_truncated"]) == (
        '{"commits": [1, 2]}',
        19,
        False,
    )
    assert dict(answer["headers"])["Content-Type"] == "application/json"
    assert json.loads(answer["body"]) == response.json()
    assert answer["body_bytes"] == len(response.content) and not answer["body_truncated"]


def test_credentials_are_masked(broker_side, receiver) -> None:
    side = broker_side(NAMED)
    side.session.post(
        receiver.url("/hook?token=tok-in-the-query&page=2").replace("://", "://u:url-pw@"),
        data={"user": "marcus", "password": "form-password", "api_key": "form-key"},
        headers={
            "X-Auth-Token": "bearer-token-1",
            "X-Api-Key": "header-key",
            "Cookie": "session=cookie-value",
            "X-Event": "push",
        },  # fmt: skip
        timeout=10,
    )
    [entry] = side.end_run()
    basic = receiver.requests[-1].headers["authorization"]  # relayed as the broker sent it
    assert basic == "Basic dTp1cmwtcHc="
    text = json.dumps(entry)
    for secret in ("tok-in-the-query", "url-pw", "form-password", "form-key", "bearer-token-1",
                   "header-key", "cookie-value", basic.split()[1]):  # fmt: skip
        assert secret not in text, secret
    headers = dict(entry["request"]["headers"])
    assert headers["Authorization"] == headers["X-Auth-Token"] == "***"
    assert headers["X-Api-Key"] == headers["Cookie"] == "***"
    assert headers["X-Event"] == "push"
    assert entry["url"] == receiver.url("/hook?token=***&page=2")
    assert entry["request"]["body"] == "user=marcus&password=***&api_key=***"


def test_bodies_and_headers_are_cut_at_the_configured_sizes(
    make_gateway, broker_side, receiver
) -> None:
    gateway = make_gateway(log_body_bytes=100, log_header_bytes=120)
    side = broker_side(NAMED, via=gateway)
    response = side.session.post(
        receiver.url("/big?n=5000"), data="é" * 300, headers={"X-Long": "v" * 200}, timeout=10
    )
    assert len(response.content) == 5000  # the broker gets everything; the log keeps less
    [entry] = side.end_run()
    request, answer = entry["request"], entry["response"]
    assert request["body"] == "é" * 50 and request["body_bytes"] == 600
    assert request["body_truncated"] and request["headers_truncated"]
    assert "X-Long" not in dict(request["headers"])
    assert answer["body"] == "x" * 100 and answer["body_bytes"] == 5000 and answer["body_truncated"]


def test_a_binary_body_is_described(broker_side, receiver) -> None:
    side = broker_side(NAMED)
    side.session.post(receiver.url("/hook"), data=b"\xff\xfe\x00binary", timeout=10)
    [entry] = side.end_run()
    assert entry["request"]["body"] == "(9 bytes, not UTF-8 text: not shown)"


def test_a_refused_request_keeps_no_exchange(broker_side, receiver) -> None:
    side = broker_side(["elsewhere.test"])
    side.session.get(receiver.url("/hook"), timeout=10)
    [entry] = side.end_run()
    assert entry["refused"] == "host_not_allowed"
    assert "request" not in entry and "response" not in entry
