"""The policy on its own: host spellings, address classes, host patterns, operator ranges."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from brokerage.sandbox.egress.errors import EgressRefusedError, GatewayConfigError, Refusal
from brokerage.sandbox.egress.policy import (
    EgressPolicy,
    HostMatch,
    classify,
    parse_extra_ranges,
    parse_host,
    parse_ipv4_loose,
)

INET_ATON_SPELLINGS = [
    "127.0.0.1", "2130706433", "0x7f000001", "0x7F.0.0.1", "0177.0.0.1", "017700000001",
    "127.1", "127.0.1", "0x7f.1", "0", "00", "0x0", "4294967295", "0xa9fea9fe",
    "0251.0376.0251.0376", "169.254.43518", "1.2.3.256", "08.0.0.1", "0x100.0.0.1",
    "4294967296", "1.2.3.4.5", "0x", "1..2", "", "127.0.0.1 x", "-1", "+1",
]  # fmt: skip


@pytest.mark.parametrize("text", INET_ATON_SPELLINGS)
def test_ipv4_literals_mean_what_inet_aton_says(text: str) -> None:
    try:
        expected: str | None = socket.inet_ntoa(socket.inet_aton(text))
    except OSError:
        expected = None
    if " " in text:
        expected = None  # glibc ignores trailing junk; we refuse it
    parsed = parse_ipv4_loose(text)
    assert (str(parsed) if parsed else None) == expected


@pytest.mark.parametrize(
    ("host", "canonical"),
    [
        ("LocalHost.", "localhost"),
        ("Hooks.Example.COM", "hooks.example.com"),
        ("2130706433", ipaddress.ip_address("127.0.0.1")),
        ("[::ffff:127.0.0.1]", ipaddress.ip_address("::ffff:127.0.0.1")),
        ("[::1]", ipaddress.ip_address("::1")),
    ],
)
def test_hosts_are_canonicalised(host: str, canonical: object) -> None:
    assert parse_host(host) == canonical


@pytest.mark.parametrize(
    "host",
    [
        "1.2.3.999", "08.0.0.1", "a..b", "exa mple.com", "x\r\ny", "x\0y", "-lead.com",
        "[fe80::1%25eth0]", "[::1", "[not-ip]", "bücher.example", "a" * 64 + ".com", "",
        "1.2.3.4.5",
    ],
)  # fmt: skip
def test_bad_hosts_are_refused(host: str) -> None:
    with pytest.raises(EgressRefusedError) as caught:
        parse_host(host)
    assert caught.value.reason is Refusal.BAD_HOST


@pytest.mark.parametrize(
    ("address", "category"),
    [
        ("127.0.0.1", "loopback"), ("127.200.0.9", "loopback"), ("::1", "loopback"),
        ("0.0.0.0", "this-network"), ("0.1.2.3", "this-network"), ("::", "unspecified"),
        ("10.1.2.3", "private"), ("172.31.255.255", "private"), ("192.168.0.1", "private"),
        ("100.64.0.1", "cgnat"), ("100.127.255.254", "cgnat"),
        ("169.254.169.254", "metadata"), ("fd00:ec2::254", "metadata"),
        ("169.254.1.1", "link-local"), ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"), ("ff02::1", "multicast"), ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"), ("fc00::1", "unique-local"), ("fd12::1", "unique-local"),
        ("198.18.0.1", "benchmarking"), ("192.0.2.1", "documentation"),
        ("::ffff:127.0.0.1", "ipv4-mapped 127.0.0.1"), ("::ffff:8.8.8.8", "ipv4-mapped 8.8.8.8"),
        ("::127.0.0.1", "ipv4-compatible 127.0.0.1"), ("64:ff9b::7f00:1", "nat64 127.0.0.1"),
        ("64:ff9b:1::a00:1", "nat64 10.0.0.1"), ("2002:7f00:1::", "6to4 127.0.0.1"),
        ("2002:a9fe:a9fe::1", "6to4 169.254.169.254"),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "teredo 127.0.0.1"),
    ],
)  # fmt: skip
def test_non_public_addresses_are_classified(address: str, category: str) -> None:
    assert classify(ipaddress.ip_address(address)) == category


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert classify(ipaddress.ip_address(address)) is None


def _policy(*patterns: str, extra: tuple[str, ...] = ("127.0.0.1/32",)) -> EgressPolicy:
    return EgressPolicy(patterns, {80, 443}, parse_extra_ranges(extra))


def test_exact_and_wildcard_hosts_match_named() -> None:
    policy = _policy("hooks.example.com", "*.slack.com")
    assert policy.match_host("hooks.example.com").named
    assert policy.match_host("a.b.slack.com").named
    for host in ("slack.com", "evilslack.com", "example.com", "hooks.example.com.evil"):
        with pytest.raises(EgressRefusedError) as caught:
            policy.match_host(host)
        assert caught.value.reason is Refusal.HOST_NOT_ALLOWED


def test_star_matches_any_host_but_is_not_named() -> None:
    match = _policy("*").match_host("anything.example")
    assert match == HostMatch("anything.example", named=False)


def test_ip_literal_entries_match_by_meaning() -> None:
    policy = _policy("127.0.0.1")
    assert policy.match_host(parse_host("0x7f.0.0.1")).named


def test_extra_ranges_open_only_named_hosts() -> None:
    policy = _policy("*", "receiver.test")
    loopback = ipaddress.ip_address("127.0.0.1")
    policy.check_address(loopback, HostMatch("receiver.test", named=True))
    with pytest.raises(EgressRefusedError):
        policy.check_address(loopback, HostMatch("other.test", named=False))
    with pytest.raises(EgressRefusedError):
        policy.check_address(ipaddress.ip_address("127.0.0.2"), HostMatch("r", named=True))


@pytest.mark.parametrize(
    "address", ["169.254.169.254", "::ffff:127.0.0.1", "224.0.0.1", "0.0.0.0", "fd00:ec2::254"]
)
def test_no_operator_range_opens_metadata_multicast_or_transition_forms(address: str) -> None:
    extra = ("169.254.0.0/16", "127.0.0.0/8", "224.0.0.0/8", "0.0.0.0/8", "::ffff:0:0/96",
             "fd00:ec2::/32")  # fmt: skip
    policy = _policy("named.test", extra=extra)
    with pytest.raises(EgressRefusedError) as caught:
        policy.check_address(ipaddress.ip_address(address), HostMatch("named.test", named=True))
    assert caught.value.reason is Refusal.ADDRESS_DENIED


@pytest.mark.parametrize("extra", ["0.0.0.0/0", "0.0.0.0/7", "::/0", "2000::/3", "10.0.0.1/8", "x"])
def test_ranges_that_would_switch_the_guard_off_are_rejected(extra: str) -> None:
    with pytest.raises(GatewayConfigError):
        parse_extra_ranges([extra])


def test_ports_outside_the_set_are_refused() -> None:
    with pytest.raises(EgressRefusedError) as caught:
        _policy("*").check_port(6379)
    assert caught.value.reason is Refusal.PORT_NOT_ALLOWED


def test_service_named_hosts_count_as_named_only_under_star() -> None:
    from brokerage.sandbox.egress.policy import hosts_named_by

    named = hosts_named_by(
        [
            "http://127.0.0.1:8099/hook",
            "https://user:pw@CI.Example.com./x",
            "http://[::1]:80/",
            "not a url",
            "",
        ]
    )
    assert named == frozenset({"127.0.0.1", "ci.example.com", "[::1]"})
    assert _policy("*").match_host(parse_host("127.0.0.1"), named).named
    assert not _policy("*").match_host(parse_host("127.0.0.2"), named).named
    with pytest.raises(EgressRefusedError):
        _policy("hooks.example.com").match_host(parse_host("127.0.0.1"), named)
