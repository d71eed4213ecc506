"""Inside the sandbox: the SDK's transport straight to the gateway's Unix socket.

``requests`` reaches the gateway through the runner's loopback bridge
(:mod:`egress_bridge`): a TCP connection to the bridge, which the runner's thread
copies to ``/run/brokerage/egress.sock`` and back. For plain ``http://`` requests
the SDK's session (:class:`sdk_http.GatewaySession`) skips that hop: its
:class:`GatewayAdapter` opens the Unix socket itself and sends the request in proxy
form (absolute URL), exactly what the bridge would have carried. ``https://`` keeps
going through the bridge as a ``CONNECT`` tunnel (TLS stays end to end).

The gateway does every check either way and knows who is speaking from the socket
alone; nothing here decides what may be reached. Broker code never holds these
objects: this module is not among the origins broker code may read from
(``catalogue.EXTRA_ORIGINS``), so an adapter reached through ``session.adapters`` or
``session.get_adapter`` is refused like any other transport object.

Runs inside the sandbox: standard library, ``requests`` and its ``urllib3``.
"""

from __future__ import annotations

import socket
from typing import Any

import requests.adapters
from requests.utils import urldefragauth
from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.exceptions import NewConnectionError

DEFAULT_SOCKET = "/run/brokerage/egress.sock"


def _plain(url: str) -> bool:
    return url[:7].lower() == "http://"


class _UnixConnection(HTTPConnection):
    """An HTTP connection whose socket is the gateway's Unix socket."""

    socket_path = DEFAULT_SOCKET

    def _new_conn(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            if isinstance(self.timeout, int | float):
                sock.settimeout(self.timeout)
            sock.connect(self.socket_path)
        except OSError as exc:
            sock.close()
            raise NewConnectionError(self, f"cannot reach the egress gateway: {exc}") from exc
        return sock


class GatewayAdapter(requests.adapters.HTTPAdapter):
    """``http://`` over the gateway's Unix socket; anything else as ``HTTPAdapter`` does
    (through the proxies the session names: the bridge)."""

    def __init__(self, socket_path: str = DEFAULT_SOCKET, **kwargs: Any) -> None:
        self.socket_path = socket_path
        connection = type("_Connection", (_UnixConnection,), {"socket_path": socket_path})
        self._pool_class = type("_Pool", (HTTPConnectionPool,), {"ConnectionCls": connection})
        self._unix_pool: HTTPConnectionPool | None = None
        super().__init__(**kwargs)

    def _gateway_pool(self) -> HTTPConnectionPool:
        if self._unix_pool is None:  # host and port name the gateway; the URL names the target
            self._unix_pool = self._pool_class("egress.gateway", 80, maxsize=4)
        return self._unix_pool

    def get_connection_with_tls_context(
        self, request: Any, verify: Any, proxies: Any = None, cert: Any = None
    ) -> Any:
        if _plain(request.url):
            return self._gateway_pool()
        return super().get_connection_with_tls_context(request, verify, proxies, cert)

    def get_connection(self, url: Any, proxies: Any = None) -> Any:  # requests before 2.32
        if _plain(url):
            return self._gateway_pool()
        return super().get_connection(url, proxies)  # type: ignore[misc,unused-ignore]

    def request_url(self, request: Any, proxies: Any) -> str:
        if _plain(request.url):
            return str(urldefragauth(request.url))  # proxy form, as the bridge would carry it
        return str(super().request_url(request, proxies))

    def close(self) -> None:
        super().close()
        if self._unix_pool is not None:
            self._unix_pool.close()
            self._unix_pool = None
