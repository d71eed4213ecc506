"""Fixtures for the hook tests: real repositories with our hook, a recording platform.

Helpers and the receiver live in ``hook_fixtures.py`` so test modules can import them.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import jsonschema
import pytest

from brokerage.platform.hooks import push as hook_push
from tests.platform.hooks.hook_fixtures import (
    GitRepos,
    HgRepos,
    Receiver,
    handler_class,
    install_hook,
    isolate_scm,
)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    validator = jsonschema.Draft202012Validator(
        hook_push.push_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    state = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_class(state, validator))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    assert state.invalid == [], "the hook sent bodies that break push.schema.json"


@pytest.fixture
def dead_url() -> str:
    """A 127.0.0.1 URL where nothing listens (the platform is down)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture(autouse=True)
def scm_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_scm(tmp_path / "home", monkeypatch)


@pytest.fixture
def git_repos(tmp_path: Path, receiver: Receiver) -> GitRepos:
    repos = GitRepos.create(tmp_path)
    install_hook(repos.server, receiver.url)
    return repos


@pytest.fixture
def hg_repos(tmp_path: Path, receiver: Receiver) -> HgRepos:
    repos = HgRepos.create(tmp_path)
    install_hook(repos.server, receiver.url)
    return repos
