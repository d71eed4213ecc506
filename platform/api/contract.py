"""The REST API's contract: ``openapi.json`` (OpenAPI 3.1, kept next to this module and
served at ``GET /1.0/openapi.json``), enforced at the boundary before any view runs.

Every request (web pages too) is refused with 400 when its text holds a NUL character or a
lone surrogate — in the path, the query, the Basic credentials, a form or a JSON body —
since no database stores them (PostgreSQL refuses NUL; a surrogate cannot be encoded).
Under ``/1.0`` the request is then checked against its operation (found by ``operationId``,
which is the Flask endpoint):

- a JSON body must parse (nested at most ``MAX_DEPTH`` deep) and match the operation's
  schema: types, caps (``maxLength``/``maxItems``), no unknown fields;
- a form body must match the operation's form schema (text, the same caps);
- query integers must be whole numbers within their bounds.

Path integers are bounded by the ``int`` URL converter (:class:`BoundedInt`): a larger id
matches no route (404). The schemas are compiled once per app. The push body is validated
by ``pushes.validate_body`` (its own schema, compiled to Python for speed), which the
document embeds as ``Push``.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from flask import Blueprint, Flask, jsonify, request
from sqlalchemy.exc import DataError
from werkzeug.exceptions import BadRequest
from werkzeug.routing import IntegerConverter, Map

from brokerage.core.errors import BadRequestError
from brokerage.platform import pushes
from brokerage.platform.db import get_session
from brokerage.platform.server.wsgi import SafeHeaders

DOCUMENT_PATH = Path(__file__).parent / "openapi.json"
MAX_ID = 2**31 - 1
"""the largest id (a PostgreSQL ``integer``)"""
MAX_PAGE = 1_000_000
"""the largest ``?page=`` (and ``?pagelen=``) any list takes"""
MAX_DEPTH = 64
"""how deep a JSON body may nest"""
SELF_VALIDATED = frozenset({"pushes_api.receive_push"})
"""operations whose JSON body the view validates itself (with the same schema)"""
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")
"""the only ways a NUL or a surrogate gets into parsed JSON: as a ``\\u`` escape"""

bp = Blueprint("contract", __name__, url_prefix="/1.0")


class BoundedInt(IntegerConverter):
    """Flask's ``int`` converter, at most :data:`MAX_ID` (a larger id is no route: 404)."""

    def __init__(self, map: Map, *args: Any, **kwargs: Any) -> None:  # noqa: A002
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)


def install(app: Flask) -> None:
    """Bounded ``int`` routes, the checks, JSON 400s for input no view should see, and safe
    response headers; call before registering blueprints."""
    app.url_map.converters["int"] = BoundedInt
    app.before_request(check_request)
    app.register_blueprint(bp)
    app.register_error_handler(RecursionError, _unreadable)
    app.register_error_handler(DataError, _unreadable)
    app.wsgi_app = SafeHeaders(app.wsgi_app)  # type: ignore[method-assign]


def _unreadable(exc: Exception) -> Any:
    """A value the database (or the parser) could not take: the request changes nothing."""
    get_session().rollback()
    message = "malformed request: a value the database cannot store"
    if isinstance(exc, RecursionError):
        message = "malformed request: nested too deeply"
    response = jsonify({"error": {"status": 400, "message": message}})
    response.status_code = 400
    return response


@bp.get("/openapi.json")
def openapi() -> Any:
    return jsonify(document())


@cache
def document() -> dict[str, Any]:
    """The served document: ``openapi.json`` with the push schema embedded as ``Push``."""
    doc: dict[str, Any] = json.loads(DOCUMENT_PATH.read_text())
    push = json.loads(pushes.SCHEMA_PATH.read_text())
    schemas = doc["components"]["schemas"]
    for name, definition in push.pop("$defs", {}).items():
        schemas["Push_" + name] = _rebased(definition)
    for key in ("$schema", "$id"):
        push.pop(key, None)
    schemas["Push"] = _rebased(push)
    return doc


def _rebased(schema: Any) -> Any:
    """``schema`` with ``#/$defs/x`` references pointing into the document's components."""
    if isinstance(schema, dict):
        return {
            k: ("#/components/schemas/Push_" + v.removeprefix("#/$defs/"))
            if k == "$ref" and isinstance(v, str) and v.startswith("#/$defs/")
            else _rebased(v)
            for k, v in schema.items()
        }
    if isinstance(schema, list):
        return [_rebased(v) for v in schema]
    return schema


class Operation:
    """What the contract says about one endpoint's request."""

    def __init__(self, spec: dict[str, Any], doc: dict[str, Any]) -> None:
        self.query_ints: dict[str, dict[str, Any]] = {}
        for param in spec.get("parameters", ()):
            if param["in"] == "query" and param["schema"].get("type") == "integer":
                self.query_ints[param["name"]] = param["schema"]
        content = spec.get("requestBody", {}).get("content", {})
        self.json = _compiled(content.get("application/json", {}).get("schema"), doc)
        self.form = _compiled(
            content.get("application/x-www-form-urlencoded", {}).get("schema"), doc
        )


def _compiled(schema: dict[str, Any] | None, doc: dict[str, Any]) -> Any:
    if schema is None:
        return None
    root = {**copy.deepcopy(schema), "components": doc["components"]}
    return jsonschema.Draft202012Validator(root)


