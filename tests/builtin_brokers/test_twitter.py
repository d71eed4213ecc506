"""Twitter: OAuth 1.0a signing against RFC 5849's vectors (unit), then the broker through
the real sandbox and gateway against a local fake of ``POST /2/tweets``."""

from __future__ import annotations

import pytest

from tests.builtin_brokers.cases import Broker, Failure, failure_id, run_failure
from tests.builtin_brokers.harness import BrokerRig, assert_failed, assert_succeeded, broker_module

HOST = "api.twitter.test"
EGRESS = [HOST, "down.test"]
CREDENTIALS = {"Consumer Key": "consumer-key", "Consumer Secret": "consumer-secret",
               "Token": "token", "Secret": "token-secret"}  # fmt: skip


oauth1 = broker_module("twitter", "oauth1")


# -- RFC 5849 -------------------------------------------------------------------------


def test_rfc5849_section_1_2_resource_request() -> None:
    """Section 1.2: GET /photos with token credentials signs to MdpQcU8iPSUjWoN/UDMsK2sui9I=."""
    url = "http://photos.example.net/photos?file=vacation.jpg&size=original"
    params = [("oauth_consumer_key", "dpf43f3p2l4k3l03"), ("oauth_token", "nnch734d00sl2jdk"),
              ("oauth_signature_method", "HMAC-SHA1"), ("oauth_timestamp", "137131202"),
              ("oauth_nonce", "chapoH")]  # fmt: skip
    base = oauth1.signature_base_string("GET", url, params)
    assert base == (
        "GET&http%3A%2F%2Fphotos.example.net%2Fphotos&file%3Dvacation.jpg%26"
        "oauth_consumer_key%3Ddpf43f3p2l4k3l03%26oauth_nonce%3DchapoH%26"
        "oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D137131202%26"
        "oauth_token%3Dnnch734d00sl2jdk%26size%3Doriginal"
    )
    signature = oauth1.hmac_sha1_signature(base, "kd94hf93k423kf44", "pfkkdhi9sl3r4s00")
    assert signature == "MdpQcU8iPSUjWoN/UDMsK2sui9I="


def test_rfc5849_section_1_2_temporary_credentials() -> None:
    """Section 1.2: /initiate (no token, no token secret) signs to 74KNZJeDHnMBp0EMJ9ZHt/XKycU=."""
    params = [("oauth_consumer_key", "dpf43f3p2l4k3l03"), ("oauth_signature_method", "HMAC-SHA1"),
              ("oauth_timestamp", "137131200"), ("oauth_nonce", "wIjqoS"),
              ("oauth_callback", "http://printer.example.com/ready")]  # fmt: skip
    base = oauth1.signature_base_string("POST", "https://photos.example.net/initiate", params)
    assert oauth1.hmac_sha1_signature(base, "kd94hf93k423kf44") == "74KNZJeDHnMBp0EMJ9ZHt/XKycU="


def test_rfc5849_section_3_4_1_base_string() -> None:
    """Section 3.4.1.1's example: query, form body and oauth_* parameters, encoded twice."""
    url = "http://example.com/request?b5=%3D%253D&a3=a&c%40=&a2=r%20b"
    params = [("oauth_consumer_key", "9djdj82h48djs9d2"), ("oauth_token", "kkk9d7dh3k39sjv7"),
              ("oauth_signature_method", "HMAC-SHA1"), ("oauth_timestamp", "137131201"),
              ("oauth_nonce", "7d8f3e4a"), ("c2", ""), ("a3", "2 q")]  # fmt: skip
    assert oauth1.signature_base_string("POST", url, params) == (
        "POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q%26a3%3Da%26"
        "b5%3D%253D%25253D%26c%2540%3D%26c2%3D%26oauth_consumer_key%3D9djdj82h48djs9d2%26"
        "oauth_nonce%3D7d8f3e4a%26oauth_signature_method%3DHMAC-SHA1%26"
        "oauth_timestamp%3D137131201%26oauth_token%3Dkkk9d7dh3k39sjv7"
    )


@pytest.mark.parametrize(("url", "expected"), [
    ("HTTP://EXAMPLE.COM:80/r%20v/X?id=123", "http://example.com/r%20v/X"),
    ("https://www.example.net:8080/?q=1", "https://www.example.net:8080/"),
    ("https://api.twitter.com:443/2/tweets", "https://api.twitter.com/2/tweets"),
])  # fmt: skip
def test_rfc5849_section_3_4_1_2_base_string_uri(url: str, expected: str) -> None:
    assert oauth1.base_string_uri(url) == expected


def test_percent_encoding_is_rfc3986_not_form_encoding() -> None:
    assert oauth1.percent_encode("a b+c~*'é") == "a%20b%2Bc~%2A%27%C3%A9"


