"""The SDK's transport once the runner prepared it: plain HTTP straight to the gateway's Unix
socket (no bridge), https through the bridge's CONNECT, the environment read once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from brokerage.sandbox.runner.egress_bridge import start_bridge
from tests.builtin_brokers.sdk_path import sdk_module
from tests.sandbox.egress.egress_tables import NAMED
from tests.support import free_port

sdk = sdk_module("brokerage_sdk")
sdk_http = sdk_module("sdk_http")

PAYLOAD = {"delivery": {"id": "5b0c3c1e-0000-4000-8000-000000000001", "attempt": 1}}


@pytest.fixture
def prepared(gateway, bundle_for, monkeypatch: pytest.MonkeyPatch, tls_cert) -> Iterator[Any]:
    """A channel with a run, and the SDK prepared the way the runner does it: plain HTTP's
    proxy is a dead port (so a request that took the bridge would fail), https's the bridge."""
    channel = gateway.open_channel(bundle_for(NAMED))
    bridge = f"http://127.0.0.1:{start_bridge(channel.socket_path)}"
    for name in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{free_port()}")
    for name in ("HTTPS_PROXY", "https_proxy"):
        monkeypatch.setenv(name, bridge)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_cert[0]))
    monkeypatch.setattr(sdk_http, "_transport", {})
    sdk_http.prepare(channel.socket_path)
    channel.begin_run("delivery-1")
    yield channel
    channel.close()


def test_plain_http_goes_straight_to_the_gateway(prepared, receiver) -> None:
    session = sdk_http.gateway_session(PAYLOAD)
    for n in range(2):
        response = session.checked("POST", receiver.url("/hook"), data={"n": str(n)})
        assert response.json()["length"] == 3
    entries = prepared.end_run()
    assert [(e["method"], e["status"], e["refused"]) for e in entries] == [("POST", 200, None)] * 2
    sent = dict(entries[0]["request"]["headers"])
    assert sent["X-Brokerage-Delivery"] == PAYLOAD["delivery"]["id"]
    assert receiver.requests[-1].headers["user-agent"] == sdk_http.USER_AGENT
    assert not session.trust_env


def test_credentials_in_the_url_become_basic_auth_not_part_of_the_target(
    prepared, receiver
) -> None:
    url = receiver.url("/hook").replace("://", "://user:pw-in-url@")
    sdk_http.gateway_session(PAYLOAD).checked("GET", url)
    [entry] = prepared.end_run()
    assert entry["url"] == receiver.url("/hook")
    assert receiver.requests[-1].headers["authorization"] == "Basic dXNlcjpwdy1pbi11cmw="


def test_gateway_refusals_still_reach_the_broker(prepared) -> None:
    with pytest.raises(sdk.ConfigurationError, match="host_not_allowed"):
        sdk_http.gateway_session(PAYLOAD).checked("GET", "http://other.test/")
    assert [e["refused"] for e in prepared.end_run()] == ["host_not_allowed"]


def test_https_still_tunnels_through_the_bridge(prepared, tls_receiver) -> None:
    response = sdk_http.gateway_session(PAYLOAD).checked("GET", tls_receiver.url("/x"))
    assert response.status_code == 200
    [entry] = prepared.end_run()
    assert entry["method"] == "CONNECT" and entry["status"] == 200


def test_a_missing_gateway_socket_is_transient(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sdk_http, "_transport", {})
    sdk_http.prepare("/nonexistent/egress.sock")
    with pytest.raises(sdk.TransientError, match="could not be reached|refused|No such file"):
        sdk_http.gateway_session().checked("GET", "http://receiver.test/", name="the hook")


def test_broker_code_cannot_hold_the_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    """The adapter the SDK mounts is a new object in the run's process: the guards refuse
    it (and what it offers) to broker code, like requests' own adapters."""
    policy = sdk_module("policy")
    monkeypatch.setattr(sdk_http, "_transport", {})
    sdk_http.prepare("/run/brokerage/egress.sock")
    session = sdk_http.gateway_session()
    judge = policy.Policy(("requests", "brokerage_sdk"), {}, {})
    assert judge.vet(session) is session  # the SDK's session itself stays usable
    for value in (session.get_adapter("http://x"), session.adapters["https://"]):
        with pytest.raises(AttributeError, match="not available to broker code"):
            judge.vet(value)
        with pytest.raises(AttributeError, match="not available to broker code"):
            judge.vet(value.send)
