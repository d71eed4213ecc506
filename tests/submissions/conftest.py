"""Fixtures for submissions: an app with a real Redis (verification jobs are queued), broker
packages written to folders and archives (good and hostile), vendor and reviewer accounts,
sandbox backends (the fake for speed, Docker for the real thing) and a live HTTP server
for the command lines."""

from __future__ import annotations

import copy
import io
import json
import tarfile
import threading
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from rq import SimpleWorker
from rq.serializers import JSONSerializer

from brokerage.platform.deliveries import verification_jobs as tasks
from brokerage.platform.runtime import Runtime
from brokerage.sandbox.fake import FakeBackend
from brokerage.sandbox.interface import (
    BrokerBundle,
    EgressProvider,
    Limits,
    RunResult,
    RunStatus,
    SandboxBackend,
)
from brokerage.submissions.artifacts import store_from_config
from brokerage.submissions.package import pack
from tests.support import RedisServer, Seeder, basic, build_app, snapshot

BROKER_PY = """import requests
from brokerage_sdk import BaseBroker, forward_payload


class HookBroker(BaseBroker):
    def handle(self, payload):
        response = requests.post(self.get_local("URL"), json=forward_payload(payload), timeout=10)
        return {"message": "sent %d" % len(payload["commits"]), "status": response.status_code}
"""

MANIFEST: dict[str, Any] = {
    "name": "acme-hook",
    "version": "1.0.0",
    "title": "Acme Hook",
    "description": "POSTs pushes to Acme.",
    "vendor": {"name": "Acme", "email": "support@acme.example"},
    "events": ["push"],
    "fields": [{"label": "URL", "type": "url", "required": True}],
    "egress": ["hooks.acme.test"],
    "entry_point": "broker.py:HookBroker",
}

FIXTURE: dict[str, Any] = {
    "canon_url": "https://bitbucket.org",
    "commits": [
        {
            "author": "marcus",
            "branch": "master",
            "files": [],
            "message": "one\n",
            "node": "620ade18607a",
            "parents": [],
            "raw_author": "Marcus <m@x.org>",
            "raw_node": "620ade18607ac42d872b568bb92acaa9a28620e9",
            "revision": None,
            "size": -1,
            "timestamp": "2012-05-30 05:58:56",
            "utctimestamp": "2012-05-30 03:58:56+00:00",
        }
    ],
    "repository": {
        "absolute_url": "/marcus/project-x/",
        "fork": False,
        "is_private": True,
        "name": "project-x",
        "owner": "marcus",
        "scm": "git",
        "slug": "project-x",
        "website": "",
    },
    "user": "marcus",
    "service": {"URL": "${receiver}/hook"},
}


def package_files(
    manifest: Mapping[str, Any] | None = None,
    code: str = BROKER_PY,
    extra: Mapping[str, bytes] | None = None,
    **changes: Any,
) -> dict[str, bytes]:
    """A good package's files, with manifest keys changed by ``changes``."""
    body = copy.deepcopy(dict(manifest or MANIFEST))
    body.update(changes)
    files = {
        "manifest.json": json.dumps(body, indent=2).encode(),
        "broker.py": code.encode(),
        "fixtures/push__one_commit.json": json.dumps(FIXTURE).encode(),
        "README.md": b"# Acme Hook\n",
    }
    files.update(extra or {})
    return files


def write_folder(root: Path, files: Mapping[str, bytes]) -> Path:
    for path, data in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return root


def archive(files: Mapping[str, bytes], **kwargs: Any) -> bytes:
    return pack(files or package_files(**kwargs))


