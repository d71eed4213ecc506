"""What a broker may reach: host allowlist, port allowlist, and the address guard.

A request is allowed when all three hold:

1. its host matches the manifest's ``egress`` list — an exact host, ``*.domain``
   (any name below ``domain``, not ``domain`` itself), or ``"*"`` (any *public* host);
2. its port is in the operator's allowed set;
3. the address the gateway connects to is public. Operators may open extra
   ranges (tests open ``127.0.0.1/32``), but only for hosts someone *named*: the
   manifest (exact or ``*.domain``), or the repo admin in the service's own URL
   fields (the POST broker's ``URL``, a Jenkins endpoint), which the platform hands
   the gateway per delivery. ``"*"`` alone never reaches a non-public address, and
   cloud-metadata, unspecified, multicast and IPv4-in-IPv6 transition forms are
   refused whatever the configuration says.

IPv4 literals are read the way ``inet_aton`` reads them (``2130706433``,
``0x7f.0.0.1``, ``0177.0.0.1``, ``127.1``) and judged by the address they mean.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NoReturn
from urllib.parse import urlsplit

from brokerage.sandbox.egress.errors import EgressRefusedError, GatewayConfigError, Refusal

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

RESERVED_HOST = "brokerage.internal"
"""The name that routes to the platform itself (mail, API); never resolved."""

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200", "192.0.0.192")
)
"""Cloud instance-metadata endpoints (AWS, ECS, AWS IPv6, Alibaba, Oracle)."""

TRANSITION_FORMS: tuple[tuple[Network, str], ...] = (
    (_V6("::ffff:0:0/96"), "ipv4-mapped"),
    (_V6("::/96"), "ipv4-compatible"),
    (_V6("64:ff9b::/96"), "nat64"),
    (_V6("64:ff9b:1::/48"), "nat64"),
    (_V6("2002::/16"), "6to4"),
    (_V6("2001::/32"), "teredo"),
)
"""IPv6 ranges that carry an IPv4 address; refused always, named with what they embed."""

DENIED_RANGES: tuple[tuple[Network, str], ...] = (
    (_V4("0.0.0.0/8"), "this-network"),
    (_V4("10.0.0.0/8"), "private"),
    (_V4("100.64.0.0/10"), "cgnat"),
    (_V4("127.0.0.0/8"), "loopback"),
    (_V4("169.254.0.0/16"), "link-local"),
    (_V4("172.16.0.0/12"), "private"),
    (_V4("192.0.0.0/24"), "ietf-protocol"),
    (_V4("192.0.2.0/24"), "documentation"),
    (_V4("192.88.99.0/24"), "6to4-relay"),
    (_V4("192.168.0.0/16"), "private"),
    (_V4("198.18.0.0/15"), "benchmarking"),
    (_V4("198.51.100.0/24"), "documentation"),
    (_V4("203.0.113.0/24"), "documentation"),
    (_V4("224.0.0.0/4"), "multicast"),
    (_V4("240.0.0.0/4"), "reserved"),
    (_V6("::/128"), "unspecified"),
    (_V6("::1/128"), "loopback"),
    (_V6("100::/64"), "discard"),
    (_V6("2001:db8::/32"), "documentation"),
    (_V6("2001::/23"), "ietf-protocol"),
    (_V6("fc00::/7"), "unique-local"),
    (_V6("fe80::/10"), "link-local"),
    (_V6("fec0::/10"), "site-local"),
    (_V6("ff00::/8"), "multicast"),
)
"""Non-public ranges and the name a refusal gives them."""

NEVER_OPENABLE = frozenset(
    {"metadata", "multicast", "unspecified", "this-network", "reserved"}
    | {name for _, name in TRANSITION_FORMS}
)
"""Categories no operator range can open."""

MIN_EXTRA_PREFIX = {4: 8, 6: 32}
"""Shortest prefix an operator range may have, per IP version: wider would switch the guard off."""

_HOSTNAME = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)(\.(?!-)[a-z0-9_-]{1,63}(?<!-))*")
_INET_ATON_PART = re.compile(r"0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*")


def parse_ipv4_loose(text: str) -> ipaddress.IPv4Address | None:
    """Read ``text`` as ``inet_aton`` does (1–4 parts, decimal/octal/hex); None if it isn't one."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4 or not all(_INET_ATON_PART.fullmatch(p) for p in parts):
        return None
    values = [_inet_aton_part(p) for p in parts]
    if any(v > 255 for v in values[:-1]) or values[-1] >= 256 ** (5 - len(parts)):
        return None
    number = values[-1]
    for index, value in enumerate(values[:-1]):
        number += value << (8 * (3 - index))
    return ipaddress.IPv4Address(number)


def _inet_aton_part(part: str) -> int:
    if part[:2].lower() == "0x":
        return int(part[2:], 16)
    if part.startswith("0"):
        return int(part, 8)
    return int(part)


def parse_host(host: str) -> str | IPAddress:
    """Canonical form of a URL/CONNECT host: an IP address, or a lower-case name.

    Raises ``EgressRefusedError(BAD_HOST)`` for anything else (control characters,
    zone ids, numeric-looking names that are not addresses, non-ASCII)."""
    if host.startswith("[") and host.endswith("]"):
        try:
            literal = ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            _bad_host(host)
        if literal.scope_id is not None:
            _bad_host(host)
        return literal
    name = host.lower().removesuffix(".")
    address = parse_ipv4_loose(name)
    if address is not None:
        return address
    if len(name) > 253 or not name.isascii() or not _HOSTNAME.fullmatch(name):
        return _bad_host(host)
    if name.rsplit(".", 1)[-1].isdigit() or _looks_numeric(name):
        return _bad_host(host)  # e.g. 1.2.3.999, 08.0.0.1: numbers that are no address
    return name


