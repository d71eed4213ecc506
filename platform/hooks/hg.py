"""Collect an hg push: the changesets one changegroup added (consecutive revision numbers),
their named branches, and one ref update per branch that received changesets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from brokerage.platform.hooks.patches import collect_patches
from brokerage.platform.hooks.push import (
    MAX_COMMITS,
    FileChange,
    Push,
    RefType,
    RefUpdate,
    commit_json,
)
from brokerage.platform.hooks.scm import Scm, hg, hg_command, hg_environ

HG_NULL = "0" * 40
HG_TEMPLATE = (
    "{dict(node, rev, branch, author, date, desc, p1node, p2node, file_adds, file_dels, file_mods)"
    "|json}\\n"
)
HG_SKIPPED_SOURCES = frozenset({"strip"})
"""changegroup sources that bring back commits the repository already had."""


def collect_hg_push(root: Path, first: str, last: str | None, *, patches: bool) -> Push:
    """The changesets ``first``..``last`` that a changegroup just added, and their branches."""
    records = _records(root, f"last({first}:{last or 'tip'}, {MAX_COMMITS})")
    commits, files_cut = [], False
    for record in records:
        commit, cut = _commit(record)
        commits.append(commit)
        files_cut = files_cut or cut
    truncated = bool(records) and records[0]["node"] != first or files_cut
    push = Push(Scm.HG, _refs(root, first, commits), commits, truncated)
    if patches:
        push.patches = _patches(root, commits)
    return push


def _records(root: Path, revset: str) -> list[dict[str, Any]]:
    out = hg(root, ["log", "-r", revset, "-T", HG_TEMPLATE]).decode("utf-8")
    return [json.loads(line) for line in out.splitlines() if line]


def _commit(record: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    epoch, offset_west = record["date"]
    files = (
        [(name, FileChange.ADDED) for name in record["file_adds"]]
        + [(name, FileChange.MODIFIED) for name in record["file_mods"]]
        + [(name, FileChange.REMOVED) for name in record["file_dels"]]
    )
    # hg stores the local time as (UTC epoch, seconds *west* of UTC)
    return commit_json(
        raw_node=record["node"],
        parents=[p for p in (record["p1node"], record["p2node"]) if p != HG_NULL],
        branch=record["branch"],
        raw_author=record["author"],
        epoch=int(epoch),
        utc_offset=-int(offset_west),
        message=record["desc"],
        files=files,
        revision=record["rev"],
    )


def _refs(root: Path, first: str, commits: list[dict[str, Any]]) -> list[RefUpdate]:
    """One update per named branch that received changesets: its newest one, and the newest
    it had before (changesets of one changegroup have consecutive numbers from ``first``)."""
    newest: dict[str, str] = {}
    for commit in commits:
        newest[commit["branch"]] = commit["raw_node"]
    updates = []
    for branch, new in newest.items():
        revset = f"max(branch({_revset_string(branch)}) and (:{first} - {first}))"
        old = hg(root, ["log", "-r", revset, "-T", "{node}"]).decode().strip() or None
        updates.append(RefUpdate(branch, RefType.BRANCH, old, new))
    return updates


def _revset_string(value: str) -> str:
    """A revset string literal that matches ``value`` exactly."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'literal:{escaped}'"


def _patches(root: Path, commits: list[dict[str, Any]]) -> dict[str, str]:
    if not commits:
        return {}
    nodes = [c["raw_node"] for c in commits]
    command = hg_command(root, "log", "-p", "-r", "+".join(nodes), "-T", "{node}\\n")
    return collect_patches(command, None, nodes, root, environ=hg_environ())
