"""Broker versions as the sandbox runs them: a :class:`BrokerBundle` of files.

Built-in brokers come from their folder under ``builtin_brokers/``; vendor brokers from
their package archive in the artifact store (``DATA_DIR/artifacts``). What a bundle holds
is everything but tests, fixtures and caches (brokers read no fixtures at run time).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from brokerage.sandbox.interface import BrokerBundle
from brokerage.submissions.artifacts import ArtifactStore, store_from_config
from brokerage.submissions.builtins import BUILTIN_DIR
from brokerage.submissions.errors import BundleMissingError, SubmissionError
from brokerage.submissions.models import BrokerVersion
from brokerage.submissions.package import read_archive

LEFT_OUT = ("tests", "fixtures", "__pycache__")


def folder_files(folder: Path) -> dict[str, bytes]:
    """Every file of a broker folder by relative path, less tests, fixtures and caches."""
    files: dict[str, bytes] = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_file() and not set(relative.parts) & set(LEFT_OUT) and path.suffix != ".pyc":
            files[relative.as_posix()] = path.read_bytes()
    return files


@cache
def _builtin(name: str, version: str) -> BrokerBundle:
    folder = BUILTIN_DIR / name
    if not (folder / "manifest.json").is_file():
        raise BundleMissingError(f"built-in broker {name!r} has no folder")
    manifest = json.loads((folder / "manifest.json").read_text())
    return BrokerBundle(name=name, version=version, manifest=manifest, files=folder_files(folder))


def load(version: BrokerVersion, store: ArtifactStore | None = None) -> BrokerBundle:
    """The files of ``version``. A vendor version needs the artifact store: ``store``, or the
    one of the current Flask app (or of the configuration given to :func:`use_store`)."""
    broker_type = version.broker_type
    if broker_type.builtin:
        return _builtin(broker_type.name, version.version)
    if not version.artifact_digest:
        raise BundleMissingError(f"broker {broker_type.name} {version.version}: no stored package")
    return _vendor(version.artifact_digest, broker_type.name, version.version,
                   json.dumps(version.manifest), store or _default_store())  # fmt: skip


_stores: dict[str, ArtifactStore] = {}


def use_store(store: ArtifactStore | None) -> None:
    """Set (or with None, forget) the store :func:`load` uses outside a Flask app."""
    _stores.pop("default", None)
    if store is not None:
        _stores["default"] = store


def _default_store() -> ArtifactStore:
    if "default" in _stores:
        return _stores["default"]
    from flask import current_app, has_app_context

    if has_app_context():
        return store_from_config(dict(current_app.config))
    from brokerage.core.config import load_config

    return store_from_config(load_config())


def _vendor(
    digest: str, name: str, version: str, manifest_json: str, store: ArtifactStore
) -> BrokerBundle:
    key = (digest, manifest_json)
    if key not in _vendor_cache:
        try:
            package = read_archive(store.get(digest))
        except SubmissionError as exc:
            raise BundleMissingError(f"broker {name} {version}: {exc}") from exc
        manifest = json.loads(manifest_json)
        _vendor_cache[key] = BrokerBundle(name=name, version=version, manifest=manifest,
                                          files=package.runtime_files())  # fmt: skip
    return _vendor_cache[key]


_vendor_cache: dict[tuple[str, str], BrokerBundle] = {}
"""bundles by artifact digest: an artifact never changes, so neither does its bundle"""
