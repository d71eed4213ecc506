"""``GatewaySession.fetch``: any answer comes back; only a missing answer raises —
against a real receiver on 127.0.0.1."""

from __future__ import annotations

from typing import Any

import pytest

from tests.builtin_brokers.receiver import receiver
from tests.builtin_brokers.sdk_path import sdk_module
from tests.support import free_port

sdk = sdk_module("brokerage_sdk")


def session(payload: dict[str, Any] | None = None) -> Any:
    """A gateway session that ignores the environment's proxies (none here: no gateway)."""
    made = sdk.gateway_session(payload)
    made.trust_env = False
    return made


@pytest.mark.parametrize("status", [200, 403, 404, 422, 500])
def test_any_status_comes_back_with_its_body(status: int) -> None:
    with receiver() as hook:
        response = session().fetch("POST", hook.url(f"/status/{status}"), data=b"x")
    assert response.status_code == status
    assert response.text == "as you asked"


def test_redirects_are_not_followed() -> None:
    with receiver() as hook:
        response = session().fetch("GET", hook.url("/moved"))
    assert response.status_code == 301
    assert len(hook.requests) == 1


def test_delivery_headers_are_sent() -> None:
    with receiver() as hook:
        session({"delivery": {"id": "d-1", "attempt": 3}}).fetch("GET", hook.url())
    assert hook.requests[0].headers["x-brokerage-delivery"] == "d-1"
    assert hook.requests[0].headers["x-brokerage-attempt"] == "3"


def test_refused_connection_names_the_url_without_its_password() -> None:
    url = f"http://bob:s3cret@127.0.0.1:{free_port()}/x"
    with pytest.raises(sdk.TransientError) as raised:
        session().fetch("POST", url)
    assert "connection refused" in str(raised.value)
    assert "s3cret" not in str(raised.value)


def test_a_name_replaces_a_secret_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/hooks/SECRET"
    with pytest.raises(sdk.TransientError, match="^Chat could not be reached$"):
        session().fetch("POST", url, name="Chat")


@pytest.mark.parametrize("url", ["nonsense", "ftp://example.org/x"])
def test_unusable_urls_are_configuration_errors(url: str) -> None:
    with pytest.raises(sdk.ConfigurationError, match="bad URL"):
        session().fetch("GET", url)
