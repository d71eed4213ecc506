"""The static checks of a package: what can be judged from its files without running them.

Each check returns a :class:`CheckResult` of findings; an ``error`` finding fails the
check, a ``warning`` is shown to the reviewer only. The checks, in report order:

``schema``
    the manifest against the published schema and the rules beside it, and the
    entry point present (and its class defined) among the package's files;
``size``
    file count and bytes against the caps (a package over them never gets this far:
    :mod:`~brokerage.submissions.package` refuses it), and fixtures present;
``restricted_python``
    every code file decoded and compiled with the very functions the sandbox runner
    uses (``policy.decode_source``, ``policy.compile_broker``), each refusal with its
    line number and the line; source the compiler cannot take (too large, nested too
    deeply, null bytes, not UTF-8) is a refusal naming the reason, never a traceback;
``imports``
    every ``import`` judged by the runner's own ``Policy.import_problems`` (the
    allowlist, the catalogue's refused helper modules, the names each module offers;
    the package's own modules allowed): the runner refuses the same imports at load;
``secrets``
    credentials written into the code (keys, tokens, passwords in literals, URLs
    with a password): a broker's secrets belong in password fields;
``fields``
    service fields the code reads (``self.get_local("X")``, ``payload["service"]["X"]``,
    ``payload["service"].get("X")``) that the manifest does not declare.

The runtime policy is imported, not copied, so verification and the sandbox agree.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import PurePosixPath
from typing import Any

from brokerage.sandbox.runner.policy import (
    DEFAULT_IMPORTS,
    Policy,
    compile_broker,
    decode_source,
    parse_source,
    sys_stand_in,
)
from brokerage.submissions import package as packages
from brokerage.submissions.errors import ManifestError
from brokerage.submissions.manifest import manifest_problems
from brokerage.submissions.package import Package

ERROR = "error"
WARNING = "warning"
TEXT_SUFFIXES = (".py", ".json", ".md", ".txt", ".cfg", ".ini", ".toml", ".yaml", ".yml")
"""files the secret scan reads (fixtures and tests aside: they hold made-up values)"""

SECRET_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("a private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
    ("an AWS access key id", re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("a GitHub token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b")),
    ("a Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("a Slack webhook URL", re.compile(r"hooks\.slack\.com/services/T[A-Za-z0-9]+/")),
    ("a Brokerage API token", re.compile(r"\bbrk_[A-Za-z0-9_-]{20,}")),
    (
        "a URL with a password",
        re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@'\"]+:(?!password@|secret@|\$\{)[^/\s@'\"]{6,}@"),
    ),
    (
        "a credential in a literal",
        re.compile(
            r"""(?i)\b[a-z_]*(password|passwd|secret|api_?key|access_?key|auth_?token|token)"""
            r"""['"]?\s*[:=]\s*['"][^'"\s${}]{8,}['"]"""
        ),
    ),
)
"""what a committed credential looks like; each match is an error naming its line"""


@dataclass
class Finding:
    severity: str
    message: str
    file: str | None = None
    line: int | None = None
    source: str | None = None
    """the offending line as written"""


@dataclass
class CheckResult:
    name: str
    findings: list[Finding] = field(default_factory=list)
    summary: str = ""
    skipped: bool = False
    """not run (the dynamic check, when the static ones failed)"""

    @property
    def passed(self) -> bool:
        return not any(f.severity == ERROR for f in self.findings)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "skipped": self.skipped,
            "summary": self.summary,
            "findings": [asdict(f) for f in self.findings],
        }


def static_checks(
    pkg: Package, allowed_imports: Iterable[str] = DEFAULT_IMPORTS, code_expected: bool = True
) -> list[CheckResult]:
    """Every static check of ``pkg``, in report order."""
    allowed = tuple(allowed_imports)
    return [
        check_schema(pkg, code_expected),
        check_size(pkg),
        check_restricted_python(pkg),
        check_imports(pkg, allowed),
        check_secrets(pkg),
        check_fields(pkg),
    ]


