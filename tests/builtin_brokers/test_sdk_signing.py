"""Standard Webhooks signatures: the published test vector, and what fails to verify."""

from __future__ import annotations

import pytest

from tests.builtin_brokers.sdk_path import sdk_module

signing = sdk_module("sdk_signing")

# the example of the Standard Webhooks reference libraries
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MESSAGE_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
BODY = b'{"test": 2432232314}'
EXPECTED = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_reference_vector() -> None:
    assert signing.signature(SECRET, MESSAGE_ID, TIMESTAMP, BODY) == EXPECTED


def test_headers_verify() -> None:
    headers = signing.webhook_headers("plain secret", "delivery-1", BODY, timestamp=TIMESTAMP)
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    signing.verify("plain secret", headers, BODY, now=TIMESTAMP + 10)


@pytest.mark.parametrize(
    ("secret", "body", "now", "reason"),
    [
        ("other secret", BODY, TIMESTAMP, "no signature matches"),
        ("plain secret", BODY + b" ", TIMESTAMP, "no signature matches"),
        ("plain secret", BODY, TIMESTAMP + 301, "timestamp"),
    ],
)
def test_what_does_not_verify(secret: str, body: bytes, now: int, reason: str) -> None:
    headers = signing.webhook_headers("plain secret", "delivery-1", BODY, timestamp=TIMESTAMP)
    with pytest.raises(signing.SignatureError, match=reason):
        signing.verify(secret, headers, body, now=now)


def test_missing_header() -> None:
    with pytest.raises(signing.SignatureError, match="missing"):
        signing.verify("s", {"webhook-id": "x"}, BODY)
