"""The benchmark's webhook receiver: a real HTTP server on 127.0.0.1, in its own process.

    python bench/receiver.py PORT

HTTP/1.1 with keep-alive (a sender may reuse its connection), TCP_NODELAY as real
servers set it. Every POST is answered
200 and counted; one carrying ``X-Bench-Sent: <unix time>`` also records its latency.
``GET /stats`` answers ``{"count", "latencies_ms", "last_body"}``; ``POST /reset`` clears
them. Standard library only.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LOCK = threading.Lock()
STATE: dict[str, Any] = {"count": 0, "latencies_ms": [], "last_body": ""}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # head and body are two writes: no 40 ms delayed-ACK stall

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib's name)
        pass

    def _answer(self, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802 (stdlib's name)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/reset":
            with LOCK:
                STATE.update(count=0, latencies_ms=[])
            self._answer(b"{}")
            return
        sent = self.headers.get("X-Bench-Sent")
        with LOCK:
            STATE["count"] += 1
            STATE["last_body"] = body.decode("latin-1")
            if sent:
                STATE["latencies_ms"].append((time.time() - float(sent)) * 1000)
        self._answer(b'{"ok": true}')

    def do_GET(self) -> None:  # noqa: N802 (stdlib's name)
        with LOCK:
            body = json.dumps(STATE).encode()
        self._answer(body)


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
