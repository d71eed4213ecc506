"""Real repositories, real ``git push`` / ``hg push``, and a real HTTP receiver on 127.0.0.1.

The receiver plays the platform's ``/pushes`` endpoint: it checks the bearer token,
validates each body against ``push.schema.json`` (answering 400 like the platform
would) and records what it accepted. A test can queue other answers (500, 400...).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner

from brokerage.platform.hooks import spool as hook_spool
from brokerage.platform.hooks.cli import hook

TOKEN = "push-token-123"
REPO_NAME = "marcus/project-x"
PUSH_PATH = "/1.0/repositories/marcus/project-x/pushes"


@dataclass
class Receiver:
    """What the fake platform got, and what it will answer next."""

    url: str = ""
    pushes: list[dict[str, Any]] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    answers: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    """queued (status, JSON body) answers, used before the default 201."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, status: int, body: dict[str, Any] | None = None, times: int = 1) -> None:
        with self.lock:
            self.answers.extend([(status, body or {})] * times)

    def next_answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            if self.answers:
                return self.answers.pop(0)
            self.pushes.append(body)
            return 201, {"push_id": body["push_id"]}


def handler_class(receiver: Receiver, validator: jsonschema.Draft202012Validator) -> type:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path != PUSH_PATH:
                return self._reply(404, {"error": {"message": f"no route {self.path}"}})
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                return self._reply(401, {"error": {"message": "bad push token"}})
            body = json.loads(raw)
            errors = sorted(validator.iter_errors(body), key=lambda e: list(e.path))
            if errors:
                where = "/".join(str(p) for p in errors[0].absolute_path)
                receiver.invalid.append(f"{where}: {errors[0].message}")
                return self._reply(400, {"error": {"message": f"{where}: {errors[0].message}"}})
            self._reply(*receiver.next_answer(body))

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    return Handler


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def install_hook(path: Path, url: str, token: str = TOKEN, repo_name: str = REPO_NAME) -> None:
    """``brokerage hook install`` (the click command, in-process) into ``path``."""
    result = CliRunner().invoke(
        hook, ["install", "--url", url, "--repo", repo_name, "--token", token, "--path", str(path)]
    )
    assert result.exit_code == 0, result.output


def isolate_scm(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No user or system git/hg configuration leaks into a test; a known pusher and identity."""
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("HGRCPATH", "")
    monkeypatch.setenv("BROKERAGE_USER", "pusher")
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "Committer")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "committer@example.com")
    for name in ("GIT_DIR", "GIT_WORK_TREE", "REMOTE_USER", "GL_USER", "GL_USERNAME"):
        monkeypatch.delenv(name, raising=False)


@dataclass
class GitRepos:
    """A bare server repository with our hook, and a clone to commit and push from."""

    server: Path
    clone: Path

    @classmethod
    def create(cls, where: Path) -> GitRepos:
        """A new bare repository (branch ``main``, no hook yet) and a clone of it."""
        server, clone = where / "server.git", where / "clone"
        run(["git", "init", "-q", "--bare", "-b", "main", str(server)], where)
        run(["git", "clone", "-q", str(server), str(clone)], where)
        run(["git", "checkout", "-q", "-b", "main"], clone)
        return cls(server, clone)

    def commit(
        self,
        message: str,
        files: dict[str, str | None],
        *,
        author: str = "Marcus Bertrand <marcus@somedomain.com>",
        date: str = "2012-05-30 06:07:03 +0200",
    ) -> str:
        """Write (or, for None, delete) files and commit; returns the new commit id."""
        for name, content in files.items():
            target = self.clone / name
            if content is None:
                run(["git", "rm", "-q", name], self.clone)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8")
            run(["git", "add", name], self.clone)
        name, _, email = author.partition(" <")
        env = {
            **os.environ,
            "GIT_AUTHOR_NAME": name,
            "GIT_AUTHOR_EMAIL": email.rstrip(">"),
            "GIT_AUTHOR_DATE": date,
            "GIT_COMMITTER_NAME": "Committer",
            "GIT_COMMITTER_EMAIL": "committer@example.com",
        }
        run(["git", "commit", "-q", "--allow-empty", "-m", message], self.clone, env)
        return self.git("rev-parse", "HEAD").strip()

    def git(self, *args: str) -> str:
        return run(["git", *args], self.clone)

    def push(self, *args: str) -> str:
        """``git push`` from the clone; returns its output (hook messages show as 'remote:')."""
        return run(["git", "push", "origin", *args], self.clone)

    @property
    def spool(self) -> hook_spool.Spool:
        return hook_spool.Spool(self.server / hook_spool.SPOOL_DIR_NAME)


@dataclass
class HgRepos:
    """A server repository for our changegroup hook, and a clone to commit and push from."""

    server: Path
    clone: Path

    @classmethod
    def create(cls, where: Path) -> HgRepos:
        """A new repository (no hook yet) and a clone of it."""
        server, clone = where / "server-hg", where / "clone-hg"
        run([hg_executable(), "init", str(server)], where)
        run([hg_executable(), "clone", "-q", str(server), str(clone)], where)
        return cls(server, clone)

    def commit(
        self,
        message: str,
        files: dict[str, str | None],
        *,
        user: str = "Marcus Bertrand <marcus@somedomain.com>",
        date: str = "2012-05-30 06:07:03 +0200",
    ) -> str:
        for name, content in files.items():
            target = self.clone / name
            if content is None:
                self.hg("remove", "-q", name)
                continue
            is_new = not target.exists()
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8")
            if is_new:
                self.hg("add", "-q", name)
        self.hg("commit", "-q", "-m", message, "-u", user, "-d", date)
        return self.hg("log", "-r", ".", "-T", "{node}").strip()

    def hg(self, *args: str) -> str:
        return run([hg_executable(), *args], self.clone)

    def push(self, *args: str) -> str:
        return run([hg_executable(), "push", *args], self.clone)

    @property
    def spool(self) -> hook_spool.Spool:
        return hook_spool.Spool(self.server / ".hg" / hook_spool.SPOOL_DIR_NAME)


def hg_executable() -> str:
    found = shutil.which("hg")
    assert found, "Mercurial is a test prerequisite: pip install mercurial"
    return found
