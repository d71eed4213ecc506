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
import uuid
from collections.abc import Mapping
from typing import Any

from brokerage.sandbox.egress.config import GatewayConfig, limits_of
from brokerage.sandbox.egress.errors import GatewayError
from brokerage.sandbox.egress.limits import KINDS, RateLimits
from brokerage.sandbox.egress.mailer import Mailer
from brokerage.sandbox.egress.policy import EgressPolicy, parse_extra_ranges
from brokerage.sandbox.egress.pool import UpstreamPool
from brokerage.sandbox.egress.proxy import Exchange
from brokerage.sandbox.egress.runs import Run
from brokerage.sandbox.interface import BrokerBundle

SOCKET_NAME = "egress.sock"
"""the socket's file name in each channel directory (the sandbox sees /run/brokerage/egress.sock)"""


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