def test_header_carries_every_protocol_parameter_signed() -> None:
    header = oauth1.authorization_header(
        "POST",
        "https://api.twitter.com/2/tweets",
        ("ck", "cs", "tk", "ts"),
        nonce="n0nce",
        timestamp=1700000000,
    )
    assert header.startswith("OAuth ")
    fields = dict(part.split("=", 1) for part in header[len("OAuth ") :].split(", "))
    assert {k: v.strip('"') for k, v in fields.items() if k != "oauth_signature"} == {
        "oauth_consumer_key": "ck", "oauth_nonce": "n0nce", "oauth_signature_method": "HMAC-SHA1",
        "oauth_timestamp": "1700000000", "oauth_token": "tk", "oauth_version": "1.0",
    }  # fmt: skip
    assert fields["oauth_signature"].endswith('%3D"')  # base64 padding, percent-encoded


# -- through the sandbox ------------------------------------------------------------------


def service(rig: BrokerRig, **overrides: str) -> dict[str, str]:
    return {**CREDENTIALS, "API URL": rig.url(HOST), **overrides}


def test_one_commit_posts_the_default_format(rig: BrokerRig) -> None:
    result = rig.run("twitter", "1_commit", service(rig), EGRESS)
    assert result.status == "succeeded", result.error
    assert rig.fake(HOST).texts == ["Project X - marcus - Added some more things to somefile.py"]
    (request,) = rig.requests
    assert request.method == "POST" and request.route == "/2/tweets"
    assert result.result and result.result["tweets"] == ["1445880548472328193"]


def test_three_commits_post_three_tweets_with_a_custom_format(rig: BrokerRig) -> None:
    fmt = "[${repository.slug}@${commit.branch}] ${commit.message} ${commit.tinyurl}"
    result = rig.run("twitter", "3_commits", service(rig, Format=fmt), EGRESS)
    assert result.status == "succeeded", result.error
    texts = rig.fake(HOST).texts
    assert [t.rsplit(" ", 1)[0] for t in texts] == [
        "[project-x@master] Added some more things to somefile.py",
        "[project-x@master] Fixed the frobnicator",
        "[project-x@feature] Unicode: naïve café ☕",
    ]
    assert all(t.rsplit(" ", 1)[1].startswith("https://brokerage.example/c/") for t in texts)


def test_a_retry_skips_what_twitter_already_has(rig: BrokerRig) -> None:
    first = rig.run("twitter", "3_commits", service(rig), EGRESS)
    again = rig.run("twitter", "3_commits", service(rig), EGRESS, attempt=2)
    assert first.status == again.status == "succeeded", again.error
    assert len(rig.fake(HOST).texts) == 3
    assert again.result and again.result["already_posted"] == 3


def test_a_long_message_is_cut_to_280_characters(rig: BrokerRig) -> None:
    result = rig.run("twitter", "1_commit", service(rig, Format="x" * 400), EGRESS)
    assert result.status == "succeeded", result.error
    (text,) = rig.fake(HOST).texts
    assert len(text) == 280 and text.endswith("…")


BROKER = Broker("twitter", HOST, service, "texts")
FAILURES = [
    *(Failure(f"wrong-{label}", "configuration", "refused the credentials (401)", {label: "wrong"})
      for label in sorted(CREDENTIALS)),
    Failure("missing-token", "configuration", "Token", {"Token": ""}, silent=True),
    *(Failure(f"twitter-failing-{status}", "transient", f"answered {status}", status=status)
      for status in (500, 503, 429)),
    Failure("twitter-unreachable", "transient", settings={"API URL": "{dead}"}),
]  # fmt: skip


@pytest.mark.parametrize("case", FAILURES, ids=failure_id)
def test_failures(rig: BrokerRig, case: Failure) -> None:
    run_failure(rig, BROKER, case)


def test_the_real_manifest_reaches_only_twitter(rig: BrokerRig) -> None:
    result = rig.run("twitter", "1_commit", service(rig), egress=None)
    assert result.error and result.error["kind"] == "configuration"
    assert "host_not_allowed" in result.error["message"]
    assert rig.requests == []


def test_markup_is_sent_as_plain_text(rig: BrokerRig) -> None:
    assert_succeeded(rig.run("twitter", "markup", service(rig), EGRESS))
    assert rig.fake(HOST).texts == [
        "Project X - o'brien & co - Escape <b>this</b> & \"that\" 'too' ]]> done"
    ]


def test_a_retry_after_twitter_was_down_posts_everything(rig: BrokerRig) -> None:
    rig.fail_with(503)
    assert_failed(rig.run("twitter", "3_commits", service(rig), EGRESS), "transient")
    rig.fail_with(None)
    again = rig.run("twitter", "3_commits", service(rig), EGRESS, attempt=2)
    assert len(assert_succeeded(again)["tweets"]) == 3
