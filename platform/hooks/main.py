"""The hooks' entry points: ``install`` (``brokerage hook install``) and ``main``
(``python -m brokerage.platform.hooks``). The flow is described in the package docstring."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

from brokerage.platform.hooks.config import (
    HookConfig,
    Repository,
    open_repository,
    parse_settings,
    read_config,
)
from brokerage.platform.hooks.errors import HookConfigError, HookError, HookInstallError
from brokerage.platform.hooks.git import collect_git_push, parse_post_receive
from brokerage.platform.hooks.hg import HG_SKIPPED_SOURCES, collect_hg_push
from brokerage.platform.hooks.push import Push
from brokerage.platform.hooks.scm import Scm, git
from brokerage.platform.hooks.spool import FlushReport, flush, spool_of

HOOK_MARKER = "brokerage-hook"
"""A hook file (or hgrc include) containing this string was written by us and may be replaced."""

HOOK_SCRIPTS = Path(__file__).parent / "scripts"


# --- installing ------------------------------------------------------------------------------


def install(
    path: Path,
    *,
    url: str,
    repo_name: str,
    token: str,
    python: str = sys.executable,
    force: bool = False,
) -> Repository:
    """Configure the repository at ``path`` and put our hook into it (idempotent)."""
    parse_settings({"url": url, "repo": repo_name, "token": token})
    repo = open_repository(path)
    if repo.scm is Scm.GIT:
        _install_git(repo, url=url, repo_name=repo_name, token=token, python=python, force=force)
    else:
        _install_hg(repo, url=url, repo_name=repo_name, token=token, python=python)
    return repo


def _install_git(
    repo: Repository, *, url: str, repo_name: str, token: str, python: str, force: bool
) -> None:
    hook = _git_hooks_dir(repo) / "post-receive"
    if hook.exists() and HOOK_MARKER not in hook.read_text(errors="replace") and not force:
        raise HookInstallError(f"{hook} exists and is not ours; move it away or use --force")
    for key, value in (("url", url), ("repo", repo_name), ("token", token)):
        git(repo.root, ["config", f"brokerage.{key}", value])
    template = (HOOK_SCRIPTS / "post-receive").read_text()
    hook.parent.mkdir(parents=True, exist_ok=True)
    hook.write_text(template.replace("@PYTHON@", shlex.quote(python)))
    hook.chmod(0o755)


def _git_hooks_dir(repo: Repository) -> Path:
    """Where git looks for hooks (honours ``core.hooksPath``)."""
    hooks_dir = Path(os.fsdecode(git(repo.root, ["rev-parse", "--git-path", "hooks"]).strip()))
    return hooks_dir if hooks_dir.is_absolute() else repo.root / hooks_dir


def _install_hg(repo: Repository, *, url: str, repo_name: str, token: str, python: str) -> None:
    values = {"@URL@": url, "@REPO@": repo_name, "@TOKEN@": token, "@PYTHON@": shlex.quote(python)}
    if any("\n" in value for value in values.values()):
        raise HookInstallError("settings may not contain line breaks")
    text = (HOOK_SCRIPTS / "brokerage.rc").read_text()
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    rc = repo.control_dir / "brokerage.rc"
    rc.write_text(text)
    rc.chmod(0o600)  # holds the push token
    _include_in_hgrc(repo.control_dir / "hgrc")


def _include_in_hgrc(hgrc: Path) -> None:
    """Add ``%include brokerage.rc`` once, keeping the rest of hgrc."""
    current = hgrc.read_text() if hgrc.exists() else ""
    if "%include brokerage.rc" not in current:
        separator = "" if not current or current.endswith("\n") else "\n"
        hgrc.write_text(f"{current}{separator}%include brokerage.rc\n")


# --- hook entry points -----------------------------------------------------------------------


def handle_push(
    repo: Repository, collect: Callable[[bool], Push], out: IO[str] = sys.stderr
) -> FlushReport | None:
    """Spool the push ``collect(patches)`` reads, then flush; reports problems, never raises."""
    try:
        config: HookConfig | None = read_config(repo)
    except HookConfigError as exc:
        print(f"brokerage: {exc}; spooling the push", file=out)
        config = None
    push = collect(config.patches if config else True)
    if push.is_empty():
        return None
    spool_of(repo).add(push.body())
    if config is None:
        return None
    return flush(config, spool_of(repo), out=out)


def run_git_post_receive(stdin: IO[bytes], out: IO[str] = sys.stderr) -> int:
    """The post-receive hook: always exits 0 (refs have moved; failing changes nothing)."""
    try:
        git_dir = Path(os.environ.get("GIT_DIR", ".")).resolve()
        repo = Repository(Scm.GIT, git_dir)
        # ref names are bytes to git; decode them the way every other git output is decoded
        updates = parse_post_receive(stdin.read().decode("utf-8", "replace").splitlines())
        handle_push(repo, lambda patches: collect_git_push(git_dir, updates, patches=patches), out)
    except Exception as exc:  # the refs have moved already; a hook crash helps nobody
        print(f"brokerage: could not record this push: {exc!r}", file=out)
    return 0


def run_hg_changegroup(environ: Mapping[str, str] = os.environ, out: IO[str] = sys.stderr) -> int:
    """The changegroup hook (cwd = repository root): always exits 0."""
    if environ.get("HG_SOURCE") in HG_SKIPPED_SOURCES or not environ.get("HG_NODE"):
        return 0
    try:
        repo = Repository(Scm.HG, Path.cwd())
        first, last = environ["HG_NODE"], environ.get("HG_NODE_LAST")
        handle_push(
            repo, lambda patches: collect_hg_push(repo.root, first, last, patches=patches), out
        )
    except Exception as exc:  # the changesets are in; a hook crash helps nobody
        print(f"brokerage: could not record this push: {exc!r}", file=out)
    return 0


def flush_repository(
    path: Path, *, include_rejected: bool = False, out: IO[str] = sys.stderr
) -> FlushReport:
    """``brokerage hook flush``: resend what the repository has spooled."""
    repo = open_repository(path)
    if include_rejected:
        spool_of(repo).requeue_rejected()
    return flush(read_config(repo), spool_of(repo), budget=float("inf"), out=out)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m brokerage.platform.hooks")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("git-post-receive", help="run as a git post-receive hook")
    commands.add_parser("hg-changegroup", help="run as a Mercurial changegroup hook")
    flush_parser = commands.add_parser("flush", help="resend spooled pushes")
    flush_parser.add_argument("--repo-path", type=Path, default=Path("."))
    flush_parser.add_argument("--include-rejected", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "git-post-receive":
        return run_git_post_receive(sys.stdin.buffer)
    if args.command == "hg-changegroup":
        return run_hg_changegroup()
    try:
        report = flush_repository(args.repo_path, include_rejected=args.include_rejected)
    except HookError as exc:
        print(f"brokerage: {exc}", file=sys.stderr)
        return 1
    return 1 if report.waiting else 0
