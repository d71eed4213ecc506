"""``http://brokerage.internal/api/...``: forwarded to the platform (a real HTTP server on
127.0.0.1 here) with a token the gateway mints per delivery; the broker's own credentials
never pass."""

from __future__ import annotations

import pytest
import requests

from brokerage.sandbox.egress.errors import GatewayError
from brokerage.sandbox.egress.proxy import REFUSED_HEADER
from brokerage.sandbox.egress.relay import ApiCall, GatewayApiForwarder

API = "http://brokerage.internal/api"


@pytest.fixture
def minted() -> list[ApiCall]:
    return []


@pytest.fixture
def api_gateway(make_gateway, receiver, minted):
    def mint(call: ApiCall) -> str:
        minted.append(call)
        return f"tok-{call.delivery_id}"

    forwarder = GatewayApiForwarder(f"http://127.0.0.1:{receiver.port}/platform", mint)
    return make_gateway(api_forwarder=forwarder)


def test_api_calls_carry_a_per_delivery_token(api_gateway, broker_side, receiver, minted) -> None:
    side = broker_side([], permissions=["issues:write"], via=api_gateway)
    reply = side.session.post(
        f"{API}/1.0/repositories/o/r/issues/7/comments?x=1",
        json={"content": "fixed"},
        headers={"Authorization": "Bearer forged", "Cookie": "session=stolen"},
        timeout=10,
    )
    assert reply.status_code == 200
    seen = receiver.requests[-1]
    assert seen.path == "/platform/1.0/repositories/o/r/issues/7/comments?x=1"
    assert seen.headers["authorization"] == "Bearer tok-delivery-0"
    assert "cookie" not in seen.headers
    assert seen.body == b'{"content": "fixed"}'
    [call] = minted
    assert (call.broker, call.version, call.permissions) == ("probe", "1.0.0", ("issues:write",))
    [entry] = side.end_run()
    assert (entry["url"], entry["status"]) == (
        f"{API}/1.0/repositories/o/r/issues/7/comments?x=1",
        200,
    )


def test_a_broker_without_permissions_gets_no_api(api_gateway, broker_side) -> None:
    side = broker_side([], via=api_gateway)
    reply = side.session.get(f"{API}/1.0/user", timeout=10)
    assert (reply.status_code, reply.headers[REFUSED_HEADER]) == (403, "api_denied")


def test_the_reserved_host_has_no_tls(api_gateway, broker_side) -> None:
    side = broker_side(["*"], permissions=["issues:write"], via=api_gateway)
    with pytest.raises(requests.exceptions.ProxyError):
        side.session.get("https://brokerage.internal/api/1.0/user", timeout=10)
    assert [e["refused"] for e in side.end_run()] == ["bad_request"]


def test_the_base_url_must_be_http() -> None:
    with pytest.raises(GatewayError):
        GatewayApiForwarder("file:///etc/passwd", lambda call: "t")
