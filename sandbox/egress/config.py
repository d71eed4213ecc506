"""The gateway's settings (:class:`GatewayConfig`), built from the platform's config, and
how it resolves names."""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from brokerage.sandbox.egress.exchange_log import BODY_BYTES, HEADER_BYTES
from brokerage.sandbox.egress.limits import KINDS, Limit
from brokerage.sandbox.egress.mailer import MailConfig
from brokerage.sandbox.egress.relay import ApiForwarder

Resolver = Callable[[str, int], Sequence[str]]


def system_resolver(host: str, port: int) -> list[str]:
    """Resolve once with the system resolver; addresses in its order, duplicates dropped."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class GatewayConfig:
    """Operator settings; defaults are safe, tests add their receivers' ports and 127.0.0.1/32."""

    socket_dir: str | None = None
    """parent of the channel directories (must be traversable, o+x, by the sandbox launcher);
    None: a fresh temporary directory, mode 0711"""
    allowed_ports: frozenset[int] = frozenset({80, 443})
    extra_ranges: tuple[str, ...] = ()
    """CIDR ranges opened for hosts a manifest names (never for "*")"""
    connect_seconds: float = 5.0
    """timeout to connect upstream"""
    idle_seconds: float = 15.0
    """longest silence on either side of a request or tunnel"""
    request_seconds: float = 30.0
    """longest one request (or one tunnel) may last"""
    max_head_bytes: int = 64 * 1024
    """cap on request line plus headers"""
    max_request_bytes: int = 1024 * 1024
    """cap on one request body (for a tunnel: bytes sent through it)"""
    max_response_bytes: int = 10 * 1024 * 1024
    """cap on one response body (for a tunnel: bytes received through it)"""
    max_requests_per_run: int = 100
    max_bytes_per_run: int = 50 * 1024 * 1024
    """bytes both ways, all requests of one run"""
    max_run_seconds: float = 300.0
    """requests begun later than this after begin_run are refused"""
    max_mails_per_run: int = 10
    max_open_connections: int = 16
    """connections one run may have in flight at once"""
    destination_rate: float = 200.0
    """requests a second to one destination (``host:port``), from all runs of this worker"""
    destination_burst: int = 400
    service_rate: float = 50.0
    """requests a second of one service's runs in this worker (the platform names the service)"""
    service_burst: int = 200
    repository_rate: float = 100.0
    """requests a second of one repository's runs in this worker"""
    repository_burst: int = 500
    limit_wait_seconds: float = 2.0
    """longest a request over a limit waits; beyond it the request is refused ``rate_limited``
    with the seconds to wait, and the platform defers the delivery (not a failed attempt)"""
    pool_idle_seconds: float = 4.0
    """how long a kept-alive upstream connection may wait in the pool for its next request
    (0: no pool; every plain request gets a fresh connection and ``Connection: close``)"""
    pool_per_destination: int = 8
    """idle connections kept per (host, port, checked address)"""
    pool_total: int = 64
    """idle connections kept altogether"""
    log_body_bytes: int = BODY_BYTES
    """bytes of each request and response body the log keeps"""
    log_header_bytes: int = HEADER_BYTES
    """bytes of each request's and response's headers the log keeps"""
    mail: MailConfig | None = None
    api_forwarder: ApiForwarder | None = None
    resolver: Resolver = system_resolver

    @classmethod
    def from_app_config(cls, config: Mapping[str, Any], **overrides: Any) -> GatewayConfig:
        """Build from the platform config (``MAIL_DOMAIN``, ``SMTP_*``, ``EGRESS_*`` keys)."""
        values: dict[str, Any] = {}
        if config.get("EGRESS_PORTS"):
            values["allowed_ports"] = frozenset(int(p) for p in _as_list(config["EGRESS_PORTS"]))
        if config.get("EGRESS_EXTRA_RANGES"):
            values["extra_ranges"] = tuple(_as_list(config["EGRESS_EXTRA_RANGES"]))
        if config.get("EGRESS_SOCKET_DIR"):
            values["socket_dir"] = str(config["EGRESS_SOCKET_DIR"])
        for kind in KINDS:
            for part in ("rate", "burst"):
                name = f"EGRESS_{kind.upper()}_{part.upper()}"
                if config.get(name) is not None:
                    values[f"{kind}_{part}"] = (float if part == "rate" else int)(config[name])
        if config.get("EGRESS_LIMIT_WAIT") is not None:
            values["limit_wait_seconds"] = float(config["EGRESS_LIMIT_WAIT"])
        for key, name in (("log_body_bytes", "BODY"), ("log_header_bytes", "HEADER")):
            if config.get(f"EGRESS_LOG_{name}_BYTES") is not None:
                values[key] = int(config[f"EGRESS_LOG_{name}_BYTES"])
        if config.get("SMTP_HOST") and config.get("MAIL_DOMAIN"):
            values["mail"] = MailConfig(
                str(config["SMTP_HOST"]), int(config.get("SMTP_PORT", 25)), config["MAIL_DOMAIN"]
            )
        return cls(**(values | overrides))


def limits_of(config: GatewayConfig) -> dict[str, Limit]:
    """The rate limit of each kind of key (destination, service, repository)."""
    return {
        kind: Limit(getattr(config, f"{kind}_rate"), getattr(config, f"{kind}_burst"))
        for kind in KINDS
    }


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [v for v in (p.strip() for p in value.split(",")) if v]
    return [str(v) for v in value]
