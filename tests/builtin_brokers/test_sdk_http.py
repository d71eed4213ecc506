"""What an HTTP answer means to the platform: 2xx fine, 401/403/404/410 and redirects a
configuration error, other failures transient — against a real receiver on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.builtin_brokers.receiver import Receiver, receiver
from tests.builtin_brokers.sdk_path import sdk_module
from tests.support import free_port

sdk = sdk_module("brokerage_sdk")
sdk_http = sdk_module("sdk_http")


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    with receiver() as found:
        yield found


PAYLOAD = {"delivery": {"id": "5b0c3c1e-0000-4000-8000-000000000001", "attempt": 2}}


def test_delivery_headers_and_default_timeout(hook: Receiver) -> None:
    session = sdk_http.gateway_session(PAYLOAD)
    assert session.checked("POST", hook.url(), data=b"x").status_code == 200
    headers = hook.requests[0].headers
    assert headers["x-brokerage-delivery"] == PAYLOAD["delivery"]["id"]
    assert headers["x-brokerage-attempt"] == "2"
    assert session.timeout == sdk_http.DEFAULT_TIMEOUT


@pytest.mark.parametrize(
    ("path", "error", "text"),
    [
        ("/status/401", "ConfigurationError", "answered 401"),
        ("/status/403", "ConfigurationError", "answered 403"),
        ("/status/404", "ConfigurationError", "answered 404"),
        ("/status/410", "ConfigurationError", "answered 410"),
        ("/moved", "ConfigurationError", "redirecting to /elsewhere"),
        ("/status/500", "TransientError", "answered 500"),
        ("/status/503", "TransientError", "answered 503"),
        ("/status/429", "TransientError", "answered 429"),
    ],
)
def test_failed_answers(hook: Receiver, path: str, error: str, text: str) -> None:
    with pytest.raises(getattr(sdk, error), match=text):
        sdk_http.gateway_session().checked("POST", hook.url(path))


def test_connection_refused_is_transient() -> None:
    with pytest.raises(sdk.TransientError, match="refused"):
        sdk_http.gateway_session().checked("GET", f"http://127.0.0.1:{free_port()}/")


@pytest.mark.parametrize("url", ["nonsense", "ftp://example.org/x"])
def test_unusable_urls_are_configuration_errors(url: str) -> None:
    with pytest.raises(sdk.ConfigurationError, match="bad URL"):
        sdk_http.gateway_session().checked("GET", url)


def test_passwords_never_reach_messages() -> None:
    assert (
        sdk_http.redact("https://bob:s3cret@host.example/p?q") == "https://bob:***@host.example/p?q"
    )
    assert sdk_http.redact("https://host.example/") == "https://host.example/"
