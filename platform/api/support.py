"""Small helpers shared by the API views."""

from __future__ import annotations

from flask import current_app, request
from werkzeug.datastructures import MultiDict

from brokerage.core.errors import BadRequestError
from brokerage.platform.encryption import FieldCipher

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def cipher() -> FieldCipher:
    found: FieldCipher = current_app.extensions["brokerage.cipher"]
    return found


def form_params() -> MultiDict[str, str]:
    """The request's form parameters. Raises BadRequestError (400) for a body that is not a
    form (e.g. JSON) or does not decode."""
    if request.content_length and request.mimetype not in FORM_TYPES:
        got = request.mimetype or "no content type"
        raise BadRequestError(
            f"malformed form data: expected application/x-www-form-urlencoded, got {got}"
        )
    raw = request.get_data(cache=True)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequestError("malformed form data: the body is not UTF-8") from exc
    return request.form.copy()


def json_or_form() -> dict[str, str]:
    """A flat parameter mapping from a JSON object body or a form body."""
    if request.is_json:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise BadRequestError("malformed JSON: expected an object")
        return {str(k): v for k, v in body.items()}
    return form_params().to_dict()


def flag(params: dict[str, object], name: str, default: bool) -> bool:
    """A boolean parameter given as JSON true/false or form text."""
    value = params.get(name, default)
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off", ""):
        return False
    raise BadRequestError(f"{name}: expected true or false, got {value!r}")