def tar_with(
    entries: list[tarfile.TarInfo | tuple[str, bytes]], base: Mapping[str, bytes] | None = None
) -> bytes:
    """A .tar.gz of a good package plus raw entries (links, traversal...)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for path, data in (base if base is not None else package_files()).items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tar.addfile(entry)
            else:
                info = tarfile.TarInfo(entry[0])
                info.size = len(entry[1])
                tar.addfile(info, io.BytesIO(entry[1]))
    return raw.getvalue()


def zip_with(files: Mapping[str, bytes], symlinks: Mapping[str, str] = {}) -> bytes:  # noqa: B006
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w") as archive_file:
        for path, data in files.items():
            archive_file.writestr(path, data)
        for path, target in symlinks.items():
            info = zipfile.ZipInfo(path)
            info.external_attr = 0o120777 << 16
            archive_file.writestr(info, target)
    return raw.getvalue()


# --- the app and its people ----------------------------------------------------------


@pytest.fixture
def app(tmp_path: Path, database: str, redis_server: RedisServer) -> Iterator[Flask]:
    app = build_app(tmp_path, database, REDIS_URL=redis_server.url)
    yield app
    app.extensions["brokerage.runtime"].close()


@dataclass
class People:
    vendor: dict[str, str]
    other_vendor: dict[str, str]
    reviewer: dict[str, str]
    vendor_reviewer: dict[str, str]
    admin: dict[str, str]


@pytest.fixture
def people(seed: Seeder) -> People:
    from brokerage.core.accounts import Role

    seed.user("acme", Role.VENDOR)
    seed.user("globex", Role.VENDOR)
    seed.user("rita", Role.REVIEWER)
    seed.user("vic", Role.VENDOR, Role.REVIEWER)
    seed.user("marcus")
    seed.repo("marcus", "project-x")
    return People(basic("acme"), basic("globex"), basic("rita"), basic("vic"), basic("marcus"))


def upload(client: FlaskClient, auth: Mapping[str, str], data: bytes, draft: bool = False) -> Any:
    query = "?draft=true" if draft else ""
    return client.post(
        f"/1.0/submissions{query}", data=data, headers={**auth, "Content-Type": "application/gzip"}
    )


# --- sandboxes --------------------------------------------------------------------------


def posting_handler(bundle: BrokerBundle, envelope: Mapping[str, Any], limits: Limits) -> RunResult:
    """What the scaffolded broker does, answered without running it: one POST to its URL."""
    url = envelope["service"].get("URL", "")
    entry = {"method": "POST", "url": url, "status": 200, "refused": None}
    return RunResult(
        RunStatus.SUCCEEDED,
        exit_code=0,
        result={"message": "sent"},
        requests=[entry],
        backend="fake",
    )


def fake_factory(
    handler: Callable[..., RunResult] = posting_handler,
) -> Callable[[EgressProvider], SandboxBackend]:
    return lambda _egress: FakeBackend(handler=handler)


_IMAGE: dict[str, str] = {}


def docker_image() -> str:
    """The runtime image's tag, built (offline, cached by recipe) on first use."""
    from brokerage.sandbox import image
    from brokerage.sandbox.docker_backend import docker_client
    from brokerage.sandbox.errors import BackendUnavailableError

    if "tag" not in _IMAGE:
        try:
            client = docker_client()
        except BackendUnavailableError as exc:
            pytest.skip(f"no Docker daemon: {exc}")  # CI starts one
        _IMAGE["tag"] = image.build_docker_image(client)
    return _IMAGE["tag"]


def docker_config() -> dict[str, str]:
    return {"SANDBOX_BACKEND": "docker", "SANDBOX_IMAGE": docker_image()}


def docker_factory() -> Callable[[EgressProvider], SandboxBackend]:
    return tasks.backend_factory(docker_config())


@pytest.fixture
def verify_with(runtime: Runtime) -> Iterator[Callable[..., None]]:
    """``verify_with(factory)``: work the queue (burst) with verification installed."""

    def work(factory: Callable[[EgressProvider], SandboxBackend] | None = None) -> None:
        store = store_from_config(runtime.config)
        tasks.install(tasks.Context(runtime, store, factory or fake_factory()))
        worker = SimpleWorker([runtime.queue], connection=runtime.redis, serializer=JSONSerializer)
        worker.work(burst=True, logging_level="WARNING")

    yield work
    tasks.install(None)


# --- looking at what is stored -----------------------------------------------------------


def artifacts(app: Flask) -> list[str]:
    root = Path(app.config["DATA_DIR"]) / "artifacts"
    return sorted(p.name for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture
def unchanged(app: Flask) -> Callable[[], Any]:
    """``with unchanged():`` asserts no row and no artifact was added inside the block."""
    from contextlib import contextmanager

    @contextmanager
    def check() -> Iterator[None]:
        before, stored = snapshot(app), artifacts(app)
        yield
        assert snapshot(app) == before
        assert artifacts(app) == stored

    return check


# --- a live server for the command lines ----------------------------------------------------


@dataclass
class LiveServer:
    url: str

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(self.url + path, timeout=30, **kwargs)


@pytest.fixture
def live_server(app: Flask) -> Iterator[LiveServer]:
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield LiveServer(f"http://127.0.0.1:{server.server_port}")
    server.shutdown()
