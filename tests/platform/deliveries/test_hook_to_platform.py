"""A real ``git push`` / ``hg push`` through the installed hook into the real platform.

The platform is ``brokerage serve`` in a subprocess on 127.0.0.1 (its own port, over the
test app's database and data dir, with the test's own Redis), so a test can kill it and
start it again. Assertions go through its HTTP API (GET …/pushes, …/deliveries); the
payload brokers get is read from a delivery run by the dispatcher on the fake sandbox.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from brokerage.platform.deliveries.dispatch import Dispatcher
from brokerage.sandbox.fake import FakeBackend
from tests.platform.deliveries.conftest import Repo
from tests.platform.hooks.hook_fixtures import GitRepos, HgRepos, install_hook, isolate_scm
from tests.support import FORM, PASSWORD, TEST_FIELD_KEY, RedisServer, Seeder, basic, free_port

START_SECONDS = 60.0
"""seconds ``brokerage serve`` may take to listen (migrations run first on a fresh database)."""

GIT_CHANGE = {"A": "added", "M": "modified", "D": "removed"}


def brokerage_command() -> str:
    """The ``brokerage`` script of the environment running the tests."""
    found = shutil.which("brokerage", path=f"{Path(sys.executable).parent}{os.pathsep}")
    found = found or shutil.which("brokerage")
    assert found, "the brokerage command is missing: pip install -e ."
    return found


class Platform:
    """``brokerage serve`` over the test app's database, on a port that stays the same across
    restarts, so installed hooks keep pointing at it."""

    def __init__(self, app: Flask, redis_url: str, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.env = {
            **os.environ,
            "BROKERAGE_DATA_DIR": app.config["DATA_DIR"],
            "DATABASE_URL": app.config["DATABASE_URL"],
            "REDIS_URL": redis_url,
            "BROKERAGE_FIELD_KEYS": TEST_FIELD_KEY,
        }

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [brokerage_command(), "serve", "--port", str(self.port), "--threads", "4"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_listening()

    def _wait_listening(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"brokerage serve exited:\n{self.log.read_text()}"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"brokerage serve is not listening:\n{self.log.read_text()}")

    def stop(self) -> None:
        """Kill it (no graceful shutdown: requests in flight are cut off)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=30)
            self.proc = None

    def get(self, repo: str, path: str, **params: Any) -> Any:
        response = requests.get(
            f"{self.url}/1.0/repositories/{repo}/{path}",
            params={"pagelen": 100, **params},
            headers=basic("marcus", PASSWORD),
            timeout=30,
        )
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture(autouse=True)
def scm_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_scm(tmp_path / "home", monkeypatch)


@pytest.fixture
def platform(app: Flask, redis_server: RedisServer, tmp_path: Path) -> Iterator[Platform]:
    """The served platform, not started: a test starts it when it wants it up."""
    served = Platform(app, redis_server.url, tmp_path / "serve.log")
    yield served
    served.stop()


@pytest.fixture
def git_repos(tmp_path: Path) -> GitRepos:
    return GitRepos.create(tmp_path)


