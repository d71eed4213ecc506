"""The access log of ``brokerage serve``: one line per request, written when its answer
has been sent (so the duration covers the whole body), to the ``brokerage.access`` logger.

    client=203.0.113.9 method=GET path="/repos/marcus/x/services" status=200 bytes=5120
    duration=0.012s   (one line)

The path never carries the query string (a query may hold a token: a POST service's URL
field, ``?token=`` links) and nothing else of the request is logged: no headers (they
carry passwords and tokens), no body. ``client`` is the peer's address; behind a reverse
proxy, ``brokerage serve --trusted-proxy`` makes it the proxy's ``X-Forwarded-For``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

log = logging.getLogger("brokerage.access")

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WsgiApp = Callable[[Environ, StartResponse], Iterable[bytes]]


def _quoted(text: str) -> str:
    """``text`` as a JSON string: quotes, control characters and newlines escaped, so one
    request is always one line whatever its path holds."""
    return json.dumps(text, ensure_ascii=False)


def request_path(environ: Environ) -> str:
    """The path as the client asked for it, without the query string."""
    raw = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    # WSGI hands the path as latin-1 decoded bytes: recover the UTF-8 the client sent
    try:
        return raw.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return raw


class AccessLog:
    """WSGI middleware writing one access-log line per request."""

    def __init__(self, app: WsgiApp, logger: logging.Logger = log) -> None:
        self.app = app
        self.logger = logger

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        seen: dict[str, str] = {"status": "-"}

        def recording(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            seen["status"] = status.split(" ", 1)[0]
            return start_response(status, headers, exc_info)

        try:
            body = self.app(environ, recording)
        except Exception:
            self._write(environ, "500", 0, started)
            raise
        return _Body(body, lambda sent: self._write(environ, seen["status"], sent, started))

    def _write(self, environ: Environ, status: str, sent: int, started: float) -> None:
        self.logger.info(
            "client=%s method=%s path=%s status=%s bytes=%d duration=%.3fs",
            environ.get("REMOTE_ADDR") or "-",
            environ.get("REQUEST_METHOD", "-"),
            _quoted(request_path(environ)),
            status,
            sent,
            time.perf_counter() - started,
        )


class _Body:
    """The answer's body, counting what is sent and logging once it is closed."""

    def __init__(self, body: Iterable[bytes], done: Callable[[int], None]) -> None:
        self.body = body
        self.done = done
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.body:
            self.sent += len(chunk)
            yield chunk

    def close(self) -> None:
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            self.done(self.sent)
