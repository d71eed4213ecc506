"""Egress through the real gateway: the runner's loopback bridge and the mounted socket.

The sandbox has no network of its own; a broker's ``requests`` call reaches a
receiver on 127.0.0.1 only through the gateway, which logs it against the
delivery and refuses hosts the manifest does not name.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from brokerage.sandbox.egress.config import GatewayConfig
from brokerage.sandbox.egress.gateway import Gateway
from brokerage.sandbox.interface import BrokerBundle, RunStatus
from tests.sandbox.conftest import BACKENDS, make_backend
from tests.sandbox.sandbox_fixtures import FAST, bundle, envelope


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Receiver.received.append({"path": self.path, "body": json.loads(body)})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def receiver() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


@pytest.fixture(scope="module", params=BACKENDS)
def egress_backend(request, receiver, tmp_path_factory) -> Iterator[Any]:
    def resolve(host: str, port: int) -> list[str]:
        return ["127.0.0.1"] if host.endswith(".test") else []

    # bubblewrap binds the channel directory as host nobody: its parents must be traversable
    sockets = tmp_path_factory.mktemp("egress")
    for directory in (sockets, *list(sockets.parents)[:3]):
        directory.chmod(directory.stat().st_mode | 0o711)
    config = GatewayConfig(allowed_ports=frozenset({receiver}), socket_dir=str(sockets),
                           extra_ranges=("127.0.0.1/32",), resolver=resolve)  # fmt: skip
    with Gateway(config) as gateway:
        backend = make_backend(request.param, request, egress=gateway)
        yield backend
        backend.close()


def poster(port: int) -> BrokerBundle:
    broker = bundle(
        f"""
        import requests
        from brokerage_sdk import BaseBroker, forward_payload

        class Broker(BaseBroker):
            def handle(self, payload):
                url = "http://" + payload["target"] + ":{port}/hook"
                try:
                    response = requests.post(url, json=forward_payload(payload), timeout=5)
                except requests.RequestException as exc:
                    return {{"error": str(exc)[:200]}}
                return {{"status": response.status_code}}
    """,
        name="poster",
    )
    manifest = dict(broker.manifest, egress=["receiver.test"])
    return BrokerBundle(broker.name, broker.version, manifest, broker.files)


def test_allowed_host_is_reached_and_logged(egress_backend, receiver):
    _Receiver.received.clear()
    result = egress_backend.run(poster(receiver), envelope(target="receiver.test"), FAST)
    assert result.status is RunStatus.SUCCEEDED, result
    assert result.result == {"status": 204}
    [got] = _Receiver.received
    assert got["path"] == "/hook" and "service" not in got["body"]
    assert len(result.requests) == 1


def test_host_outside_the_manifest_is_refused(egress_backend, receiver):
    _Receiver.received.clear()
    result = egress_backend.run(poster(receiver), envelope(target="other.test"), FAST)
    assert result.status is RunStatus.SUCCEEDED, result
    assert result.result != {"status": 204}
    assert _Receiver.received == []
