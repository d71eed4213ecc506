"""The services resource (Bitbucket's 1.0 ``services`` API; docs/design.md): brokers
enabled on a repository, with their values.

Parameters arrive form-encoded as in Bitbucket's resource (``type=POST&URL=...``): ``type`` names
the broker type (title or name, any case); every other parameter is a field value
addressed by its label (any case). What is shown and what is kept secret:

- password fields show ``********`` when set, ``""`` when not
  (:mod:`brokerage.submissions.fields`);
- a URL carrying ``user:password@`` shows the password as ``********`` too;
- a value sent back exactly as it was shown (a GET, then a PUT of the same values)
  keeps the stored value, so masked secrets survive a round trip.

Every type also takes the platform-level ``Branches`` field (:mod:`.branches`), listed
last; it is optional everywhere.

PUT follows Bitbucket's rule: it must carry every field; if a field is omitted or an unknown
parameter is passed, every value of the service is cleared (and the response says so
in an ``X-Brokerage-Warning`` header). "Every field" means every *required* field:
Brokerage adds optional fields to some of Bitbucket's types (POST's ``Content type``
and ``Secret``), and Bitbucket's own ``PUT URL=…`` must keep working on them, so an
optional field left out keeps its value. A value that is present but invalid is a 400
and changes nothing.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict

from brokerage.core.errors import BadRequestError, NotFoundError
from brokerage.platform import branches, catalogue
from brokerage.platform.encryption import FieldCipher
from brokerage.platform.models import Repository, Service
from brokerage.submissions.errors import FieldError
from brokerage.submissions.fields import MASK, coerce_field, display_value
from brokerage.submissions.models import BrokerVersion

Params = MultiDict[str, str]
BRANCHES = branches.FIELD["label"].lower()


def _shown(field_def: dict[str, Any], value: Any) -> str:
    shown = display_value(field_def, value)
    if field_def["type"] == "url" and shown:
        parts = urlsplit(shown)
        if parts.password:
            netloc = f"{parts.username}:{MASK}@{parts.netloc.rsplit('@', 1)[1]}"
            shown = urlunsplit(parts._replace(netloc=netloc))
    return shown


def _single_values(params: Params) -> dict[str, str]:
    values: dict[str, str] = {}
    for key in params:
        given = params.getlist(key)
        if len(given) > 1:
            raise BadRequestError(f"parameter {key!r} given {len(given)} times; give it once")
        values[key] = given[0]
    return values


def _field_map(version: BrokerVersion) -> dict[str, dict[str, Any]]:
    return {f["label"].lower(): f for f in version.fields}


def _take_branches(given: dict[str, str]) -> str | None:
    """Remove and return the platform-level ``Branches`` parameter (None: not given)."""
    for key in list(given):
        if key.lower() == BRANCHES:
            return ", ".join(branches.patterns(given.pop(key)))
    return None


def _coerce(field_def: dict[str, Any], raw: str, current: Any) -> Any:
    if current not in (None, "") and raw == _shown(field_def, current):
        return current
    try:
        return coerce_field(field_def, raw)
    except FieldError as exc:
        raise BadRequestError(str(exc)) from exc


def _defaults(version: BrokerVersion) -> dict[str, Any]:
    return {
        f["label"]: f.get("default")
        if f.get("default") is not None
        else (False if f["type"] == "boolean" else "")
        for f in version.fields
    }


def serialize(service: Service, cipher: FieldCipher) -> dict[str, Any]:
    """Bitbucket's shape: ``{"id", "service": {"fields": [{"name", "value"}], "type"}}``."""
    values = cipher.decrypt(service.config_ciphertext)
    fields = [
        {"name": f["label"], "value": _shown(f, values.get(f["label"]))}
        for f in service.broker_version.fields
    ]
    fields.append({"name": branches.FIELD["label"], "value": service.branches})
    return {"id": service.id, "service": {"fields": fields, "type": service.broker_type.title}}


def values_of(service: Service, cipher: FieldCipher) -> dict[str, Any]:
    """The clear field values, for the broker's ``payload['service']`` only."""
    return cipher.decrypt(service.config_ciphertext)


def add_service(session: Session, repo: Repository, params: Params, cipher: FieldCipher) -> Service:
    given = _single_values(params)
    type_name = given.pop("type", "").strip()
    if not type_name:
        raise BadRequestError("type: required (one of the offered service types)")
    version = catalogue.find_offered(session, type_name)
    fields = _field_map(version)
    values = _defaults(version)
    branch_filter = _take_branches(given) or ""
    for key, raw in given.items():
        field_def = fields.get(key.lower())
        if field_def is None:
            labels = ", ".join(f["label"] for f in version.fields) or "none"
            raise BadRequestError(
                f"unknown parameter {key!r} for type {version.broker_type.title} (fields: {labels})"
            )
        values[field_def["label"]] = _coerce(field_def, raw, None)
    service = Service(
        repository=repo,
        broker_version=version,
        config_ciphertext=cipher.encrypt(values),
        branches=branch_filter,
    )
    session.add(service)
    session.flush()
    return service


def update_service(service: Service, params: Params, cipher: FieldCipher) -> str | None:
    """Apply a PUT. Returns a warning when Bitbucket's rule cleared every value."""
    version = service.broker_version
    given = _single_values(params)
    type_name = given.pop("type", None)
    if type_name is not None and type_name.strip().lower() not in (
        version.broker_type.title.lower(),
        version.broker_type.name.lower(),
    ):
        raise BadRequestError(
            f"type: a service's type cannot change (it is {version.broker_type.title})"
        )
    fields = _field_map(version)
    branch_filter = _take_branches(given)
    sent = {k.lower() for k in given}
    omitted = [f["label"] for key, f in fields.items() if key not in sent and f.get("required")]
    unknown = [key for key in given if key.lower() not in fields]
    if omitted or unknown:
        service.config_ciphertext = cipher.encrypt({f["label"]: "" for f in version.fields})
        service.branches = ""
        return _clear_warning(omitted, unknown)
    if branch_filter is not None:
        service.branches = branch_filter
    current = cipher.decrypt(service.config_ciphertext)
    values = dict(current)  # optional fields left out keep their values
    for key, raw in given.items():
        field_def = fields[key.lower()]
        values[field_def["label"]] = _coerce(field_def, raw, current.get(field_def["label"]))
    service.config_ciphertext = cipher.encrypt(values)
    return None


def _clear_warning(omitted: list[str], unknown: list[str]) -> str:
    parts = []
    if omitted:
        parts.append("omitted " + ", ".join(omitted))
    if unknown:
        # a parameter name may hold anything: those that are not printable ASCII are shown
        # escaped, so the warning stays one safe header line
        parts.append("unknown " + ", ".join(n if _plain(n) else ascii(n) for n in unknown))
    warning = "all field values cleared (PUT must carry every field): " + "; ".join(parts)
    return warning if len(warning) <= 1000 else warning[:999] + "…"


def _plain(name: str) -> bool:
    return name.isascii() and name.isprintable()


def get_service(repo: Repository, service_id: int) -> Service:
    for service in repo.services:
        if service.id == service_id:
            return service
    raise NotFoundError(f"service {service_id} does not exist on repository {repo.full_name}")


def set_enabled(session: Session, service: Service, enabled: bool, username: str) -> None:
    """Enable a service again (its failure count cleared) or disable it by hand; commits."""
    service.enabled = enabled
    service.disabled_reason = "" if enabled else f"disabled by {username}"
    if enabled:
        service.consecutive_failures = 0
    session.commit()