def _looks_numeric(name: str) -> bool:
    return all(_INET_ATON_PART.fullmatch(p) or p.isdigit() for p in name.split("."))


def _bad_host(host: str) -> NoReturn:
    raise EgressRefusedError(Refusal.BAD_HOST, f"not a valid host: {host!r}")


def host_text(host: str | IPAddress) -> str:
    """How a canonical host is written in logs and URLs."""
    if isinstance(host, ipaddress.IPv6Address):
        return f"[{host}]"
    return str(host)


def classify(address: IPAddress) -> str | None:
    """The deny category of ``address`` (``"loopback"``, ``"ipv4-mapped 127.0.0.1"``...);
    None when it is public."""
    if address in METADATA_ADDRESSES:
        return "metadata"
    if isinstance(address, ipaddress.IPv6Address) and int(address) > 1:  # :: and ::1 below
        for network, name in TRANSITION_FORMS:
            if address in network:
                return f"{name} {_embedded_ipv4(address, name)}"
    for network, name in DENIED_RANGES:
        if address.version == network.version and address in network:
            return name
    return None if address.is_global else "not-global"


def _embedded_ipv4(address: ipaddress.IPv6Address, form: str) -> ipaddress.IPv4Address:
    if form == "6to4":
        return address.sixtofour or ipaddress.IPv4Address(0)
    if form == "teredo":
        return (address.teredo or (ipaddress.IPv4Address(0), ipaddress.IPv4Address(0)))[1]
    return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)


def parse_extra_ranges(ranges: Iterable[str]) -> tuple[Network, ...]:
    """Operator ranges, refusing any so wide it would switch the guard off."""
    networks = []
    for text in ranges:
        try:
            network = ipaddress.ip_network(text.strip(), strict=True)
        except ValueError as exc:
            raise GatewayConfigError(f"bad extra egress range {text!r}: {exc}") from exc
        if network.prefixlen < MIN_EXTRA_PREFIX[network.version]:
            raise GatewayConfigError(
                f"extra egress range {text} is wider than /{MIN_EXTRA_PREFIX[network.version]}"
            )
        networks.append(network)
    return tuple(networks)


@dataclass(frozen=True)
class HostMatch:
    """How a host matched the manifest: ``named`` when by an exact or ``*.domain`` entry."""

    host: str | IPAddress
    named: bool


class EgressPolicy:
    """One broker version's egress rules plus the operator's port set and extra ranges."""

    def __init__(
        self,
        patterns: Iterable[str],
        allowed_ports: Iterable[int],
        extra_ranges: Iterable[Network] = (),
    ) -> None:
        self.any_public = False
        self.exact: set[str] = set()
        self.suffixes: list[str] = []
        for pattern in patterns:
            self._add_pattern(pattern)
        self.allowed_ports = frozenset(allowed_ports)
        self.extra_ranges = tuple(extra_ranges)

    def _add_pattern(self, pattern: str) -> None:
        pattern = pattern.strip().lower()
        if pattern == "*":
            self.any_public = True
        elif pattern.startswith("*."):
            self.suffixes.append("." + str(parse_host(pattern[2:])))
        else:
            self.exact.add(host_text(parse_host(pattern)))

    def match_host(
        self, host: str | IPAddress, service_named: frozenset[str] = frozenset()
    ) -> HostMatch:
        """Raise ``HOST_NOT_ALLOWED`` unless the manifest lists ``host``. Under ``"*"``, a
        host in ``service_named`` (from the service's URL fields) counts as named."""
        text = host_text(host)
        if text in self.exact:
            return HostMatch(host, named=True)
        if isinstance(host, str) and any(host.endswith(s) for s in self.suffixes):
            return HostMatch(host, named=True)
        if self.any_public:
            return HostMatch(host, named=text in service_named)
        raise EgressRefusedError(Refusal.HOST_NOT_ALLOWED, f"{text} is not in the egress list")

    def check_port(self, port: int) -> None:
        if port not in self.allowed_ports:
            raise EgressRefusedError(Refusal.PORT_NOT_ALLOWED, f"port {port} is not allowed")

    def check_address(self, address: IPAddress, match: HostMatch) -> None:
        """Raise ``ADDRESS_DENIED`` unless ``address`` is public or opened for this match."""
        category = classify(address)
        if category is None or self._opened(address, category, match):
            return
        raise EgressRefusedError(
            Refusal.ADDRESS_DENIED, f"{host_text(match.host)} -> {address} is {category}"
        )

    def _opened(self, address: IPAddress, category: str, match: HostMatch) -> bool:
        if not match.named or category.split()[0] in NEVER_OPENABLE:
            return False
        return any(address.version == net.version and address in net for net in self.extra_ranges)


def hosts_named_by(urls: Iterable[str]) -> frozenset[str]:
    """The canonical hosts of the given URLs (as ``host_text`` writes them); URLs without a
    valid host are left out."""
    hosts: set[str] = set()
    for url in urls:
        try:
            name = urlsplit(url).hostname
        except ValueError:
            continue
        if not name:
            continue
        try:
            hosts.add(host_text(parse_host(f"[{name}]" if ":" in name else name)))
        except EgressRefusedError:
            continue
    return frozenset(hosts)
