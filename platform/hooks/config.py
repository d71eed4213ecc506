"""A repository on the server side and its ``brokerage.*`` hook settings (git config, or the
``[brokerage]`` section of hgrc): where to send its pushes, and where its spool lives."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from brokerage.platform.hooks.errors import HookConfigError, HookInstallError, ScmCommandError
from brokerage.platform.hooks.scm import Scm, git, hg, run

SEND_TIMEOUT_SECONDS = 5.0
"""seconds one POST may take (connect + response) before the push is spooled instead."""

PUSH_PATH = "/1.0/repositories/{owner}/{slug}/pushes"
REPO_NAME = re.compile(r"^(?P<owner>[A-Za-z0-9_.-]+)/(?P<slug>[A-Za-z0-9_.-]+)$")


@dataclass(frozen=True)
class Repository:
    """A repository on the server side: where its settings and spool live."""

    scm: Scm
    root: Path
    """git: the git directory (a bare repository itself); hg: the working directory root."""

    @property
    def control_dir(self) -> Path:
        return self.root if self.scm is Scm.GIT else self.root / ".hg"


@dataclass(frozen=True)
class HookConfig:
    """The ``brokerage.*`` settings of one repository."""

    url: str
    owner: str
    slug: str
    token: str
    timeout: float = SEND_TIMEOUT_SECONDS
    patches: bool = True

    @property
    def push_url(self) -> str:
        return self.url.rstrip("/") + PUSH_PATH.format(owner=self.owner, slug=self.slug)


def open_repository(path: Path) -> Repository:
    """Find the git or hg repository at ``path`` (a bare git repository, a clone, an hg root)."""
    path = path.resolve()
    if (path / ".hg").is_dir():
        return Repository(Scm.HG, path)
    try:
        git_dir = os.fsdecode(run(["git", "rev-parse", "--absolute-git-dir"], cwd=path).strip())
    except (ScmCommandError, FileNotFoundError, NotADirectoryError) as exc:
        raise HookInstallError(f"{path} is neither a git nor a Mercurial repository") from exc
    return Repository(Scm.GIT, Path(git_dir))


def parse_settings(settings: Mapping[str, str]) -> HookConfig:
    """Check the raw ``url``/``repo``/``token`` (+ optional ``timeout``, ``patches``) settings."""
    missing = [key for key in ("url", "repo", "token") if not settings.get(key)]
    if missing:
        names = ", ".join(f"brokerage.{key}" for key in missing)
        raise HookConfigError(f"not configured: {names} missing (run `brokerage hook install`)")
    if not settings["url"].startswith(("http://", "https://")):
        raise HookConfigError(f"brokerage.url must be an http(s) URL, got {settings['url']!r}")
    match = REPO_NAME.match(settings["repo"])
    if match is None:
        raise HookConfigError(f"brokerage.repo must be owner/slug, got {settings['repo']!r}")
    try:
        timeout = float(settings.get("timeout") or SEND_TIMEOUT_SECONDS)
    except ValueError as exc:
        raise HookConfigError(f"brokerage.timeout must be seconds: {exc}") from exc
    patches = settings.get("patches", "true").strip().lower() not in ("false", "no", "off", "0")
    return HookConfig(
        settings["url"], match["owner"], match["slug"], settings["token"], timeout, patches
    )


def read_config(repo: Repository) -> HookConfig:
    """The repository's hook settings (git config ``brokerage.*`` / hgrc ``[brokerage]``)."""
    raw = _git_settings(repo.root) if repo.scm is Scm.GIT else _hg_settings(repo.root)
    return parse_settings(raw)


def _git_settings(git_dir: Path) -> dict[str, str]:
    try:
        out = git(git_dir, ["config", "-z", "--get-regexp", r"^brokerage\."])
    except ScmCommandError:
        return {}  # git config exits 1 when nothing matches
    settings = {}
    for entry in out.decode("utf-8", "replace").split("\0"):
        key, _, value = entry.partition("\n")
        if key:
            settings[key.removeprefix("brokerage.")] = value
    return settings


def _hg_settings(root: Path) -> dict[str, str]:
    try:
        out = hg(root, ["config", "brokerage"])
    except ScmCommandError:
        return {}
    settings = {}
    for line in out.decode("utf-8", "replace").splitlines():
        key, _, value = line.partition("=")
        settings[key.strip().removeprefix("brokerage.")] = value.strip()
    return settings
