"""What sits between the WSGI server and the Flask app: safe response headers, and JSON
for the errors waitress answers itself.

- :class:`SafeHeaders` wraps the app: a response header whose value would break HTTP (CR,
  LF, other control characters, or text that is not Latin-1) is written with those
  characters escaped, instead of making the server fail after the view's work committed.
- :class:`JsonErrorChannel` is waitress's channel with an error task that answers JSON in
  the API's shape (``{"error": {"status": …, "message": …}}``) when waitress refuses a
  request before the app sees it (a bad Content-Length, a header too large, a malformed
  request line, …).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

import waitress
from waitress.channel import HTTPChannel
from waitress.task import ErrorTask

_UNSAFE = re.compile(r"[\x00-\x1f\x7f]|[^\x00-\xff]")

StartResponse = Callable[..., Any]


def safe_header_value(value: str) -> str:
    """``value`` with control characters and non-Latin-1 text escaped as ``\\xNN``/``\\uNNNN``."""
    if not _UNSAFE.search(value):
        return value
    return _UNSAFE.sub(lambda m: ascii(m.group())[1:-1], value)


class SafeHeaders:
    """WSGI middleware: every response header value is safe to send."""

    def __init__(self, app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        def safe_start(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            kept = [(name, safe_header_value(str(value))) for name, value in headers]
            return start_response(status, kept, *exc_info)

        return self.app(environ, safe_start)


class JsonErrorTask(ErrorTask):
    """waitress's own refusals, answered as JSON."""

    def execute(self) -> None:
        error = self.request.error
        body = json.dumps(
            {"error": {"status": error.code, "message": f"{error.reason}: {error.body}"}}
        ).encode()
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class JsonErrorChannel(HTTPChannel):
    error_task_class = JsonErrorTask


def serve(app: Any, host: str, port: int, threads: int = 4, **options: Any) -> None:
    """``waitress.serve`` with JSON errors (blocks)."""
    server = create_server(app, host, port, threads, **options)
    server.run()


def create_server(app: Any, host: str, port: int, threads: int = 4, **options: Any) -> Any:
    """A waitress server (not yet running) whose own errors are JSON."""
    server = waitress.create_server(app, host=host, port=port, threads=threads, **options)
    server.channel_class = JsonErrorChannel
    return server
