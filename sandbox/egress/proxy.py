"""The proxy side of the egress gateway: one HTTP/1.x request per connection.

An :class:`Exchange` reads the request head (:func:`parse_head`, strict), then
either relays a ``CONNECT`` tunnel, forwards an absolute ``http://`` request
(upstream over a kept-alive connection from the gateway's
:class:`~brokerage.sandbox.egress.pool.UpstreamPool` when one to the same checked
address is idle), or routes ``http://brokerage.internal/mail`` and
``/api/...`` to the platform. Every outcome fills one log entry of the run.
The channels and runs it serves are :mod:`brokerage.sandbox.egress.gateway`'s.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import json
import logging
import math
import re
import selectors
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit

from brokerage.sandbox.egress import exchange_log
from brokerage.sandbox.egress.config import GatewayConfig
from brokerage.sandbox.egress.errors import (
    EgressRefusedError,
    GatewayError,
    Refusal,
    UpstreamError,
)
from brokerage.sandbox.egress.limits import RateLimits
from brokerage.sandbox.egress.mailer import Mailer, MailRequest
from brokerage.sandbox.egress.policy import (
    RESERVED_HOST,
    EgressPolicy,
    HostMatch,
    IPAddress,
    host_text,
    parse_host,
)
from brokerage.sandbox.egress.pool import PoolKey, UpstreamPool
from brokerage.sandbox.egress.relay import API_FORWARDED_HEADERS, ApiCall
from brokerage.sandbox.egress.runs import Run, shutdown
from brokerage.sandbox.interface import BrokerBundle

log = logging.getLogger("brokerage.sandbox.egress.gateway")
"""the gateway's logger: egress lines keep the name they had before the proxy had a module"""

REFUSED_HEADER = "X-Brokerage-Refused"

HOP_BY_HOP = frozenset(
    {
        "connection", "keep-alive", "proxy-connection", "proxy-authorization",
        "proxy-authenticate", "te", "trailer", "transfer-encoding", "upgrade",
        "host", "content-length",
    }
)  # fmt: skip
"""headers that concern one hop; never forwarded (Host and Content-Length are re-made)"""

SENSITIVE_QUERY_KEYS = frozenset(
    {"token", "access_token", "api_key", "apikey", "key", "secret", "password", "sig",
     "signature", "auth", "client_secret"}
)  # fmt: skip
"""query parameters whose values the log never shows"""

LINGER_SECONDS = 2.0
"""after answering, how long to drain a client's unread input before closing"""
LINGER_BYTES = 2 * 1024 * 1024
"""most bytes drained that way"""


def _linger(client: socket.socket) -> None:
    """Close our side first, then drain what the client still sends (a refused body):
    closing with unread data would reset the connection and lose our answer."""
    with contextlib.suppress(OSError):
        client.shutdown(socket.SHUT_WR)
        client.settimeout(LINGER_SECONDS)
        drained = 0
        while drained < LINGER_BYTES and (data := client.recv(65536)):
            drained += len(data)


