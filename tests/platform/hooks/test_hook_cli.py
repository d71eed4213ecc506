"""``brokerage hook install`` and ``brokerage hook flush``."""

from __future__ import annotations

import sys
from pathlib import Path

from click.testing import CliRunner

from brokerage.platform.hooks import main as hooks
from brokerage.platform.hooks import spool as hook_spool
from brokerage.platform.hooks.cli import hook
from tests.platform.hooks.hook_fixtures import REPO_NAME, TOKEN, hg_executable, run


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(hook, list(args))
    return result.exit_code, result.output


def install_args(path: Path, url: str = "http://127.0.0.1:1") -> list[str]:
    return ["install", "--url", url, "--repo", REPO_NAME, "--token", TOKEN, "--path", str(path)]


def git_setting(git_dir: Path, key: str) -> str:
    return run(["git", "--git-dir", str(git_dir), "config", key], git_dir).strip()


def test_git_install_writes_settings_and_an_executable_hook(tmp_path: Path) -> None:
    run(["git", "init", "-q", "--bare", "repo.git"], tmp_path)
    repo = tmp_path / "repo.git"

    code, output = invoke(*install_args(repo))

    assert code == 0, output
    hook_file = repo / "hooks" / "post-receive"
    assert hook_file.stat().st_mode & 0o111
    assert sys.executable in hook_file.read_text()
    assert git_setting(repo, "brokerage.repo") == REPO_NAME
    assert git_setting(repo, "brokerage.token") == TOKEN


def test_reinstall_updates_the_settings(tmp_path: Path) -> None:
    run(["git", "init", "-q", "--bare", "repo.git"], tmp_path)
    repo = tmp_path / "repo.git"
    invoke(*install_args(repo))

    code, output = invoke(*install_args(repo, url="http://127.0.0.1:2"))

    assert code == 0, output
    assert git_setting(repo, "brokerage.url") == "http://127.0.0.1:2"


def test_install_into_a_non_bare_clone_uses_its_git_dir(tmp_path: Path) -> None:
    run(["git", "init", "-q", "work"], tmp_path)

    code, output = invoke(*install_args(tmp_path / "work"))

    assert code == 0, output
    assert (tmp_path / "work" / ".git" / "hooks" / "post-receive").exists()


def test_a_foreign_hook_is_kept_unless_forced(tmp_path: Path) -> None:
    run(["git", "init", "-q", "--bare", "repo.git"], tmp_path)
    foreign = tmp_path / "repo.git" / "hooks" / "post-receive"
    foreign.write_text("#!/bin/sh\necho theirs\n")

    code, output = invoke(*install_args(tmp_path / "repo.git"))
    assert code == 1
    assert "is not ours" in output
    assert "theirs" in foreign.read_text()

    code, output = invoke(*install_args(tmp_path / "repo.git"), "--force")
    assert code == 0, output
    assert hooks.HOOK_MARKER in foreign.read_text()


def test_install_refuses_what_is_not_a_repository(tmp_path: Path) -> None:
    code, output = invoke(*install_args(tmp_path))

    assert code == 1
    assert "neither a git nor a Mercurial repository" in output


def test_install_refuses_bad_settings(tmp_path: Path) -> None:
    run(["git", "init", "-q", "--bare", "repo.git"], tmp_path)
    args = install_args(tmp_path / "repo.git")
    args[args.index("--repo") + 1] = "no-slash"

    code, output = invoke(*args)

    assert code == 1
    assert "owner/slug" in output


def test_hg_install_keeps_the_existing_hgrc(tmp_path: Path) -> None:
    run([hg_executable(), "init", "repo"], tmp_path)
    hgrc = tmp_path / "repo" / ".hg" / "hgrc"
    hgrc.write_text("[ui]\nusername = someone")

    for _ in range(2):
        code, output = invoke(*install_args(tmp_path / "repo"))
        assert code == 0, output

    text = hgrc.read_text()
    assert text.startswith("[ui]\nusername = someone\n")
    assert text.count("%include brokerage.rc") == 1
    settings = run([hg_executable(), "config", "brokerage"], tmp_path / "repo")
    assert f"brokerage.repo={REPO_NAME}" in settings
    rc = tmp_path / "repo" / ".hg" / "brokerage.rc"
    assert rc.stat().st_mode & 0o077 == 0  # the token is not world-readable


def test_flush_exits_1_while_the_platform_is_down(tmp_path: Path, dead_url: str) -> None:
    run(["git", "init", "-q", "--bare", "repo.git"], tmp_path)
    repo = tmp_path / "repo.git"
    invoke(*install_args(repo, url=dead_url))
    hook_spool.Spool(repo / hook_spool.SPOOL_DIR_NAME).add({"push_id": "x"})

    code, output = invoke("flush", "--repo-path", str(repo))

    assert code == 1
    assert "still spooled 1" in output


def test_flush_of_an_unconfigured_repository_says_what_is_missing(tmp_path: Path) -> None:
    run(["git", "init", "-q", "--bare", "repo.git"], tmp_path)

    code, output = invoke("flush", "--repo-path", str(tmp_path / "repo.git"))

    assert code == 1
    assert "brokerage.url, brokerage.repo, brokerage.token missing" in output
