"""Load and validate a broker package's ``manifest.json``.

Validation has two layers, and every problem of both is reported at once in
one :class:`~brokerage.submissions.errors.ManifestError`:

1. the published JSON Schema (``manifest.schema.json`` next to this module,
   draft 2020-12; :func:`manifest_schema` returns it for the API to serve);
2. the rules a schema states badly: field labels unique case-insensitively and
   not ``type`` (the services API's own parameter); ``choices`` exactly when
   the type is ``choice``; ``multiple`` only on email fields; defaults that fit
   their field (checked with :func:`~brokerage.submissions.fields.coerce_field`);
   no default on a password field (a secret does not belong in a public
   manifest); bracketed ``egress`` entries are IPv6 addresses; and, for a
   package folder, the entry point file present (and its class defined, when it
   names one).

Each problem names its path the way a reader would write it
(``fields[2].type: 'number' is not one of [...]``).
"""

from __future__ import annotations

import ast
import copy
import ipaddress
import json
import os
import re
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from brokerage.submissions.errors import FieldError, ManifestError, ManifestProblem
from brokerage.submissions.fields import coerce_field

MANIFEST_FILE = "manifest.json"
SCHEMA_FILE = Path(__file__).with_name("manifest.schema.json")
RESERVED_LABELS = frozenset({"type", "branches"})
"""Lower-cased labels no field may take: the services API uses ``type=`` itself, and
``Branches`` is the platform-level branch filter every service has."""

ROOT = "manifest"
"""The path shown for a problem with the manifest as a whole."""


@cache
def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return schema


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(_schema())


def _field_types() -> list[str]:
    types: list[str] = _schema()["$defs"]["field"]["properties"]["type"]["enum"]
    return types


def manifest_schema() -> dict[str, Any]:
    """The published JSON Schema, as a fresh dict."""
    return copy.deepcopy(_schema())


def validate_manifest(
    manifest: Any, package_dir: str | os.PathLike[str] | None = None
) -> dict[str, Any]:
    """The manifest with optional keys filled in, or ManifestError listing every problem.

    With ``package_dir``, also checks that the entry point exists in that folder.
    """
    problems = manifest_problems(manifest, package_dir)
    if problems:
        raise ManifestError(problems)
    return _normalized(manifest)