class _Reader:
    """Buffered reads from a socket with explicit caps (the buffer is ours, not a file's)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()

    def _fill(self) -> None:
        try:
            data = self.sock.recv(65536)
        except TimeoutError as exc:
            raise EgressRefusedError(Refusal.BAD_REQUEST, "client went silent") from exc
        if not data:
            raise EgressRefusedError(Refusal.BAD_REQUEST, "client closed the connection early")
        self.buffer += data

    def read_until(self, marker: bytes, limit: int) -> bytes:
        while (end := self.buffer.find(marker)) < 0:
            if len(self.buffer) > limit:
                raise EgressRefusedError(Refusal.TOO_LARGE, f"request head over {limit} bytes")
            self._fill()
        if end > limit:
            raise EgressRefusedError(Refusal.TOO_LARGE, f"request head over {limit} bytes")
        data = bytes(self.buffer[:end])
        del self.buffer[: end + len(marker)]
        return data

    def read_head(self, limit: int) -> bytes:
        """Request line and headers, without the blank line; a request line that is not
        HTTP is refused at once rather than after a wait for headers that never come."""
        lines = [self.read_until(b"\r\n", limit)]
        parse_head(lines[0])
        while line := self.read_until(b"\r\n", limit):
            lines.append(line)
            if sum(map(len, lines)) > limit:
                raise EgressRefusedError(Refusal.TOO_LARGE, f"request head over {limit} bytes")
        return b"\r\n".join(lines)

    def read_exact(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def take(self) -> bytes:
        data, self.buffer = bytes(self.buffer), bytearray()
        return data


_CHUNK_SIZE = re.compile(rb"[0-9a-fA-F]{1,8}")
_CONTENT_LENGTH = re.compile(r"[0-9]{1,15}")
_TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


@dataclass
class RequestHead:
    method: str
    target: str
    headers: list[tuple[str, str]] = field(default_factory=list)

    def get(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name]


def parse_head(raw: bytes) -> RequestHead:
    """Strict HTTP/1.x request head: CRLF lines, no CR/LF/NUL inside, no folding."""
    lines = raw.split(b"\r\n")
    for line in lines:
        if any(c in line for c in (b"\r", b"\n", b"\0")):
            raise EgressRefusedError(Refusal.BAD_REQUEST, "CR, LF or NUL inside a line")
    parts = lines[0].split(b" ")
    if (
        len(parts) != 3
        or not parts[0]
        or not set(parts[0]) <= _TOKEN
        or parts[2] not in (b"HTTP/1.1", b"HTTP/1.0")
        or not parts[1]
        or any(c <= 0x20 or c >= 0x7F for c in parts[1])
    ):
        raise EgressRefusedError(Refusal.BAD_REQUEST, "malformed request line")
    head = RequestHead(parts[0].decode(), parts[1].decode())
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or not set(name) <= _TOKEN:
            raise EgressRefusedError(Refusal.BAD_REQUEST, "malformed header line")
        value = value.strip(b" \t")
        if any(c < 0x20 and c != 0x09 or c == 0x7F for c in value):
            raise EgressRefusedError(Refusal.BAD_REQUEST, "control character in a header")
        head.headers.append((name.decode(), value.decode("latin-1")))
    return head


def split_authority(authority: str, default_port: int | None) -> tuple[str, int]:
    """``host[:port]`` (userinfo dropped) → (host, port); IPv6 hosts keep their brackets."""
    authority = authority.rpartition("@")[2]
    if authority.startswith("["):
        host, _, rest = authority.partition("]")
        host, port_text = host + "]", rest.removeprefix(":")
        if rest and not rest.startswith(":"):
            raise EgressRefusedError(Refusal.BAD_HOST, f"bad authority {authority!r}")
    else:
        host, _, port_text = authority.partition(":")
    if not port_text and default_port is not None:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise EgressRefusedError(Refusal.BAD_HOST, f"bad port in {authority!r}")
    return host, int(port_text)


def redact_url(url: str) -> str:
    """The URL as logs may show it: no userinfo, secret-looking query values masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable>"
    netloc = parts.netloc.rpartition("@")[2]
    query = [
        (k, "***" if k.lower() in SENSITIVE_QUERY_KEYS else v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    url = f"{parts.scheme}://{netloc}{parts.path}" if parts.scheme else f"{netloc}{parts.path}"
    return url + (f"?{urlencode(query, safe='*')}" if query else "")


class ExchangeGateway(Protocol):
    """What an exchange uses of the gateway that accepted it (``gateway.Gateway``)."""

    config: GatewayConfig
    mailer: Mailer | None
    limits: RateLimits
    pool: UpstreamPool


class ExchangeChannel(Protocol):
    """What an exchange uses of the channel it arrived on (``gateway.Channel``)."""

    gateway: ExchangeGateway
    bundle: BrokerBundle
    policy: EgressPolicy


class Exchange:
    """One client connection: one proxy request, its upstream leg, and its log entry."""

    def __init__(self, channel: ExchangeChannel, run: Run | None, client: socket.socket) -> None:
        self.channel = channel
        self.config = channel.gateway.config
        self.run = run
        self.client = client
        self.reader = _Reader(client)
        self.started = time.monotonic()
        self.deadline = self.started + self.config.request_seconds
        self.entry: dict[str, Any] = {
            "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "method": None, "url": None, "status": None, "bytes_sent": 0,
            "bytes_received": 0, "seconds": 0.0, "address": None, "refused": None,
            "detail": None, "delivery_id": run.delivery_id if run else None,
        }  # fmt: skip
        self.upstream: socket.socket | None = None
        self.pool_key: PoolKey | None = None
        """where :attr:`upstream` goes back to when its exchange ended cleanly (plain HTTP)"""
        self.reused = False
        """True when :attr:`upstream` came from the pool rather than a fresh connect"""
        self.route: tuple[list[IPAddress], int, HostMatch] | None = None
        """the checked route of a plain request: reconnecting on it re-checks every address"""
        self.head_sent = False
        """True once a response head went to the client: no other status can follow"""
        self.log_secrets: list[str] = []
        """the request's credentials, masked wherever the log keeps them"""

    # -- entry points -------------------------------------------------------------

    def refuse_unattributed(self) -> None:
        self._answer_refusal(EgressRefusedError(Refusal.NO_RUN, "no run in this sandbox"))
        _linger(self.client)
        self.client.close()
        log.warning("egress request outside a run refused (broker %s)", self.channel.bundle.key)

    def handle(self) -> None:
        assert self.run is not None
        try:
            self.client.settimeout(self.config.idle_seconds)
            self.run.record(self.entry)  # in arrival order; filled in as the request goes
            self.run.adopt(self.client)
            head = parse_head(self.reader.read_head(self.config.max_head_bytes))
            self.entry["method"] = head.method
            self.entry["url"] = (
                head.target.rpartition("@")[2]  # CONNECT: just host:port
                if head.method == "CONNECT"
                else redact_url(head.target)
            )
            self._admit()
            if head.method == "CONNECT":
                self._tunnel(head)
            else:
                self._forward(head)
        except EgressRefusedError as refusal:
            self._refused(refusal)
        except ValueError as exc:  # http.client's own checks on what we send upstream
            self._refused(EgressRefusedError(Refusal.BAD_REQUEST, str(exc)))
        except (GatewayError, OSError, http.client.HTTPException) as exc:
            if self.run.ended and self.entry["method"] == "CONNECT" and self.head_sent:
                self.entry["detail"] = "tunnel closed at the end of the run"
            elif self.run.ended:
                self._refused(EgressRefusedError(Refusal.RUN_ENDED, "the run ended mid-request"))
            else:
                self._failed(exc)
        except Exception as exc:  # a gateway bug must not kill the thread silently
            log.exception("egress gateway failed on a request")
            self._failed(exc)
        finally:
            self._finish()

    def _refused(self, refusal: EgressRefusedError) -> None:
        assert self.run is not None
        if self.run.ended and refusal.reason is not Refusal.RUN_CAP:
            refusal = EgressRefusedError(Refusal.RUN_ENDED, "the run ended mid-request")
        self.entry.update(refused=str(refusal.reason), detail=refusal.detail)
        if not self.head_sent:
            self._answer_refusal(refusal)

    def _failed(self, exc: Exception) -> None:
        """The target (or SMTP, or the platform API) failed: 502, or 504 on a timeout."""
        status = 504 if isinstance(exc, TimeoutError) else getattr(exc, "status", 502)
        self.entry["detail"] = f"{type(exc).__name__}: {exc}"
        if not self.head_sent:
            self.entry["status"] = status
            self._answer(status, "Upstream Failed", f"{self.entry['detail']}\n".encode(), {})

    def _finish(self) -> None:
        self._close_upstream()
        _linger(self.client)
        self.client.close()
        self.entry["seconds"] = round(time.monotonic() - self.started, 4)
        assert self.run is not None
        log.info(
            "egress %s %s %s -> %s %s",
            self.run.delivery_id, self.entry["method"], self.entry["url"],
            self.entry["status"], self.entry["refused"] or "",
        )  # fmt: skip

    def _admit(self) -> None:
        """Per-run caps, checked before any work (rate limits: :meth:`_throttle`)."""
        assert self.run is not None
        config = self.config
        self.run.count("requests", config.max_requests_per_run)
        if self.run.active > config.max_open_connections:
            raise EgressRefusedError(
                Refusal.RUN_CAP, f"more than {config.max_open_connections} open connections"
            )
        if time.monotonic() - self.run.started > config.max_run_seconds:
            raise EgressRefusedError(Refusal.RUN_CAP, f"run older than {config.max_run_seconds}s")

    def _throttle(self, destination: str) -> None:
        """The rate limits of the destination, and of the run's service and repository: wait
        (bounded) for a token, or refuse ``rate_limited`` with the seconds to wait, which the
        platform reads from the log entry to defer the delivery."""
        assert self.run is not None
        keys = (("destination", destination), *self.run.limit_keys)
        verdict = self.channel.gateway.limits.reserve(keys)
        if verdict.deferred:
            self.entry["retry_after"] = round(verdict.wait, 3)
            raise EgressRefusedError(
                Refusal.RATE_LIMITED,
                f"{verdict.kind} rate limit ({verdict.key}): retry after {verdict.wait:.2f}s",
            )
        if verdict.wait > 0:
            self.entry["waited"] = round(verdict.wait, 3)
            time.sleep(verdict.wait)
            if self.run.ended:
                raise EgressRefusedError(Refusal.RUN_ENDED, "the run ended while waiting")

    # -- answering the client -----------------------------------------------------

    def _answer_refusal(self, refusal: EgressRefusedError) -> None:
        body = f"refused by the brokerage egress gateway: {refusal}\n".encode()
        self.entry["status"] = self.entry["status"] or refusal.status
        headers = {REFUSED_HEADER: str(refusal.reason)}
        if "retry_after" in self.entry:
            headers["Retry-After"] = str(max(1, math.ceil(self.entry["retry_after"])))
        self._answer(refusal.status, "Refused", body, headers)

    def _answer(self, status: int, reason: str, body: bytes, headers: Mapping[str, str]) -> None:
        lines = [f"HTTP/1.1 {status} {reason}", "Connection: close"]
        lines += [f"Content-Length: {len(body)}"] + [f"{k}: {v}" for k, v in headers.items()]
        with contextlib.suppress(OSError):  # the client is gone; the log entry says why anyway
            self.client.sendall("\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body)

    # -- the network --------------------------------------------------------------

    def _target(self, host_spec: str, port: int, pooled: bool = False) -> socket.socket:
        """Check host and port, resolve once, connect to an address the guard accepts
        (``pooled``: or take an idle kept-alive connection to that very address)."""
        policy = self.channel.policy
        host = parse_host(host_spec)
        match = policy.match_host(host, self.run.service_named if self.run else frozenset())
        policy.check_port(port)
        self._throttle(f"{host_text(host)}:{port}")
        addresses = self._resolve(host, port)
        if pooled and self.channel.gateway.pool.enabled:
            self.route = (addresses, port, match)
        self.upstream = self._connect(addresses, port, match, pooled=self.route is not None)
        return self.upstream

    def _resolve(self, host: str | IPAddress, port: int) -> list[IPAddress]:
        if not isinstance(host, str):
            return [host]
        try:
            found = self.config.resolver(host, port)
            return [ipaddress.ip_address(a.partition("%")[0]) for a in found]
        except (OSError, ValueError) as exc:
            raise EgressRefusedError(Refusal.UNRESOLVABLE, f"{host}: {exc}") from exc

    def _connect(
        self, addresses: list[IPAddress], port: int, match: HostMatch, pooled: bool = False
    ) -> socket.socket:
        refusal: EgressRefusedError | None = None
        failure: Exception | None = None
        for address in addresses:
            try:
                self.channel.policy.check_address(address, match)
            except EgressRefusedError as exc:
                refusal = refusal or exc
                continue
            if pooled and (sock := self._reuse(address, port, match)) is not None:
                return sock
            try:
                return self._open(address, port, match)
            except OSError as exc:
                failure = exc
        if failure is not None:
            status = 504 if isinstance(failure, TimeoutError) else 502
            raise UpstreamError(f"cannot connect to {host_text(match.host)}: {failure}", status)
        raise refusal or EgressRefusedError(Refusal.UNRESOLVABLE, "no address")

    def _open(self, address: IPAddress, port: int, match: HostMatch) -> socket.socket:
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        # no Nagle: a request's head and body go in two writes, and on a kept-alive
        # connection the body would wait for the receiver's delayed ACK of the head
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            assert self.run is not None
            self.run.adopt(sock)
            sock.settimeout(self.config.connect_seconds)
            sock.connect((str(address), port))
            peer = ipaddress.ip_address(sock.getpeername()[0])
            self.channel.policy.check_address(peer, match)  # judge what we actually reached
        except BaseException:
            sock.close()
            raise
        self.entry["address"] = str(peer)
        sock.settimeout(self.config.idle_seconds)
        self.reused = False
        if self.route is not None:  # pooled under the peer address checked just above
            self.pool_key = PoolKey(host_text(match.host), port, str(peer), "http")
        return sock

    def _reuse(self, address: IPAddress, port: int, match: HostMatch) -> socket.socket | None:
        """An idle connection whose peer is ``address`` (checked by the caller for this
        request, and by :meth:`_open` when the connection was made), or None."""
        key = PoolKey(host_text(match.host), port, str(address), "http")
        sock = self.channel.gateway.pool.take(key)
        if sock is None:
            return None
        assert self.run is not None
        try:
            self.run.adopt(sock)
        except BaseException:
            sock.close()
            raise
        sock.settimeout(self.config.idle_seconds)
        self.entry["address"] = key.address
        self.pool_key, self.reused = key, True
        return sock

    def _pool_upstream(self, response: http.client.HTTPResponse) -> None:
        """Hand :attr:`upstream` back to the pool once its response is read to its framed
        end (before the last bytes go to the client, so that its next request can find it)
        and neither side asked to close; otherwise ``_finish`` closes it."""
        sock, key = self.upstream, self.pool_key
        assert self.run is not None
        read_to_end = response.isclosed() or response.length == 0  # (read1 leaves it open)
        if sock is None or key is None or response.will_close or not read_to_end:
            return
        if response.status < 200 or response.status == 101:
            return
        if self.run.release(sock):  # not the run's to cut any more
            self.upstream = None
            self.channel.gateway.pool.give(key, sock)

    # -- CONNECT ------------------------------------------------------------------

    def _tunnel(self, head: RequestHead) -> None:
        host, port = split_authority(head.target, None)
        if parse_host(host) == RESERVED_HOST:
            raise EgressRefusedError(Refusal.BAD_REQUEST, f"{RESERVED_HOST} is plain HTTP only")
        upstream = self._target(host, port)
        self.client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.entry["status"], self.head_sent = 200, True
        early = self.reader.take()
        if early:
            self._pass(early, upstream, "bytes_sent", self.config.max_request_bytes)
        self._relay(upstream)

    def _relay(self, upstream: socket.socket) -> None:
        caps = {
            self.client: (upstream, "bytes_sent", self.config.max_request_bytes),
            upstream: (self.client, "bytes_received", self.config.max_response_bytes),
        }
        open_ends = 2
        with selectors.DefaultSelector() as selector:
            for sock in caps:
                selector.register(sock, selectors.EVENT_READ)
            while open_ends:
                ready = selector.select(timeout=self._time_left(self.config.idle_seconds))
                if not ready:
                    raise UpstreamError("tunnel idle or too long", 504)
                for key, _ in ready:
                    source = key.fileobj
                    assert isinstance(source, socket.socket)
                    data = source.recv(65536)
                    target, counter, cap = caps[source]
                    if data:
                        self._pass(data, target, counter, cap)
                        continue
                    selector.unregister(source)
                    open_ends -= 1
                    with contextlib.suppress(OSError):
                        target.shutdown(socket.SHUT_WR)
        assert self.run is not None
        if self.run.ended:  # kept-alive tunnels are normal; say who closed it, refuse nothing
            self.entry["detail"] = "tunnel closed at the end of the run"

    def _pass(self, data: bytes, target: socket.socket, counter: str, cap: int) -> None:
        assert self.run is not None
        self.entry[counter] += len(data)
        if self.entry[counter] > cap:
            raise EgressRefusedError(Refusal.TOO_LARGE, f"{counter} over {cap}")
        self.run.charge(len(data), self.config.max_bytes_per_run)
        target.sendall(data)

    def _time_left(self, at_most: float) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise UpstreamError(f"request took longer than {self.config.request_seconds}s", 504)
        return min(left, at_most)

    # -- plain HTTP ---------------------------------------------------------------

    def _forward(self, head: RequestHead) -> None:
        url = urlsplit(head.target)
        if url.scheme != "http" or not url.netloc:
            raise EgressRefusedError(
                Refusal.BAD_REQUEST, "expected an absolute http:// URL (use CONNECT for https)"
            )
        host, port = split_authority(url.netloc, 80)
        body = self._read_body(head)
        self.log_secrets = exchange_log.request_secrets(
            head.target, head.headers, body, SENSITIVE_QUERY_KEYS
        )
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        if parse_host(host) == RESERVED_HOST:
            self._log_message("request", _end_to_end(head.headers), body, len(body))
            self._platform(head, port, path, body)
            return
        upstream = self._target(host, port, pooled=True)
        self._exchange_upstream(head, host, port, path, body, upstream)

    def _read_body(self, head: RequestHead) -> bytes:
        lengths = set(head.get("content-length"))
        encodings = head.get("transfer-encoding")
        cap = self.config.max_request_bytes
        if lengths and encodings or len(lengths) > 1:
            raise EgressRefusedError(Refusal.BAD_REQUEST, "ambiguous body framing")
        if encodings:
            if [e.lower() for e in encodings] != ["chunked"]:
                raise EgressRefusedError(Refusal.BAD_REQUEST, "unsupported transfer-encoding")
            return self._read_chunked(cap)
        length = lengths.pop() if lengths else "0"
        if not _CONTENT_LENGTH.fullmatch(length):
            raise EgressRefusedError(Refusal.BAD_REQUEST, "bad content-length")
        if int(length) > cap:
            raise EgressRefusedError(Refusal.TOO_LARGE, f"request body over {cap} bytes")
        return self.reader.read_exact(int(length))

    def _read_chunked(self, cap: int) -> bytes:
        body = bytearray()
        while True:
            size_line = self.reader.read_until(b"\r\n", 1024).partition(b";")[0].strip()
            if not _CHUNK_SIZE.fullmatch(size_line):
                raise EgressRefusedError(Refusal.BAD_REQUEST, "bad chunk size")
            size = int(size_line, 16)
            if size == 0:
                while self.reader.read_until(b"\r\n", self.config.max_head_bytes):
                    pass  # trailers: read and dropped
                return bytes(body)
            if len(body) + size > cap:
                raise EgressRefusedError(Refusal.TOO_LARGE, f"request body over {cap} bytes")
            body += self.reader.read_exact(size)
            if self.reader.read_exact(2) != b"\r\n":
                raise EgressRefusedError(Refusal.BAD_REQUEST, "bad chunk framing")

    def _exchange_upstream(
        self, head: RequestHead, host: str, port: int, path: str, body: bytes, sock: socket.socket
    ) -> None:
        assert self.run is not None
        self.run.charge(len(body), self.config.max_bytes_per_run)
        sent = [("Host", host if port == 80 else f"{host}:{port}"), *_end_to_end(head.headers)]
        if self.pool_key is None:
            sent.append(("Connection", "close"))
        if body or head.method in ("POST", "PUT", "PATCH"):
            sent.append(("Content-Length", str(len(body))))
        self._log_message("request", sent, body, len(body))
        try:
            response = self._send(head.method, host, port, path, sent, body, sock)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            if not self.reused or self.route is None:
                raise
            # the receiver closed a kept-alive connection as we reused it, without answering:
            # once more on a fresh connection (its address checked again)
            self._close_upstream()
            self.upstream = self._connect(*self.route, pooled=False)
            response = self._send(head.method, host, port, path, sent, body, self.upstream)
        self.entry["status"] = response.status
        self._relay_response(response)
        self._pool_upstream(response)

    def _send(
        self, method: str, host: str, port: int, path: str, sent: list[tuple[str, str]],
        body: bytes, sock: socket.socket,
    ) -> http.client.HTTPResponse:  # fmt: skip
        connection = http.client.HTTPConnection(host.strip("[]"), port)
        connection.sock = sock
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in sent:
            connection.putheader(name, value)
        connection.endheaders(body or None)
        self.entry["bytes_sent"] = len(body)
        return connection.getresponse()

    def _close_upstream(self) -> None:
        if self.upstream is not None:
            shutdown(self.upstream)
            self.upstream.close()
            self.upstream = None

    def _relay_response(self, response: http.client.HTTPResponse) -> None:
        cap = self.config.max_response_bytes
        if response.length is not None and response.length > cap:
            raise EgressRefusedError(Refusal.TOO_LARGE, f"response body over {cap} bytes")
        lines = [f"HTTP/1.1 {response.status} {_clean(response.reason)}", "Connection: close"]
        lines += [f"{name}: {_clean(value)}" for name, value in _end_to_end(response.msg.items())]
        if self.entry["method"] == "HEAD" and response.msg.get("Content-Length"):
            lines.append(f"Content-Length: {_clean(response.msg['Content-Length'])}")
        elif response.length is not None:
            lines.append(f"Content-Length: {response.length}")
        self._pool_upstream(response)  # before the client can send its next request
        self.client.sendall("\r\n".join(lines).encode("latin-1", "replace") + b"\r\n\r\n")
        self.head_sent = True
        kept, limit = bytearray(), self.config.log_body_bytes
        try:
            while data := response.read1(65536):
                self._time_left(0)
                kept += data[: max(0, limit - len(kept))]
                self._pool_upstream(response)
                self._pass(data, self.client, "bytes_received", cap)
        finally:
            total = self.entry["bytes_received"]
            self._log_message("response", response.msg.items(), bytes(kept), total)

    def _log_message(
        self, side: str, headers: Sequence[tuple[str, str]], body: bytes, total: int
    ) -> None:
        """Keep one side of the exchange in the log entry (cut and masked)."""
        sizes = (self.config.log_header_bytes, self.config.log_body_bytes)
        shown = exchange_log.message(list(headers), body, total, sizes, SENSITIVE_QUERY_KEYS)
        self.entry[side] = exchange_log.masked(shown, self.log_secrets)

    # -- brokerage.internal -------------------------------------------------------

    def _platform(self, head: RequestHead, port: int, path: str, body: bytes) -> None:
        if port != 80:
            raise EgressRefusedError(Refusal.PORT_NOT_ALLOWED, f"{RESERVED_HOST} is port 80 only")
        self._throttle(f"{RESERVED_HOST}:80")
        if path.partition("?")[0] == "/mail":
            self._mail(head, body)
        elif path == "/api" or path.startswith(("/api/", "/api?")):
            self._api(head, path.removeprefix("/api") or "/", body)
        else:
            raise EgressRefusedError(Refusal.NOT_FOUND, f"no platform service at {path}")

    def _mail(self, head: RequestHead, body: bytes) -> None:
        mailer = self.channel.gateway.mailer
        if head.method != "POST":
            raise EgressRefusedError(Refusal.BAD_REQUEST, "/mail takes POST")
        if mailer is None:
            raise EgressRefusedError(Refusal.NOT_FOUND, "mail is not configured")
        request = MailRequest.from_json(body, mailer.config)
        assert self.run is not None
        self.run.count("mails", self.config.max_mails_per_run)
        message_id = mailer.send(request, self._identity_headers())
        self.entry.update(bytes_sent=len(body), detail=f"mail to {len(request.to)} recipient(s)")
        self._reply(202, {"sent": True, "message_id": message_id, "to": list(request.to)})

    def _identity_headers(self) -> dict[str, str]:
        assert self.run is not None
        bundle = self.channel.bundle
        return {
            "X-Brokerage-Broker": f"{bundle.name} {bundle.version}",
            "X-Brokerage-Delivery": self.run.delivery_id,
        }

    def _api(self, head: RequestHead, path: str, body: bytes) -> None:
        forwarder = self.config.api_forwarder
        permissions = tuple(self.channel.bundle.manifest.get("permissions", ()))
        if forwarder is None or not permissions:
            raise EgressRefusedError(Refusal.API_DENIED, "this broker has no platform API access")
        assert self.run is not None
        call = ApiCall(
            method=head.method,
            path=path,
            headers={n.lower(): v for n, v in head.headers if n.lower() in API_FORWARDED_HEADERS},
            body=body,
            delivery_id=self.run.delivery_id,
            broker=self.channel.bundle.name,
            version=self.channel.bundle.version,
            permissions=permissions,
        )
        reply = forwarder(call)
        self.entry.update(bytes_sent=len(body))
        self._send_reply(reply.status, reply.headers, reply.body)

    def _reply(self, status: int, document: Any) -> None:
        body = json.dumps(document).encode()
        self._send_reply(status, {"Content-Type": "application/json"}, body)

    def _send_reply(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.entry.update(status=status, bytes_received=len(body))
        self._log_message("response", list(headers.items()), body, len(body))
        reason = http.client.responses.get(status, "")
        safe = {k: _clean(v) for k, v in headers.items() if k.lower() not in HOP_BY_HOP}
        self._answer(status, reason, body, safe)


def _end_to_end(headers: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """Drop hop-by-hop headers, including any the Connection header names."""
    named = {
        token.strip().lower()
        for name, value in headers
        if name.lower() == "connection"
        for token in value.split(",")
    }
    return [(n, v) for n, v in headers if n.lower() not in HOP_BY_HOP | named]


def _clean(value: str) -> str:
    """A header value safe to re-emit: folded or control characters become spaces."""
    return "".join(" " if ord(c) < 0x20 or ord(c) == 0x7F else c for c in value).strip()
