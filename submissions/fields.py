"""What a service field's value means, shared by the services API and the web forms.

A field definition is one entry of a manifest's ``fields`` list
(``{"label": "URL", "type": "url", ...}``). Values arrive as strings (form
fields, the services resource's ``type=POST&URL=...`` parameters); :func:`coerce_field`
turns one into the value stored and handed to the broker in
``payload["service"]``:

- ``string``: kept, surrounding spaces stripped. ``password``: kept exactly
  (a secret may begin or end with a space).
- ``boolean``: ``true``/``on``/``yes``/``1`` give True; ``false``/``off``/
  ``no``/``0`` and ``""`` (an unticked checkbox sends nothing) give False;
  any case. Any other text is an error.
- ``url``: an ``http`` or ``https`` URL with a host (``user:pass@host`` is
  allowed: the classic POST service suggested it for HTTP Basic receivers).
- ``email``: one address, or several separated by commas when the field says
  ``"multiple": true``; stored as ``"a@x.org, b@y.org"``
  (:func:`split_emails` gives the list back).
- ``choice``: one of ``choices``, matched case-insensitively and stored in the
  manifest's spelling.

``""`` means *unset* for every type but boolean, and is always accepted:
``required`` is not enforced here because the services resource lets a service be created
with only its type; :func:`missing_required` says which required fields are
still empty (the platform can refuse to run such a service).

**Masking.** A password value is never shown: :func:`mask` returns ``MASK``
(``"********"``) when a secret is set and ``""`` when it is not, so a reader
learns whether it is set and nothing else. Other types are shown as they are
(booleans as ``"true"``/``"false"`` by :func:`display_value`). The services resource's PUT
must carry every field, so a client that GETs a service and PUTs it back sends
``MASK`` for the password: the API should test :func:`is_mask` on the raw value
and then keep the stored secret instead of coercing. The price is that the
literal secret ``********`` cannot be set through the API.

Errors are :class:`~brokerage.submissions.errors.FieldError`, whose message
starts with the field's label: ``URL: 'ftp://x' is not an http or https URL``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from brokerage.submissions.errors import FieldError

FieldDef = Mapping[str, Any]
FieldValue = str | bool

MASK = "********"
"""What a set password field shows instead of its value."""

FIELD_VALUE_MAX_CHARS = 2048
"""characters; a longer raw value is refused (URLs beyond ~2,000 break many servers anyway)."""

_TRUE = frozenset({"true", "on", "yes", "1"})
_FALSE = frozenset({"false", "off", "no", "0", ""})
_EMAIL = re.compile(r"^[^@\s,;<>]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


def coerce_field(field_def: FieldDef, raw: str) -> FieldValue:
    """The value a raw string gives for this field, or FieldError naming the label."""
    label = str(field_def["label"])
    if not isinstance(raw, str):
        raise FieldError(label, f"expected text, got {type(raw).__name__}")
    if len(raw) > FIELD_VALUE_MAX_CHARS:
        raise FieldError(label, f"is longer than {FIELD_VALUE_MAX_CHARS} characters")
    if "\x00" in raw:
        raise FieldError(label, "contains a NUL character")
    kind = field_def["type"]
    if kind == "password":
        return raw
    text = raw.strip()
    if kind == "boolean":
        return _coerce_boolean(label, text)
    if text == "" or kind == "string":
        return text
    if kind == "url":
        return _coerce_url(label, text)
    if kind == "email":
        return _coerce_email(label, text, bool(field_def.get("multiple", False)))
    if kind == "choice":
        return _coerce_choice(label, text, field_def.get("choices") or [])
    raise FieldError(label, f"unknown field type {kind!r}")


def _coerce_boolean(label: str, text: str) -> bool:
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise FieldError(label, f"{text!r} is not a boolean (use true or false)")


def _coerce_url(label: str, text: str) -> str:
    if any(char.isspace() for char in text):
        raise FieldError(label, f"{text!r} is not an http or https URL")
    try:
        parts = urlsplit(text)
        host = parts.hostname
        parts.port  # noqa: B018 -- raises ValueError on a malformed port
    except ValueError as exc:
        raise FieldError(label, f"{text!r} is not a valid URL ({exc})") from exc
    if parts.scheme.lower() not in ("http", "https"):
        raise FieldError(label, f"{text!r} is not an http or https URL")
    if not host:
        raise FieldError(label, f"{text!r} has no host")
    return text


def _coerce_email(label: str, text: str, multiple: bool) -> str:
    addresses = [part.strip() for part in text.split(",")]
    if len(addresses) > 1 and not multiple:
        raise FieldError(label, f"{text!r} holds several addresses; this field takes one")
    for address in addresses:
        if not address:
            raise FieldError(label, f"{text!r} has an empty address between commas")
        if not _EMAIL.match(address):
            raise FieldError(label, f"{address!r} is not an email address")
    return ", ".join(addresses)


def _coerce_choice(label: str, text: str, choices: Iterable[str]) -> str:
    options = list(choices)
    for option in options:
        if option.lower() == text.lower():
            return option
    raise FieldError(label, f"{text!r} is not one of {options}")


def split_emails(value: str) -> list[str]:
    """The addresses held by an email field's stored value (empty when unset)."""
    return [part.strip() for part in value.split(",") if part.strip()]


def is_mask(raw: str) -> bool:
    """True when a submitted password value is the mask sent back unchanged."""
    return raw == MASK


def mask(field_def: FieldDef, value: FieldValue | None) -> FieldValue:
    """The value as shown to anyone: MASK or "" for a password field, the value otherwise."""
    if field_def["type"] == "password":
        return MASK if value else ""
    return "" if value is None else value


def display_value(field_def: FieldDef, value: FieldValue | None) -> str:
    """The masked value as the string a service's ``{"name": ..., "value": ...}`` carries."""
    shown = mask(field_def, value)
    if isinstance(shown, bool):
        return "true" if shown else "false"
    return shown


def missing_required(field_defs: Iterable[FieldDef], values: Mapping[str, Any]) -> list[str]:
    """Labels of required fields whose value is unset ("" or absent), in manifest order."""
    return [
        str(field["label"])
        for field in field_defs
        if field.get("required") and field["type"] != "boolean" and not values.get(field["label"])
    ]
