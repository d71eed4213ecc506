"""Discovery of the built-in brokers (``builtin_brokers/``): one folder per broker type,
each with its ``manifest.json``. The folders are read as data.

The platform seeds its catalogue from :func:`builtin_manifests`; built-in
brokers then go through the same verification and approval as vendor ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import brokerage.builtin_brokers
from brokerage.submissions.errors import ManifestError, ManifestProblem
from brokerage.submissions.manifest import MANIFEST_FILE, read_manifest, validate_manifest

BUILTIN_DIR = Path(brokerage.builtin_brokers.__file__).parent
"""the folder holding one folder per built-in broker"""


def builtin_dirs() -> list[Path]:
    """Every built-in broker's package folder, sorted by name."""
    return sorted(path.parent for path in BUILTIN_DIR.glob(f"*/{MANIFEST_FILE}"))


def builtin_manifests() -> list[dict[str, Any]]:
    """Every built-in broker's validated manifest, sorted by name.

    Raises ManifestError when one is invalid, or when a manifest's name is not its
    folder's name, or two titles collide (the services API matches titles
    case-insensitively).
    """
    manifests = [_load(path) for path in builtin_dirs()]
    _check_unique_titles(manifests)
    return manifests


def _load(package_dir: Path) -> dict[str, Any]:
    try:
        manifest = validate_manifest(read_manifest(package_dir), package_dir)
    except ManifestError as exc:
        raise ManifestError([_located(package_dir, p) for p in exc.problems]) from exc
    if manifest["name"] != package_dir.name:
        why = f"{manifest['name']!r} differs from its folder's name {package_dir.name!r}"
        raise ManifestError([_located(package_dir, ManifestProblem("name", why))])
    return manifest


def _located(package_dir: Path, problem: ManifestProblem) -> ManifestProblem:
    return ManifestProblem(f"{package_dir.name}/{MANIFEST_FILE}: {problem.path}", problem.message)


def _check_unique_titles(manifests: list[dict[str, Any]]) -> None:
    seen: dict[str, str] = {}
    for manifest in manifests:
        key = manifest["title"].lower()
        if key in seen:
            why = f"{manifest['title']!r} is also the title of {seen[key]!r}"
            problem = ManifestProblem(f"{manifest['name']}/{MANIFEST_FILE}: title", why)
            raise ManifestError([problem])
        seen[key] = manifest["name"]