def gate_checks(pkg: Package) -> list[CheckResult]:
    """The checks an upload must pass before anything is stored (cheap and certain)."""
    return [check_schema(pkg), check_restricted_python(pkg)]


# --- schema and size -----------------------------------------------------------------


def check_schema(pkg: Package, code_expected: bool = True) -> CheckResult:
    """``code_expected=False`` (a built-in whose code has not landed yet) makes a missing
    entry point a warning, as :mod:`brokerage.builtin_brokers` treats it."""
    result = CheckResult("schema")
    for problem in manifest_problems(pkg.manifest):
        result.findings.append(Finding(ERROR, str(problem), file="manifest.json"))
    if isinstance(pkg.manifest, dict) and not result.findings:
        severity = ERROR if code_expected else WARNING
        for message in _entry_point_problems(pkg, str(pkg.manifest["entry_point"])):
            result.findings.append(
                Finding(severity, f"entry_point: {message}", file="manifest.json")
            )
    result.summary = "manifest valid" if result.passed else f"{len(result.findings)} problem(s)"
    return result


def _entry_point_problems(pkg: Package, entry_point: str) -> list[str]:
    file_name, _, class_name = entry_point.partition(":")
    source = pkg.files.get(file_name)
    if source is None:
        return [f"{file_name!r} is not in the package"]
    if not class_name:
        return []
    tree = _parse(source, file_name)
    if tree is None:
        return []  # restricted_python reports the syntax error with its line
    if not any(isinstance(n, ast.ClassDef) and n.name == class_name for n in tree.body):
        return [f"{file_name!r} defines no top-level class {class_name!r}"]
    return []


def check_size(pkg: Package) -> CheckResult:
    result = CheckResult("size")
    result.summary = (
        f"{len(pkg.files)} files, {pkg.size} bytes (caps: {packages.MAX_FILES} files, "
        f"{packages.MAX_FILE_BYTES} bytes per file, {packages.MAX_PACKAGE_BYTES} in all)"
    )
    if not pkg.fixtures():
        result.findings.append(
            Finding(
                ERROR,
                "no fixtures: add fixtures/push__<variant>.json so the package can be run "
                "in the sandbox during verification",
            )
        )
    return result


# --- code ----------------------------------------------------------------------------

_LINE = re.compile(r"^Line (\d+): (.*)$", re.DOTALL)


def check_restricted_python(pkg: Package) -> CheckResult:
    result = CheckResult("restricted_python")
    for path, data in sorted(pkg.code_files().items()):
        text = _text(path, data, result)
        if text is None:
            continue
        try:
            compile_broker(text, path)
        except SyntaxError as exc:
            result.findings += _refusals(path, text, exc)
    count = len(pkg.code_files())
    result.summary = f"{count} code file(s) compiled" if result.passed else "code refused"
    return result


def _text(path: str, data: bytes, result: CheckResult) -> str | None:
    try:
        return decode_source(data, path)
    except SyntaxError as exc:
        result.findings.append(Finding(ERROR, str(exc), file=path, line=exc.lineno))
        return None


def _refusals(path: str, text: str, exc: SyntaxError) -> list[Finding]:
    lines = text.splitlines()
    messages = exc.args[0] if exc.args and isinstance(exc.args[0], tuple | list) else [str(exc)]
    findings = []
    for message in messages:
        match = _LINE.match(str(message))
        number = int(match[1]) if match else exc.lineno
        why = match[2] if match else str(message)
        source = lines[number - 1].strip() if number and 0 < number <= len(lines) else None
        findings.append(Finding(ERROR, why, file=path, line=number, source=source))
    return findings


def _parse(data: bytes, path: str = "<source>") -> ast.Module | None:
    """The tree, or None for anything ``restricted_python`` refuses (it says why)."""
    try:
        return parse_source(decode_source(data, path), path)
    except (SyntaxError, RecursionError, MemoryError, ValueError):
        return None


def _trees(pkg: Package) -> Iterator[tuple[str, list[str], ast.Module]]:
    for path, data in sorted(pkg.code_files().items()):
        tree = _parse(data, path)
        if tree is not None:
            yield path, data.decode("utf-8", "replace").splitlines(), tree


