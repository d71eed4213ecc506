"""HTTP for brokers: a ``requests`` session that goes through the egress gateway.

Inside the sandbox the runner sets ``HTTP_PROXY``/``HTTPS_PROXY`` to its loopback
bridge, so any ``requests`` call already leaves through the gateway. The session
here takes a shorter way where it can: the runner calls :func:`prepare` once, before
it forks any run, and every :class:`GatewaySession` then sends plain ``http://``
requests straight to the gateway's Unix socket (:mod:`egress_transport`: no bridge
hop) and uses the proxies and CA bundle read then instead of reading the
environment (and looking for a ``.netrc``) on every request. What this module adds
is what every broker otherwise hand-rolls:

- a default timeout (``requests`` has none: a silent receiver would hold the run
  until the sandbox kills it);
- the delivery headers (``X-Brokerage-Delivery``, ``X-Brokerage-Attempt``) so
  receivers can deduplicate retries of one delivery;
- :meth:`GatewaySession.checked`: one call that turns what went wrong into the
  error the platform acts on: :class:`~brokerage_sdk.ConfigurationError` (the
  service's settings are wrong: not retried, counts towards auto-disable) or
  :class:`~brokerage_sdk.TransientError` (retried later);
- :meth:`GatewaySession.fetch` (not ``send``: requests sends prepared requests
  with that): the same transport handling, but the response comes back whatever
  its status, for brokers that read an error's body (a 403 that
  means "duplicate", a 422 listing what was wrong) before judging it.

Runs inside the sandbox: standard library and ``requests`` only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import brokerage_sdk
import requests
from catalogue import refuse_certificate_files

DEFAULT_TIMEOUT = (5.0, 25.0)
"""seconds (connect, read) when a call gives none; the gateway caps one request at 30 s"""
DELIVERY_HEADER = "X-Brokerage-Delivery"
"""the delivery id: the same on every attempt of one delivery"""
ATTEMPT_HEADER = "X-Brokerage-Attempt"
"""the attempt number, 1-based"""
REFUSED_HEADER = "X-Brokerage-Refused"
"""set by the gateway on its own refusals"""
USER_AGENT = "Brokerage-Broker/1.0"

CONFIGURATION_STATUSES = frozenset({401, 403, 404, 410})
"""receiver answers that mean the URL or credentials are wrong: retrying will not help"""
CONFIGURATION_REFUSALS = frozenset(
    {"bad_request", "bad_host", "host_not_allowed", "port_not_allowed", "address_denied",
     "not_found", "mail_invalid", "api_denied"}
)  # fmt: skip
"""gateway refusals that the same request would meet again"""

_transport: dict[str, Any] = {}
"""set once per runner by :func:`prepare`: the adapter, proxies and CA bundle every
session of a run starts with (each run is a fork: its copy is its own)"""


def prepare(socket_path: str) -> None:
    """Once per runner, before any run: build the transport every session will use.

    Plain ``http://`` goes straight to ``socket_path``; ``https://`` through the
    proxies in the environment (the runner's bridge). The CA bundle is the one the
    environment names, as ``requests`` would find it on each request.
    """
    from egress_transport import GatewayAdapter

    proxies = {}
    for scheme in ("http", "https"):
        proxy = os.environ.get(f"{scheme}_proxy") or os.environ.get(f"{scheme.upper()}_PROXY")
        if proxy:
            proxies[scheme] = proxy
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    adapter = GatewayAdapter(socket_path)
    _transport.update(adapter=adapter, proxies=proxies, verify=bundle or True)
    # warm what each run's first request would otherwise build in its freshly forked
    # process (lazy caches, the adapter's pool); no request is sent and nothing is kept
    warm = GatewaySession().prepare_request(
        requests.Request("POST", "http://brokerage.internal/", data=b"x=1")
    )
    adapter.get_connection_with_tls_context(warm, True, proxies)
    adapter.request_url(warm, proxies)


def delivery_headers(payload: Mapping[str, Any] | None) -> dict[str, str]:
    """The delivery id and attempt headers for ``payload`` (empty outside a delivery)."""
    delivery = (payload or {}).get("delivery") or {}
    headers = {}
    if delivery.get("id"):
        headers[DELIVERY_HEADER] = str(delivery["id"])
    if delivery.get("attempt"):
        headers[ATTEMPT_HEADER] = str(delivery["attempt"])
    return headers


class GatewaySession(requests.Session):
    """A ``requests.Session`` with a default timeout and the delivery headers."""

    def __init__(
        self,
        payload: Mapping[str, Any] | None = None,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__()
        self.timeout = timeout
        self.headers["User-Agent"] = USER_AGENT
        self.headers.update(delivery_headers(payload))
        if _transport:  # prepared by the runner: nothing read from the environment per request
            self.trust_env = False
            self.proxies.update(_transport["proxies"])
            self.verify = _transport["verify"]
            for prefix in ("http://", "https://"):
                self.mount(prefix, _transport["adapter"])

    def send(self, request: Any, **kwargs: Any) -> Any:
        """As requests sends, but never with certificate or CA *files* (``verify=<path>``,
        ``cert=...``): those make requests read files inside the sandbox."""
        refuse_certificate_files(kwargs)
        return super().send(request, **kwargs)

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, url, *args, **kwargs)

    def checked(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """Send one request; return a 2xx response or raise Configuration/TransientError."""
        return raise_for_outcome(self.fetch(method, url, **kwargs))

    def fetch(
        self, method: str, url: str, *, name: str | None = None, **kwargs: Any
    ) -> requests.Response:
        """Send one request; return the response whatever its status.

        Raises only when no answer came: :class:`~brokerage_sdk.ConfigurationError` for
        an unusable URL, :class:`~brokerage_sdk.TransientError` for a timeout or a
        connection failure. Messages name ``name`` (e.g. ``"Slack"``) instead of the
        URL when given: pass it when the URL itself is a credential.
        """
        kwargs.setdefault("allow_redirects", False)
        try:
            return self.request(method, url, **kwargs)
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                requests.exceptions.InvalidSchema) as exc:  # fmt: skip
            where = name or redact(url)
            raise brokerage_sdk.ConfigurationError(f"bad URL {where}: {exc}") from None
        except requests.Timeout:
            raise brokerage_sdk.TransientError(unreachable(method, url, name, None)) from None
        except requests.RequestException as exc:
            raise brokerage_sdk.TransientError(unreachable(method, url, name, exc)) from None


def raise_for_outcome(response: requests.Response) -> requests.Response:
    """``response`` if it is 2xx; else the error the platform should act on."""
    status = response.status_code
    if 200 <= status < 300:
        return response
    where = f"{response.request.method} {redact(str(response.url))}"
    refused = response.headers.get(REFUSED_HEADER)
    if refused:
        detail = f"{where}: refused by the egress gateway ({refused}): {snippet(response)}"
        if refused in CONFIGURATION_REFUSALS:
            raise brokerage_sdk.ConfigurationError(detail)
        raise brokerage_sdk.TransientError(detail)
    if 300 <= status < 400:
        target = response.headers.get("Location", "?")
        raise brokerage_sdk.ConfigurationError(
            f"{where}: answered {status}, redirecting to {redact(target)}; use that URL"
        )
    detail = f"{where}: answered {status} {response.reason or ''}".rstrip()
    if status in CONFIGURATION_STATUSES:
        raise brokerage_sdk.ConfigurationError(detail)
    raise brokerage_sdk.TransientError(detail)


def unreachable(method: str, url: str, name: str | None, exc: BaseException | None) -> str:
    """Why no answer came (``exc`` None: timed out), naming ``name`` or the redacted URL."""
    if name:
        return f"{name} did not answer in time" if exc is None else f"{name} could not be reached"
    reason = "timed out" if exc is None else describe(exc)
    return f"{method} {redact(url)}: {reason}"


def redact(url: str) -> str:
    """``url`` without a password (``https://user:***@host/``)."""
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    if not sep or "@" not in authority:
        return url
    credentials, _, host = authority.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}{slash}{path}"


def snippet(response: requests.Response, limit: int = 200) -> str:
    return response.text[:limit].strip()


def describe(exc: BaseException) -> str:
    """A short reason for a connection failure (requests nests the real one deep)."""
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "Connection reset",
                   "Remote end closed connection", "timed out"):  # fmt: skip
        if marker in text:
            return marker.lower()
    return text[:300]


def gateway_session(payload: Mapping[str, Any] | None = None) -> GatewaySession:
    """A session for one run: default timeout, delivery headers from ``payload``."""
    return GatewaySession(payload)
