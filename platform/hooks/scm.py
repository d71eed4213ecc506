"""Running git and hg for the push hooks: one place that starts them and reads their output."""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path

from brokerage.platform.hooks.errors import ScmCommandError


class Scm(StrEnum):
    GIT = "git"
    HG = "hg"


def run(
    command: list[str],
    *,
    cwd: Path,
    stdin: bytes | None = None,
    environ: Mapping[str, str] | None = None,
) -> bytes:
    """The command's stdout; raises ScmCommandError (with its stderr) when it fails."""
    done = subprocess.run(
        command, cwd=cwd, input=stdin, capture_output=True, env=environ, check=False
    )
    if done.returncode != 0:
        error = done.stderr.decode("utf-8", "replace").strip()
        raise ScmCommandError(f"{shlex.join(command[:4])}... failed: {error}")
    return done.stdout


def git_command(git_dir: Path, *args: str) -> list[str]:
    return ["git", f"--git-dir={git_dir}", *args]


def git(git_dir: Path, args: list[str], stdin: bytes | None = None) -> bytes:
    return run(git_command(git_dir, *args), cwd=git_dir, stdin=stdin)


def hg_command(root: Path, *args: str) -> list[str]:
    return [hg_executable(), "--repository", str(root), *args]


def hg(root: Path, args: list[str]) -> bytes:
    return run(hg_command(root, *args), cwd=root, environ=hg_environ())


def hg_executable() -> str:
    return os.environ.get("HG", "hg")  # Mercurial sets HG to itself for hooks


def hg_environ() -> dict[str, str]:
    return {**os.environ, "HGPLAIN": "1", "HGENCODING": "utf-8"}
