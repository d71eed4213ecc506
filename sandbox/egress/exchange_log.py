"""What the request log keeps of one relayed request and its answer: headers and bodies,
each cut at a size the operator sets, with credentials masked.

Masked here, whatever the service: the values of headers named like credentials
(``Authorization``, ``Cookie``, ``X-Api-Key``, anything with ``token``, ``secret``,
``password``, ``auth``, ``session`` in its name) and, in a form-encoded body, the values
of fields named like secrets (the names :func:`~brokerage.sandbox.egress.proxy.redact_url`
masks in a query). The platform then masks the service's own secret values wherever they
appear in the entry (``dispatch.scrub``), so a password sent under an innocent name is
masked too.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

MASKED = "***"
"""what a masked header or form value reads as"""
BODY_BYTES = 8 * 1024
"""default: bytes of each request and response body kept (``EGRESS_LOG_BODY_BYTES``)"""
HEADER_BYTES = 4 * 1024
"""default: bytes of each request's and response's headers kept (``EGRESS_LOG_HEADER_BYTES``)"""

SECRET_HEADER = re.compile(r"auth|cookie|token|secret|passw|api[-_]?key|session", re.IGNORECASE)
"""header names whose values are credentials"""
FORM_TYPE = "application/x-www-form-urlencoded"
MIN_SECRET_CHARS = 4
"""shorter credential values are not searched for elsewhere (they would mask ordinary words)"""


def header_value(name: str, value: str) -> str:
    return MASKED if SECRET_HEADER.search(name) else value


def shown_headers(headers: Sequence[tuple[str, str]], limit: int) -> dict[str, Any]:
    """``headers`` as ``[[name, value], ...]``, credentials masked, cut after ``limit``
    bytes (name, ``": "``, value and CRLF of each line count)."""
    kept: list[list[str]] = []
    size = 0
    for name, value in headers:
        shown = header_value(name, value)
        size += len(name) + len(shown) + 4
        if size > limit:
            return {"headers": kept, "headers_truncated": True}
        kept.append([name, shown])
    return {"headers": kept, "headers_truncated": False}


def shown_body(
    data: bytes, total: int, limit: int, content_type: str, secret_keys: Collection[str]
) -> dict[str, Any]:
    """The first ``limit`` bytes of a body as text (``total``: its whole length); a body
    that is not UTF-8 text is described, not shown."""
    kept = data[:limit]
    truncated = total > len(kept)
    try:
        text = kept.decode("utf-8")
    except UnicodeDecodeError as exc:
        if truncated and exc.start >= len(kept) - 3:  # a character cut in two by the limit
            text = kept[: exc.start].decode("utf-8", "replace")
        else:
            text = f"({total} bytes, not UTF-8 text: not shown)"
    if FORM_TYPE in content_type.lower():
        text = _masked_form(text, secret_keys)
    return {"body": text, "body_bytes": total, "body_truncated": truncated}


def _masked_form(text: str, secret_keys: Collection[str]) -> str:
    fields = parse_qsl(text, keep_blank_values=True)
    if not any(k.lower() in secret_keys for k, _ in fields):
        return text
    return urlencode([(k, MASKED if k.lower() in secret_keys else v) for k, v in fields], safe="*")


def request_secrets(
    target: str, headers: Sequence[tuple[str, str]], body: bytes, secret_keys: Collection[str]
) -> list[str]:
    """The credentials a request carries (its URL's password and secret query values, its
    credential headers' values, its form's secret fields), longest first: an answer that
    echoes one (a receiver quoting the URL back) has it masked too."""
    found: set[str] = set()
    try:
        url = urlsplit(target)
        found.add(unquote(url.password or ""))
        found.update(v for k, v in parse_qsl(url.query) if k.lower() in secret_keys)
    except ValueError:
        pass
    for name, value in headers:
        if SECRET_HEADER.search(name):
            found.update((value, value.rpartition(" ")[2]))  # "Bearer <token>": the token too
        if name.lower() == "content-type" and FORM_TYPE in value.lower():
            form = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
            found.update(v for k, v in form if k.lower() in secret_keys)
    return sorted((s for s in found if len(s) >= MIN_SECRET_CHARS), key=len, reverse=True)


def masked(shown: dict[str, Any], secrets: Sequence[str]) -> dict[str, Any]:
    """``shown`` (a :func:`message`) with every secret value masked in its headers and body."""

    def mask(text: str) -> str:
        for secret in secrets:
            text = text.replace(secret, MASKED)
        return text

    if secrets:
        shown["headers"] = [[name, mask(value)] for name, value in shown["headers"]]
        shown["body"] = mask(shown["body"])
    return shown


def message(
    headers: Sequence[tuple[str, str]],
    body: bytes,
    total: int,
    sizes: tuple[int, int],
    secret_keys: Collection[str],
) -> dict[str, Any]:
    """One side of an exchange as the log keeps it; ``sizes``: (header bytes, body bytes)."""
    content_type = next((v for n, v in headers if n.lower() == "content-type"), "")
    return shown_headers(headers, sizes[0]) | shown_body(
        body, total, sizes[1], content_type, secret_keys
    )
