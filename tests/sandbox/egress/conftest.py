"""Fixtures for the egress gateway: real HTTP(S) receivers on 127.0.0.1, an injectable
resolver, a gateway allowing 127.0.0.1/32 for named hosts, and broker-side clients that
reach it the way broker code does (requests → loopback bridge → the channel's Unix socket)."""

from __future__ import annotations

import datetime
import ipaddress
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from brokerage.sandbox.egress.config import GatewayConfig
from brokerage.sandbox.egress.gateway import Channel, Gateway
from brokerage.sandbox.interface import BrokerBundle
from brokerage.sandbox.runner.egress_bridge import start_bridge

NAMES = {
    "receiver.test": ["127.0.0.1"],
    "a.wild.test": ["127.0.0.1"],
    "deep.a.wild.test": ["127.0.0.1"],
    "wild.test": ["127.0.0.1"],
    "localhost": ["127.0.0.1", "::1"],
    "private.test": ["10.0.0.7"],
    "cgnat.test": ["100.64.1.1"],
    "metadata.test": ["169.254.169.254"],
    "mapped.test": ["::ffff:127.0.0.1"],
    "nat64.test": ["64:ff9b::a00:1"],
    "ula.test": ["fd12:3456::1"],
    "rebind.test": ["10.0.0.8", "192.168.0.8"],
}
"""what the test resolver answers; any other name does not resolve"""


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class _Handler(BaseHTTPRequestHandler):
    server: _ReceiverServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib's name)
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.requests.append(
            Recorded(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        )
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/redirect":
            self._send(302, b"", {"Location": query["to"]})
        elif url.path == "/big":
            self._send(200, b"x" * int(query["n"]), {})
        elif url.path == "/slow":
            time.sleep(float(query["s"]))
            self._send(200, b"slow", {})
        else:
            reply = {"method": self.command, "path": self.path, "length": len(body)}
            self._send(200, json.dumps(reply).encode(), {"Content-Type": "application/json"})

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _serve


class _ReceiverServer(ThreadingHTTPServer):
    daemon_threads = True
    requests: list[Recorded]

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients cut off on purpose (timeouts, caps) are expected here


@dataclass
class Receiver:
    server: _ReceiverServer
    scheme: str
    requests: list[Recorded] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def url(self, path: str = "/", host: str = "receiver.test") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"


def _start(server: _ReceiverServer, scheme: str) -> Receiver:
    receiver = Receiver(server, scheme)
    server.requests = receiver.requests
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return receiver


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for receiver.test and 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "receiver.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("receiver.test"),
                    x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    """A plain HTTP receiver on 127.0.0.1."""
    server = _ReceiverServer(("127.0.0.1", 0), _Handler)
    yield _start(server, "http")
    server.shutdown()


@pytest.fixture(scope="session")
def tls_receiver(tls_cert: tuple[Path, Path]) -> Iterator[Receiver]:
    """An HTTPS receiver on 127.0.0.1 (certificate: ``tls_cert``)."""
    server = _ReceiverServer(("127.0.0.1", 0), _Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*tls_cert)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    yield _start(server, "https")
    server.shutdown()


def fake_resolver(host: str, port: int) -> list[str]:
    if host not in NAMES:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return NAMES[host]


@pytest.fixture(scope="session")
def gateway_config(receiver: Receiver, tls_receiver: Receiver) -> GatewayConfig:
    return GatewayConfig(
        allowed_ports=frozenset({80, 443, receiver.port, tls_receiver.port}),
        extra_ranges=("127.0.0.1/32",),
        resolver=fake_resolver,
    )


@pytest.fixture
def gateway(gateway_config: GatewayConfig) -> Iterator[Gateway]:
    with Gateway(gateway_config) as gateway:
        yield gateway


def make_bundle(egress: list[str], permissions: list[str] | None = None) -> BrokerBundle:
    manifest: dict[str, Any] = {"name": "probe", "version": "1.0.0", "entry_point": "broker.py"}
    manifest["egress"] = egress
    if permissions is not None:
        manifest["permissions"] = permissions
    return BrokerBundle("probe", "1.0.0", manifest, {"broker.py": b""})


@dataclass
class BrokerSide:
    """A channel with a run in progress, and a requests session that reaches it like a broker."""

    channel: Channel
    session: requests.Session
    proxy_port: int

    def end_run(self) -> list[dict[str, Any]]:
        return self.channel.end_run()


@pytest.fixture
def broker_side(gateway: Gateway) -> Iterator[Callable[..., BrokerSide]]:
    """``broker_side(egress, permissions=None, via=None)``: open a channel (on the
    ``gateway`` fixture, or ``via``) and begin a run."""
    opened: list[BrokerSide] = []

    def open_side(
        egress: list[str], permissions: list[str] | None = None, via: Gateway | None = None
    ) -> BrokerSide:
        channel = (via or gateway).open_channel(make_bundle(egress, permissions))
        port = start_bridge(channel.socket_path)
        session = requests.Session()
        session.trust_env = False
        proxy = f"http://127.0.0.1:{port}"
        session.proxies = {"http": proxy, "https": proxy}
        channel.begin_run(f"delivery-{len(opened)}")
        side = BrokerSide(channel, session, port)
        opened.append(side)
        return side

    yield open_side
    for side in opened:
        side.session.close()
        side.channel.close()


def raw_exchange(socket_path: str, data: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes straight to a channel's socket; return everything it answers."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(socket_path)
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.fixture
def raw() -> Callable[[str, bytes], bytes]:
    return raw_exchange


@pytest.fixture
def bundle_for() -> Callable[..., BrokerBundle]:
    return make_bundle


@pytest.fixture
def make_gateway(gateway_config: GatewayConfig) -> Iterator[Callable[..., Gateway]]:
    """``make_gateway(**overrides)``: a gateway like ``gateway`` with some settings changed."""
    made: list[Gateway] = []

    def make(**overrides: Any) -> Gateway:
        made.append(Gateway(replace(gateway_config, **overrides)))
        return made[-1]

    yield make
    for gateway in made:
        gateway.close()


@pytest.fixture(scope="session")
def redis_port() -> Iterator[int]:
    """A real redis-server of our own on 127.0.0.1 (CI installs redis-server)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = _free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.02)
    yield port
    process.terminate()
    process.wait(10)


def _redis_connections(port: int) -> int:
    """Connections the Redis server has accepted so far (this call included)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"INFO stats\r\n")
        data = b""
        while b"total_connections_received" not in data or not data.endswith(b"\r\n"):
            data += sock.recv(65536)
    line = next(x for x in data.split(b"\r\n") if x.startswith(b"total_connections_received"))
    return int(line.split(b":")[1])


@pytest.fixture
def redis_connections() -> Callable[[int], int]:
    return _redis_connections


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def free_port() -> Callable[[], int]:
    """``free_port()``: a TCP port on 127.0.0.1 that nothing listens on right now."""
    return _free_port