def load_manifest(location: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate ``manifest.json`` of a package folder (or that file itself)."""
    path = Path(location)
    package_dir = path if path.is_dir() else path.parent
    return validate_manifest(read_manifest(path), package_dir)


def read_manifest(location: str | os.PathLike[str]) -> Any:
    """The parsed, not yet validated, ``manifest.json`` of a package folder (or that file)."""
    path = Path(location)
    return _read_json(path / MANIFEST_FILE if path.is_dir() else path)


def manifest_problems(
    manifest: Any, package_dir: str | os.PathLike[str] | None = None
) -> list[ManifestProblem]:
    """Every problem with the manifest, schema problems first; empty when it is valid."""
    problems = sorted(_schema_problems(manifest), key=lambda p: (p.path, p.message))
    if isinstance(manifest, dict):
        problems += _field_problems(manifest.get("fields"))
        problems += _egress_problems(manifest.get("egress"))
        if package_dir is not None:
            problems += _entry_point_problems(manifest.get("entry_point"), Path(package_dir))
    return problems


def _read_json(manifest_path: Path) -> Any:
    try:
        data = manifest_path.read_bytes()
    except FileNotFoundError:
        raise ManifestError([ManifestProblem(MANIFEST_FILE, "file not found")]) from None
    except OSError as exc:
        raise ManifestError([ManifestProblem(MANIFEST_FILE, f"cannot be read: {exc}")]) from exc
    return parse_manifest(data)


def parse_manifest(data: bytes) -> Any:
    """The parsed, not yet validated, JSON of a ``manifest.json``'s bytes."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError([ManifestProblem(MANIFEST_FILE, f"cannot be read: {exc}")]) from exc
    try:
        return json.loads(text, object_pairs_hook=_reject_duplicate_keys)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        problem = ManifestProblem(MANIFEST_FILE, f"is not valid JSON: {exc.msg} ({where})")
        raise ManifestError([problem]) from exc
    except _DuplicateKeyError as exc:
        raise ManifestError([ManifestProblem(MANIFEST_FILE, str(exc))]) from None


class _DuplicateKeyError(ValueError):
    pass


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json keeps the last of two equal keys silently; a reviewer reading the
    # first would approve something other than what runs.
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKeyError(f"key {key!r} appears twice in one object")
        seen[key] = value
    return seen


def _normalized(manifest: dict[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(manifest)
    result.setdefault("permissions", [])
    for field in result["fields"]:
        field.setdefault("required", False)
        field.setdefault("default", None)
        field.setdefault("help", "")
    return result


# --- layer 1: the schema ---------------------------------------------------


def _schema_problems(manifest: Any) -> Iterator[ManifestProblem]:
    for error in _validator().iter_errors(manifest):
        yield from _explain(error)


def _explain(error: ValidationError) -> Iterator[ManifestProblem]:
    path = _path_text(error.absolute_path)
    instance: Any = error.instance
    schema: Any = error.schema
    if error.validator == "required":
        for name in schema["required"]:
            if name not in instance and repr(name) in error.message:
                yield ManifestProblem(_join(path, name), "is required")
    elif error.validator == "additionalProperties":
        allowed = ", ".join(schema.get("properties", {}))
        for name in sorted(set(instance) - set(schema.get("properties", {}))):
            yield ManifestProblem(_join(path, name), f"is not allowed here (allowed: {allowed})")
    elif error.validator == "pattern" and "x-expected" in schema:
        yield ManifestProblem(path, f"{instance!r} is not {schema['x-expected']}")
    else:
        yield ManifestProblem(path, error.message)


def _path_text(parts: Any) -> str:
    text = ""
    for part in parts:
        text = f"{text}[{part}]" if isinstance(part, int) else _join(text, str(part))
    return text or ROOT


def _join(path: str, name: str) -> str:
    return name if path in ("", ROOT) else f"{path}.{name}"


# --- layer 2: rules beside the schema -----------------------------------------


def _field_problems(fields: Any) -> list[ManifestProblem]:
    if not isinstance(fields, list):
        return []
    problems: list[ManifestProblem] = []
    first_seen: dict[str, int] = {}
    for index, field in enumerate(fields):
        if not isinstance(field, dict):
            continue
        where = f"fields[{index}]"
        problems += _label_problems(where, field.get("label"), index, first_seen, fields)
        problems += _type_rule_problems(where, field)
        problems += _default_problems(where, field)
    return problems


def _label_problems(
    where: str, label: Any, index: int, first_seen: dict[str, int], fields: list[Any]
) -> list[ManifestProblem]:
    if not isinstance(label, str):
        return []
    key = label.lower()
    if key in RESERVED_LABELS:
        why = f"{label!r} is reserved (the services API's own parameter)"
        return [ManifestProblem(f"{where}.label", why)]
    if key in first_seen:
        other = first_seen[key]
        why = f"{label!r} repeats fields[{other}].label {fields[other]['label']!r}"
        return [ManifestProblem(f"{where}.label", f"{why} (labels ignore case)")]
    first_seen[key] = index
    return []


def _type_rule_problems(where: str, field: dict[str, Any]) -> list[ManifestProblem]:
    kind = field.get("type")
    problems = []
    if kind == "choice" and "choices" not in field:
        problems.append(ManifestProblem(f"{where}.choices", "is required when type is 'choice'"))
    for key, only_for in (("choices", "choice"), ("multiple", "email")):
        if kind != only_for and key in field:
            why = f"is only allowed when type is {only_for!r}, not {kind!r}"
            problems.append(ManifestProblem(f"{where}.{key}", why))
    return problems


def _default_problems(where: str, field: dict[str, Any]) -> list[ManifestProblem]:
    default, kind = field.get("default"), field.get("type")
    well_formed = isinstance(field.get("label"), str) and isinstance(field.get("choices", []), list)
    if not isinstance(default, str | bool) or kind not in _field_types() or not well_formed:
        return []  # no default, or the schema layer has reported what is wrong
    path = f"{where}.default"
    if kind == "password":
        return [ManifestProblem(path, "not allowed on a password field (the manifest is public)")]
    if kind == "boolean" or isinstance(default, bool):
        if isinstance(default, bool) == (kind == "boolean"):
            return []
        need = "a boolean (true or false)" if kind == "boolean" else f"a string, as {kind!r} needs"
        return [ManifestProblem(path, f"{default!r} is not {need}")]
    try:
        coerce_field(field, default)
    except FieldError as exc:
        return [ManifestProblem(path, exc.problem)]
    return []


def _egress_problems(egress: Any) -> list[ManifestProblem]:
    problems = []
    for index, entry in enumerate(egress if isinstance(egress, list) else []):
        if isinstance(entry, str) and entry.startswith("[") and entry.endswith("]"):
            try:
                ipaddress.IPv6Address(entry[1:-1])
            except ValueError:
                problems.append(
                    ManifestProblem(f"egress[{index}]", f"{entry!r} is no IPv6 address")
                )
    return problems


def _entry_point_problems(entry_point: Any, package_dir: Path) -> list[ManifestProblem]:
    pattern = _schema()["properties"]["entry_point"]["pattern"]
    if not isinstance(entry_point, str) or not re.search(pattern, entry_point):
        return []  # the schema layer has reported it
    file_name, _, class_name = entry_point.partition(":")
    path = package_dir / file_name
    if path.is_symlink():
        why = f"{file_name!r} is a symbolic link; it must be a regular file"
        return [ManifestProblem("entry_point", why)]
    if not path.is_file():
        return [ManifestProblem("entry_point", f"{file_name!r} is not in the package")]
    if class_name and not _defines_class(path, class_name):
        why = f"{file_name!r} defines no top-level class {class_name!r}"
        return [ManifestProblem("entry_point", why)]
    return []


def _defines_class(path: Path, class_name: str) -> bool:
    try:
        tree = ast.parse(path.read_bytes(), filename=path.name)
    except (SyntaxError, ValueError):
        # Unparseable code is the static checks' finding, reported there with its lines.
        return True
    return any(isinstance(node, ast.ClassDef) and node.name == class_name for node in tree.body)


def implied(permission: str, held: Iterable[str]) -> bool:
    """``x:read`` is implied by ``x:write``."""
    area, _, level = permission.partition(":")
    return level == "read" and f"{area}:write" in held
