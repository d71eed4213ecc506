"""The egress gateway: the only way out of a sandbox.

One :class:`Gateway` per worker process. A sandbox backend calls
``gateway.open_channel(bundle)`` for each sandbox it starts; the channel is a
Unix socket in a directory of its own, which the backend mounts into the
sandbox at ``/run/brokerage/``. Whatever arrives on that socket speaks for that
broker version and the delivery named by the last ``begin_run`` — nothing the
sandbox sends can claim another identity.

On each connection the gateway reads one HTTP/1.x proxy request:

- ``GET http://host[:port]/path`` (absolute form): checked against the
  :class:`~brokerage.sandbox.egress.policy.EgressPolicy`, sent upstream over a
  fresh connection or a kept-alive one to the same checked address
  (:mod:`brokerage.sandbox.egress.pool`); the response comes back as is (redirects
  included — following one is a new request, judged afresh);
- ``CONNECT host:port``: checked the same way, then bytes are relayed both ways
  (TLS stays end to end);
- ``http://brokerage.internal/mail`` and ``/api/...``: routed to the platform
  (SMTP, and the ``api_forwarder`` hook), never to the network.

The request itself is handled in :mod:`brokerage.sandbox.egress.proxy`; the API call
types live in :mod:`brokerage.sandbox.egress.relay`. Every request, allowed or
refused, is appended to the run's log, which ``end_run()`` returns. Refusals are
answered with a 4xx status, an ``X-Brokerage-Refused: <code>`` header and a
one-line reason.
"""

from __future__ import annotations

import os
import selectors
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from brokerage.sandbox.egress.errors import EgressRefusedError, GatewayError, Refusal
from brokerage.sandbox.egress.exchange_log import BODY_BYTES, HEADER_BYTES
from brokerage.sandbox.egress.limits import KINDS, Limit, RateLimits
from brokerage.sandbox.egress.mailer import MailConfig, Mailer
from brokerage.sandbox.egress.policy import EgressPolicy, parse_extra_ranges
from brokerage.sandbox.egress.pool import UpstreamPool
from brokerage.sandbox.egress.proxy import Exchange, shutdown
from brokerage.sandbox.egress.relay import (
    ApiForwarder,
)
from brokerage.sandbox.interface import BrokerBundle

SOCKET_NAME = "egress.sock"
"""the socket's file name in each channel directory (the sandbox sees /run/brokerage/egress.sock)"""

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


class Gateway:
    """Hands out channels; one per worker process. Implements ``EgressProvider``."""

    def __init__(self, config: GatewayConfig | None = None) -> None:
        self.config = config or GatewayConfig()
        self.extra_ranges = parse_extra_ranges(self.config.extra_ranges)
        self.mailer = Mailer(self.config.mail) if self.config.mail else None
        self.limits = RateLimits(limits_of(self.config), self.config.limit_wait_seconds)
        self.pool = UpstreamPool(
            self.config.pool_idle_seconds, self.config.pool_per_destination, self.config.pool_total
        )
        self._own_dir = self.config.socket_dir is None
        self.socket_dir = self.config.socket_dir or tempfile.mkdtemp(prefix="brokerage-egress-")
        os.makedirs(self.socket_dir, exist_ok=True)
        if self._own_dir:  # traversable, not listable: bwrap binds channels as an unprivileged user
            os.chmod(self.socket_dir, 0o711)
        self._acceptor = _Acceptor()
        self._service_named: dict[str, frozenset[str]] = {}
        self._limit_keys: dict[str, tuple[tuple[str, str], ...]] = {}

    def name_hosts(self, delivery_id: str, hosts: frozenset[str]) -> None:
        """Hosts the repo admin named in the service's URL fields for this delivery: under a
        ``"*"`` manifest they count as named, so operator-opened ranges apply to them."""
        self._service_named[delivery_id] = hosts

    def limit_by(self, delivery_id: str, keys: Mapping[str, str]) -> None:
        """The keys this delivery's requests are limited by besides their destination:
        ``{"service": ..., "repository": ...}`` (the platform knows them; the sandbox
        cannot claim any). Given before the run, like :meth:`name_hosts`."""
        self._limit_keys[delivery_id] = tuple(
            (kind, str(keys[kind])) for kind in KINDS if kind in keys
        )

    def forget(self, delivery_id: str) -> None:
        self._service_named.pop(delivery_id, None)
        self._limit_keys.pop(delivery_id, None)

    def service_named(self, delivery_id: str) -> frozenset[str]:
        return self._service_named.get(delivery_id, frozenset())

    def limit_keys(self, delivery_id: str) -> tuple[tuple[str, str], ...]:
        return self._limit_keys.get(delivery_id, ())

    def open_channel(self, bundle: BrokerBundle) -> Channel:
        """A new channel (directory + socket) allowing only ``bundle.egress_hosts``."""
        if self._acceptor.closed:
            raise GatewayError("the gateway is closed")
        policy = EgressPolicy(bundle.egress_hosts, self.config.allowed_ports, self.extra_ranges)
        directory = os.path.join(self.socket_dir, uuid.uuid4().hex[:16])
        os.mkdir(directory)
        os.chmod(directory, 0o755)  # the sandbox's unprivileged user must reach the socket
        channel = Channel(self, bundle, policy, directory)
        self._acceptor.add(channel)
        return channel

    def close(self) -> None:
        self._acceptor.close()
        self.pool.close()
        if self._own_dir:
            shutil.rmtree(self.socket_dir, ignore_errors=True)

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Channel:
    """One sandbox's socket. Implements ``EgressChannel``."""

    def __init__(
        self, gateway: Gateway, bundle: BrokerBundle, policy: EgressPolicy, directory: str
    ) -> None:
        self.gateway = gateway
        self.bundle = bundle
        self.policy = policy
        self.directory = directory
        self.socket_path = os.path.join(directory, SOCKET_NAME)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.socket_path)
        os.chmod(self.socket_path, 0o666)
        self.listener.listen(64)
        self._lock = threading.Lock()
        self._run: Run | None = None

    def begin_run(self, delivery_id: str) -> None:
        """Attribute the requests that follow to ``delivery_id``."""
        with self._lock:
            if self._run is not None:
                self._run.end()
            self._run = Run(
                delivery_id,
                self.gateway.service_named(delivery_id),
                self.gateway.limit_keys(delivery_id),
            )

    def end_run(self) -> list[dict[str, Any]]:
        """Stop attributing; cut the run's open connections; return its request log."""
        with self._lock:
            run, self._run = self._run, None
        if run is None:
            return []
        run.end()
        return run.wait_log()

    def close(self) -> None:
        self.end_run()
        self.gateway._acceptor.remove(self)
        self.listener.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    def serve(self, client: socket.socket) -> None:
        """Handle one connection (in its own thread)."""
        with self._lock:
            run = self._run
        if run is None:
            Exchange(self, None, client).refuse_unattributed()
        else:
            run.track(lambda: Exchange(self, run, client).handle())