def flush(path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """``brokerage hook flush`` for the repository at ``path``."""
    return subprocess.run(
        [brokerage_command(), "hook", "flush", "--repo-path", str(path), *options],
        capture_output=True,
        text=True,
        check=False,
    )


def git_view(repos: GitRepos, sha: str) -> dict[str, Any]:
    """What git itself says about a commit, in the payload's terms."""
    author = repos.git("show", "-s", "--format=%an <%ae>", sha).strip()
    message = repos.git("show", "-s", "--format=%B", sha).rstrip("\n")
    changes = repos.git("diff-tree", "--no-commit-id", "--name-status", "-r", "--root", sha)
    files = [line.split("\t", 1) for line in changes.splitlines() if line]
    return {
        "raw_node": sha,
        "raw_author": author,
        "message": message,
        "files": sorted((name, GIT_CHANGE[status]) for status, name in files),
    }


def payload_view(commit: dict[str, Any]) -> dict[str, Any]:
    return {
        "raw_node": commit["raw_node"],
        "raw_author": commit["raw_author"],
        "message": commit["message"].rstrip("\n"),
        "files": sorted((f["file"], f["type"]) for f in commit["files"]),
    }


def envelope_of(dispatcher: Dispatcher, fake: FakeBackend, delivery_id: str) -> dict[str, Any]:
    """Run the delivery on the fake sandbox; the envelope its broker got."""
    assert dispatcher.run(delivery_id) == "succeeded"
    return dict(fake.calls[-1].envelope)


def test_a_git_push_is_stored_with_one_delivery_per_service(
    platform: Platform,
    repo: Repo,
    git_repos: GitRepos,
    dispatcher: Dispatcher,
    fake: FakeBackend,
) -> None:
    services = {repo.add_service(f"type=POST&URL=http://127.0.0.1:9/{n}") for n in "ab"}
    platform.start()
    install_hook(git_repos.server, platform.url, token=repo.token)
    first = git_repos.commit("Add somefile", {"somefile.py": "a\n", "old.txt": "o\n"})
    second = git_repos.commit(
        "Edit somefile, drop old",
        {"somefile.py": "b\n", "old.txt": None, "docs/new.md": "n\n"},
        author="José Müller <jose@example.org>",
    )

    output = git_repos.push("main")

    assert "brokerage:" not in output, output  # nothing spooled, nothing refused
    [push] = platform.get("marcus/project-x", "pushes")
    assert (push["user"], push["commits"], push["truncated"]) == ("pusher", 2, False)
    deliveries = platform.get("marcus/project-x", "deliveries", push=push["id"])
    assert sorted(d["service"] for d in deliveries) == sorted(services)
    assert {d["status"] for d in deliveries} == {"queued"}
    envelope = envelope_of(dispatcher, fake, deliveries[0]["id"])
    commits = envelope["commits"]
    assert [payload_view(c) for c in commits] == [git_view(git_repos, s) for s in (first, second)]
    assert [(c["author"], c["branch"]) for c in commits] == [("marcus", "main"), ("jose", "main")]
    assert commits[1]["parents"] == [first[:12]]
    assert envelope["refs"] == [
        {"ref": "refs/heads/main", "type": "branch", "old": None, "new": second}
    ]
    shown = platform.get("marcus/project-x", f"deliveries/{deliveries[0]['id']}")
    assert (shown["status"], len(shown["attempt_log"])) == ("succeeded", 1)


def test_a_push_while_the_platform_is_down_is_spooled_then_stored_once(
    platform: Platform, repo: Repo, git_repos: GitRepos
) -> None:
    repo.add_service("type=POST&URL=http://127.0.0.1:9/a")
    install_hook(git_repos.server, platform.url, token=repo.token)
    sha = git_repos.commit("while down", {"a.txt": "1\n"})

    output = git_repos.push("main")

    assert "spooled" in output
    assert git_repos.git("ls-remote", "origin", "main").split()[0] == sha  # the push went in
    [spooled] = git_repos.spool.pending()
    body = spooled.read_bytes()
    platform.start()
    done = flush(git_repos.server)
    assert done.returncode == 0, done.stderr
    assert "delivered 1, rejected 0, still spooled 0" in done.stdout
    # a hook killed after the platform stored the push but before it deleted the file
    (git_repos.spool.directory / spooled.name).write_bytes(body)
    assert flush(git_repos.server).returncode == 0
    git_repos.commit("next", {"a.txt": "2\n"})
    git_repos.push("main")

    pushes = platform.get("marcus/project-x", "pushes")
    assert [p["commits"] for p in pushes] == [1, 1]
    assert len({p["push_id"] for p in pushes}) == 2
    assert len(platform.get("marcus/project-x", "deliveries")) == 2
    assert git_repos.spool.pending() == []


def test_platform_restarted_while_hooks_send_stores_every_push_once(
    platform: Platform, repo: Repo, git_repos: GitRepos
) -> None:
    repo.add_service("type=POST&URL=http://127.0.0.1:9/a")
    platform.start()
    install_hook(git_repos.server, platform.url, token=repo.token)
    git_repos.git("-C", str(git_repos.server), "config", "brokerage.timeout", "2")
    pusher = LoopingPusher(git_repos, count=10)
    pusher.start()

    pusher.wait_for(2)
    platform.stop()
    pusher.wait_for(5)  # pushes made while it is down
    platform.start()
    pusher.join()
    done = flush(git_repos.server)

    assert done.returncode == 0, done.stderr
    assert pusher.errors == []
    assert any("spooled" in output for output in pusher.outputs)
    pushes = platform.get("marcus/project-x", "pushes")
    assert len(pushes) == 10
    assert len({p["push_id"] for p in pushes}) == 10
    assert sum(p["commits"] for p in pushes) == 10
    deliveries = platform.get("marcus/project-x", "deliveries")
    assert sorted(d["push"] for d in deliveries) == sorted(p["id"] for p in pushes)
    assert git_repos.spool.pending() == git_repos.spool.rejected() == []


class LoopingPusher(threading.Thread):
    """Commits and pushes ``count`` times, one commit per push, as fast as git goes."""

    def __init__(self, repos: GitRepos, count: int) -> None:
        super().__init__(daemon=True)
        self.repos = repos
        self.count = count
        self.outputs: list[str] = []
        self.errors: list[BaseException] = []
        self.progress = threading.Condition()

    def run(self) -> None:
        try:
            for n in range(self.count):
                self.repos.commit(f"push {n}", {"loop.txt": f"{n}\n"})
                output = self.repos.push("main")
                with self.progress:
                    self.outputs.append(output)
                    self.progress.notify_all()
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.errors.append(exc)
            with self.progress:
                self.progress.notify_all()

    def wait_for(self, pushes: int) -> None:
        with self.progress:
            done = self.progress.wait_for(
                lambda: len(self.outputs) >= pushes or bool(self.errors), timeout=120
            )
        assert done and not self.errors, self.errors


def test_a_bad_push_token_is_shown_to_the_pusher_and_kept(
    platform: Platform, repo: Repo, git_repos: GitRepos
) -> None:
    repo.add_service("type=POST&URL=http://127.0.0.1:9/a")
    platform.start()
    install_hook(git_repos.server, platform.url, token="not-the-push-token")
    git_repos.commit("refused", {"a.txt": "1\n"})

    output = git_repos.push("main")

    assert "remote: brokerage: the platform refused this push (HTTP 401: " in output
    assert "wrong push token for repository marcus/project-x" in output
    [kept] = git_repos.spool.rejected()
    assert "HTTP 401" in kept.with_suffix(".reason.txt").read_text()
    assert platform.get("marcus/project-x", "pushes") == []
    install_hook(git_repos.server, platform.url, token=repo.token)
    assert flush(git_repos.server, "--include-rejected").returncode == 0
    [push] = platform.get("marcus/project-x", "pushes")
    assert push["commits"] == 1


def hg_repository(client: FlaskClient, seed: Seeder) -> str:
    """marcus/project-hg, a Mercurial repository with a POST service; returns its push token."""
    seed.user("marcus")
    seed.repo("marcus", "project-hg", scm="hg")
    url = "/1.0/repositories/marcus/project-hg"
    service = client.post(
        f"{url}/services",
        data="type=POST&URL=http://127.0.0.1:9/hg",
        headers={**basic("marcus"), **FORM},
    )
    assert service.status_code == 200, service.json
    response = client.post(f"{url}/push-token", headers=basic("marcus"))
    assert response.status_code == 201, response.json
    return str((response.json or {})["token"])


def test_an_hg_push_reaches_the_platform_with_revision_numbers(
    platform: Platform,
    client: FlaskClient,
    seed: Seeder,
    tmp_path: Path,
    dispatcher: Dispatcher,
    fake: FakeBackend,
) -> None:
    token = hg_repository(client, seed)
    platform.start()
    hg = HgRepos.create(tmp_path)
    install_hook(hg.server, platform.url, token=token, repo_name="marcus/project-hg")
    first = hg.commit("one", {"a.txt": "1\n"})
    hg.hg("branch", "-q", "feature")
    second = hg.commit("two", {"a.txt": "2\n", "b.txt": "b\n"})

    output = hg.push("--new-branch")

    assert "brokerage:" not in output, output
    [push] = platform.get("marcus/project-hg", "pushes")
    assert push["commits"] == 2
    [delivery] = platform.get("marcus/project-hg", "deliveries", push=push["id"])
    envelope = envelope_of(dispatcher, fake, delivery["id"])
    assert [(c["raw_node"], c["revision"], c["branch"]) for c in envelope["commits"]] == [
        (first, 0, "default"),
        (second, 1, "feature"),
    ]
    assert envelope["repository"]["scm"] == "hg"
    assert envelope["commits"][1]["files"] == [
        {"file": "b.txt", "type": "added"},
        {"file": "a.txt", "type": "modified"},
    ]