@cache
def _operations() -> dict[str, Operation]:
    doc = document()
    found = {}
    for item in doc["paths"].values():
        for spec in item.values():
            found[spec["operationId"]] = Operation(spec, doc)
    return found


def _where(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) or "(body)"


def _refuse(error: jsonschema.ValidationError | None, what: str) -> None:
    if error is None:
        return
    if error.validator == "additionalProperties" and not error.absolute_path:
        schema: Any = error.schema
        instance: Any = error.instance
        extra = sorted(set(instance) - set(schema.get("properties", {})))
        names = _short(", ".join(n if n.isascii() and n.isprintable() else ascii(n) for n in extra))
        raise BadRequestError(f"malformed {what}: unknown field(s): {names}")
    raise BadRequestError(f"malformed {what}: {_where(error)}: {_short(error.message)}")


def _short(message: str, limit: int = 300) -> str:
    return message if len(message) <= limit else message[:limit] + "…"


# -- text hygiene ----------------------------------------------------------------


def bad_text(value: str) -> str | None:
    """Why ``value`` cannot be stored (a NUL character or a lone surrogate), or None."""
    if "\x00" in value:
        return "holds a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "holds a lone surrogate (not valid Unicode)"
    return None


def check_text(where: str, value: str) -> None:
    problem = bad_text(value)
    if problem is not None:
        raise BadRequestError(f"{where} {problem}")


def _check_json(value: Any) -> None:
    """NUL, lone surrogates and nesting deeper than MAX_DEPTH, anywhere in ``value``."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            check_text("a JSON string", item)
        elif isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise BadRequestError(f"malformed JSON: nested deeper than {MAX_DEPTH} levels")
            if isinstance(item, dict):
                for key, child in item.items():
                    check_text("a JSON field name", key)
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)


def _depth_over(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


def parsed_json() -> Any:
    """The request's JSON body (cached for the views), or BadRequestError (400)."""
    try:
        body = request.get_json(silent=False)
    except RecursionError:
        raise BadRequestError(f"malformed JSON: nested deeper than {MAX_DEPTH} levels") from None
    except BadRequest:
        raise BadRequestError("malformed JSON: the body does not parse") from None
    raw = request.get_data(cache=True)
    if _SUSPECT_ESCAPE.search(raw):
        _check_json(body)
    elif (raw.count(b"[") + raw.count(b"{") > MAX_DEPTH) and _depth_over(body, MAX_DEPTH):
        raise BadRequestError(f"malformed JSON: nested deeper than {MAX_DEPTH} levels")
    return body


# -- the check -------------------------------------------------------------------


def check_request() -> None:
    """Runs before every view (a ``before_request`` hook)."""
    _check_common()
    if request.path.startswith("/1.0/") and request.endpoint is not None:
        operation = _operations().get(request.endpoint)
        if operation is not None:
            _check_operation(operation)


def _check_common() -> None:
    check_text("the path", request.path)
    for key, value in request.args.items(multi=True):
        check_text(f"query parameter {key!r}", key)
        check_text(f"query parameter {key!r}", value)
    for name in ("page", "pagelen"):  # every list, pages and API alike
        given = request.args.get(name, "")
        if given and not (given.isascii() and given.isdigit() and len(given) <= 7):
            raise BadRequestError(f"{name}: a whole number from 1 to {MAX_PAGE}")
    auth = request.authorization
    if auth is not None:
        for part in ("username", "password", "token"):
            text = getattr(auth, part, None)
            if isinstance(text, str):
                check_text(f"the Authorization header's {part}", text)
    if request.mimetype == "application/x-www-form-urlencoded":
        # read (and keep) the raw body first: views may look at it after the form is parsed
        try:
            request.get_data(cache=True).decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequestError("malformed form data: the body is not UTF-8") from None
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        for key, value in request.form.items(multi=True):
            check_text(f"form field {_shown_name(key)}", key)
            check_text(f"form field {_shown_name(key)}", value)
    elif request.is_json and request.content_length:
        parsed_json()


def _shown_name(name: str) -> str:
    return ascii(name)


def _check_operation(operation: Operation) -> None:
    for name, schema in operation.query_ints.items():
        text = request.args.get(name)
        if text is None or text == "":
            continue
        if not text.isascii() or not text.strip().lstrip("-").isdigit() or len(text) > 20:
            raise BadRequestError(f"{name}: a whole number, got {text[:40]!r}")
        number = int(text)
        low, high = schema.get("minimum"), schema.get("maximum")
        if (low is not None and number < low) or (high is not None and number > high):
            raise BadRequestError(f"{name}: between {low} and {high}, got {number}")
    if request.endpoint in SELF_VALIDATED:
        return
    if request.is_json and request.content_length:
        if operation.json is not None:
            _refuse(_best(operation.json, parsed_json()), "JSON body")
    elif request.mimetype == "application/x-www-form-urlencoded" and operation.form is not None:
        _refuse(_best(operation.form, request.form.to_dict()), "form")


def _best(validator: Any, instance: Any) -> jsonschema.ValidationError | None:
    best: Callable[..., jsonschema.ValidationError | None] = jsonschema.exceptions.best_match
    return best(validator.iter_errors(instance))