class Run:
    """One delivery's share of a channel: log, counters, open connections."""

    def __init__(
        self,
        delivery_id: str,
        service_named: frozenset[str] = frozenset(),
        limit_keys: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.delivery_id = delivery_id
        self.service_named = service_named
        self.limit_keys = limit_keys
        """(kind, key) pairs besides the destination that this run's requests are limited by"""
        self.started = time.monotonic()
        self.log: list[dict[str, Any]] = []
        self.counts = {"requests": 0, "mails": 0}
        self.bytes = 0
        self.ended = False
        self.sockets: set[socket.socket] = set()
        self._active = 0
        self._cond = threading.Condition()

    def track(self, work: Callable[[], None]) -> None:
        with self._cond:
            self._active += 1
        try:
            work()
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()

    @property
    def active(self) -> int:
        """connections of this run being served right now"""
        return self._active

    def count(self, what: str, limit: int) -> None:
        """One more request (or mail); RUN_CAP past ``limit``."""
        with self._cond:
            self.counts[what] += 1
            if self.counts[what] > limit:
                raise EgressRefusedError(Refusal.RUN_CAP, f"more than {limit} {what} in this run")

    def adopt(self, sock: socket.socket) -> None:
        with self._cond:
            if self.ended:
                raise EgressRefusedError(Refusal.RUN_ENDED, "the run has ended")
            self.sockets.add(sock)

    def release(self, sock: socket.socket) -> bool:
        """Stop tracking ``sock`` (it goes back to the gateway's pool); False when the run
        has ended, whose ``end()`` may be cutting it."""
        with self._cond:
            if self.ended:
                return False
            self.sockets.discard(sock)
            return True

    def charge(self, nbytes: int, limit: int) -> None:
        with self._cond:
            self.bytes += nbytes
            if self.ended:
                raise EgressRefusedError(Refusal.RUN_ENDED, "the run has ended")
            if self.bytes > limit:
                raise EgressRefusedError(Refusal.RUN_CAP, f"more than {limit} bytes in this run")

    def record(self, entry: dict[str, Any]) -> None:
        with self._cond:
            self.log.append(entry)

    def end(self) -> None:
        with self._cond:
            self.ended = True
            sockets = list(self.sockets)
        for sock in sockets:
            shutdown(sock)

    def wait_log(self, seconds: float = 2.0) -> list[dict[str, Any]]:
        with self._cond:
            self._cond.wait_for(lambda: self._active == 0, timeout=seconds)
            return [dict(entry) for entry in self.log]


class _Acceptor:
    """One thread accepting on every channel's socket; one thread per connection after that."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._pending: list[tuple[str, Channel]] = []
        self._lock = threading.Lock()
        self.closed = False
        self._thread = threading.Thread(target=self._loop, name="egress-acceptor", daemon=True)
        self._thread.start()

    def add(self, channel: Channel) -> None:
        self._change("add", channel)

    def remove(self, channel: Channel) -> None:
        self._change("remove", channel)

    def _change(self, op: str, channel: Channel) -> None:
        done = threading.Event()
        with self._lock:
            if self.closed:
                return
            self._pending.append((op, channel))
            self._pending.append(("done", done))  # type: ignore[arg-type]
        self._wake_w.send(b"x")
        done.wait(5.0)

    def close(self) -> None:
        with self._lock:
            self.closed = True
        self._wake_w.send(b"x")
        self._thread.join(5.0)

    def _loop(self) -> None:
        while not self.closed:
            for key, _ in self._selector.select():
                if key.fileobj is self._wake_r:
                    self._apply_pending()
                else:
                    self._accept(key.data)
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    def _apply_pending(self) -> None:
        self._wake_r.recv(4096)
        with self._lock:
            pending, self._pending = self._pending, []
        for op, item in pending:
            if op == "add":
                self._selector.register(item.listener, selectors.EVENT_READ, item)
            elif op == "remove":
                self._selector.unregister(item.listener)
            else:
                item.set()  # type: ignore[attr-defined]

    def _accept(self, channel: Channel) -> None:
        try:
            client, _ = channel.listener.accept()
        except OSError:
            return
        threading.Thread(target=channel.serve, args=(client,), daemon=True).start()