def _line(lines: list[str], number: int) -> str | None:
    return lines[number - 1].strip() if 0 < number <= len(lines) else None


def check_imports(pkg: Package, allowed: tuple[str, ...]) -> CheckResult:
    result = CheckResult("imports")
    local = dict.fromkeys(_module_name(path) for path in pkg.code_files())
    judge = Policy(allowed, local, {"sys": sys_stand_in()})
    for path, lines, tree in _trees(pkg):
        for line, why in judge.import_problems(tree):
            if why.endswith("is not allowed"):
                why += f" (allowed: {', '.join(allowed)})"
            result.findings.append(Finding(ERROR, why, path, line, _line(lines, line)))
    result.summary = "every import allowed" if result.passed else "imports refused"
    return result


def _module_name(path: str) -> str:
    return PurePosixPath(path).with_suffix("").as_posix().replace("/", ".")


def check_secrets(pkg: Package) -> CheckResult:
    result = CheckResult("secrets")
    for path, data in sorted(pkg.runtime_files().items()):
        if not path.endswith(TEXT_SUFFIXES) or path == "manifest.json":
            continue
        for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
            for what, pattern in SECRET_PATTERNS:
                if pattern.search(line):
                    why = f"looks like {what}; keep secrets in a password field, not in the code"
                    result.findings.append(Finding(ERROR, why, path, number, _redact(line)))
                    break
    result.summary = "no credentials found" if result.passed else "credentials in the code"
    return result


def _redact(line: str) -> str:
    """The line with long literal runs cut, so the report does not republish the secret."""
    return re.sub(r"([A-Za-z0-9+/_-]{4})[A-Za-z0-9+/_-]{8,}", r"\1…", line.strip())


def check_fields(pkg: Package) -> CheckResult:
    result = CheckResult("fields")
    manifest = pkg.manifest if isinstance(pkg.manifest, dict) else {}
    declared = [str(f.get("label")) for f in manifest.get("fields") or [] if isinstance(f, dict)]
    for path, lines, tree in _trees(pkg):
        for node, label, exact in _field_reads(tree):
            known = label in declared if exact else label.lower() in map(str.lower, declared)
            if not known:
                why = (
                    f"reads service field {label!r}, which the manifest does not declare "
                    f"(declared: {', '.join(declared) or 'none'})"
                )
                result.findings.append(
                    Finding(ERROR, why, path, node.lineno, _line(lines, node.lineno))
                )
    result.summary = "every field read is declared" if result.passed else "undeclared fields read"
    return result


def _field_reads(tree: ast.Module) -> Iterator[tuple[ast.expr, str, bool]]:
    """(node, label, exact) for each literal field read; ``get_local`` ignores case."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and _constant(node.args[0]) is not None:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name == "get_local":
                yield node, str(_constant(node.args[0])), False
            elif name == "get" and isinstance(func, ast.Attribute) and _is_service(func.value):
                yield node, str(_constant(node.args[0])), True
        elif isinstance(node, ast.Subscript) and _is_service(node.value):
            label = _constant(node.slice)
            if label is not None:
                yield node, label, True


def _is_service(node: ast.expr) -> bool:
    """``<anything>["service"]``: the envelope's field values."""
    return isinstance(node, ast.Subscript) and _constant(node.slice) == "service"


def _constant(node: ast.expr) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def gate_error(results: list[CheckResult]) -> list[str]:
    """The findings of failed gate checks as ``file:line: message`` lines."""
    lines = []
    for result in results:
        for f in result.findings:
            where = f"{f.file}:{f.line}" if f.line else (f.file or result.name)
            shown = f"  |  {f.source}" if f.source else ""
            lines.append(f"{result.name}: {where}: {f.message}{shown}")
    return lines


def package_manifest(pkg: Package) -> Mapping[str, Any]:
    """The package's manifest, validated (ManifestError otherwise)."""
    problems = manifest_problems(pkg.manifest)
    if problems:
        raise ManifestError(problems)
    return dict(pkg.manifest)
