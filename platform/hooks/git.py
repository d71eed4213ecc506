"""Collect a git push: the ref updates post-receive reports and the commits new to the
repository, read with a handful of batched git commands after the refs moved."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
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
from brokerage.platform.hooks.scm import Scm, git, git_command

GIT_ZERO = re.compile(r"^0+$")
GIT_AUTHOR = re.compile(r"^(?P<ident>.*) (?P<epoch>-?\d+) (?P<tz>[+-]\d{4})$")
GIT_STATUS = {"A": FileChange.ADDED, "D": FileChange.REMOVED}


def parse_post_receive(lines: Iterable[str]) -> list[RefUpdate]:
    """The branch and tag updates from post-receive's stdin (``<old> <new> <ref>`` lines)."""
    updates = []
    for line in lines:
        parts = line.split()
        if len(parts) != 3:
            continue
        old, new, ref = parts
        ref_type = _ref_type(ref)
        if ref_type is None:
            continue
        updates.append(
            RefUpdate(
                ref,
                ref_type,
                None if GIT_ZERO.match(old) else old,
                None if GIT_ZERO.match(new) else new,
            )
        )
    return updates


def _ref_type(ref: str) -> RefType | None:
    if ref.startswith("refs/heads/"):
        return RefType.BRANCH
    if ref.startswith("refs/tags/"):
        return RefType.TAG
    return None


def collect_git_push(git_dir: Path, updates: list[RefUpdate], *, patches: bool) -> Push:
    """The push's ref updates and the commits they made new, run after the refs moved."""
    excluded = _excluded_tips(git_dir, updates)
    tips = [update.new for update in updates if update.new]
    new_commits = _rev_list(git_dir, tips, excluded, "--topo-order", "--reverse")
    kept = new_commits[-MAX_COMMITS:]
    raw = _cat_commits(git_dir, kept)
    branches = _branches(git_dir, updates, excluded, set(kept))
    commits, files_cut = _commits(git_dir, kept, raw, branches)
    push = Push(Scm.GIT, updates, commits, len(kept) < len(new_commits) or files_cut)
    if patches:
        push.patches = _patches(git_dir, [(sha, raw[sha]["parents"]) for sha in kept])
    return push


def _excluded_tips(git_dir: Path, updates: list[RefUpdate]) -> list[str]:
    """What the repository had before the push: every other ref, and the updated refs' olds."""
    updated = {update.ref for update in updates}
    out = git(git_dir, ["for-each-ref", "--format=%(objectname) %(refname)"])
    lines = out.decode("utf-8", "replace").splitlines()
    others = [sha for sha, _, ref in (line.partition(" ") for line in lines) if ref not in updated]
    return others + [update.old for update in updates if update.old]


def _rev_list(git_dir: Path, tips: list[str], excluded: list[str], *options: str) -> list[str]:
    if not tips:
        return []
    revs = "".join(f"{sha}\n" for sha in tips) + "".join(f"^{sha}\n" for sha in excluded)
    out = git(git_dir, ["rev-list", *options, "--stdin"], stdin=revs.encode())
    return out.decode().split()


def _branches(
    git_dir: Path, updates: list[RefUpdate], excluded: list[str], wanted: set[str]
) -> dict[str, str]:
    """The pushed branch each new commit arrived on.

    A commit goes to the first branch whose first-parent line holds it (so a merged
    feature's commits stay on the feature branch when both are pushed), else to the
    first branch that reaches it. Commits only a tag reaches have no branch.
    """
    branch_of: dict[str, str] = {}
    branch_updates = [u for u in updates if u.type is RefType.BRANCH and u.new]
    for options in (("--first-parent",), ()):
        for update in branch_updates:
            assert update.new is not None
            for sha in _rev_list(git_dir, [update.new], excluded, *options):
                if sha in wanted and sha not in branch_of:
                    branch_of[sha] = update.ref.removeprefix("refs/heads/")
    return branch_of


def _commits(
    git_dir: Path, shas: list[str], raw: Mapping[str, dict[str, Any]], branches: Mapping[str, str]
) -> tuple[list[dict[str, Any]], bool]:
    if not shas:
        return [], False
    files = _files(git_dir, [(sha, raw[sha]["parents"]) for sha in shas])
    commits, any_cut = [], False
    for sha in shas:
        commit, cut = commit_json(
            raw_node=sha,
            branch=branches.get(sha),
            files=files.get(sha, []),
            revision=None,
            **raw[sha],
        )
        commits.append(commit)
        any_cut = any_cut or cut
    return commits, any_cut


def _cat_commits(git_dir: Path, shas: list[str]) -> dict[str, dict[str, Any]]:
    """Parse raw commit objects (one ``git cat-file --batch`` for all of them)."""
    if not shas:
        return {}
    out = git(git_dir, ["cat-file", "--batch"], stdin="".join(f"{s}\n" for s in shas).encode())
    parsed, pos = {}, 0
    for sha in shas:
        header_end = out.index(b"\n", pos)
        size = int(out[pos:header_end].split()[2])
        body = out[header_end + 1 : header_end + 1 + size]
        parsed[sha] = parse_commit_object(body)
        pos = header_end + 1 + size + 1
    return parsed


def parse_commit_object(body: bytes) -> dict[str, Any]:
    """parents, raw_author, epoch, utc_offset and message of a raw git commit object."""
    head, _, message = body.partition(b"\n\n")
    headers = _commit_headers(head)
    raw_author, epoch, offset = _author(headers.get("author", [""])[0])
    return {
        "parents": headers.get("parent", []),
        "raw_author": raw_author,
        "epoch": epoch,
        "utc_offset": offset,
        "message": _decode_message(message, headers.get("encoding", ["utf-8"])[0]),
    }


def _commit_headers(head: bytes) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for line in head.decode("utf-8", "replace").split("\n"):
        if line and not line.startswith(" "):  # continuation lines belong to gpgsig & co
            key, _, value = line.partition(" ")
            headers.setdefault(key, []).append(value)
    return headers


def _decode_message(message: bytes, encoding: str) -> str:
    try:
        return message.decode(encoding, "replace")
    except LookupError:
        return message.decode("utf-8", "replace")


def _author(header: str) -> tuple[str, int, int]:
    """(ident, epoch, offset east of UTC in seconds) of an ``author`` header."""
    author = GIT_AUTHOR.match(header)
    if author is None:
        return header, 0, 0
    return author["ident"], int(author["epoch"]), _tz_seconds(author["tz"])


def _tz_seconds(tz: str) -> int:
    sign = -1 if tz.startswith("-") else 1
    return sign * (int(tz[1:3]) * 3600 + int(tz[3:5]) * 60)


def _files(
    git_dir: Path, commits: list[tuple[str, list[str]]]
) -> dict[str, list[tuple[str, FileChange]]]:
    """Changed files of each commit against its first parent (one ``git diff-tree``)."""
    out = git(
        git_dir,
        ["diff-tree", "--stdin", "-r", "-z", "--root", "--always", "--no-renames", "--name-status"],
        stdin=_diff_tree_input(commits),
    )
    files: dict[str, list[tuple[str, FileChange]]] = {}
    tokens = iter(out.split(b"\0"))
    current: list[tuple[str, FileChange]] = []
    for token in tokens:
        text = token.decode("utf-8", "surrogateescape")
        if len(text) == 1:  # a status letter; the next token is its path
            path = next(tokens).decode("utf-8", "replace")
            current.append((path, GIT_STATUS.get(text, FileChange.MODIFIED)))
        elif text:
            current = files.setdefault(text.strip(), [])
    return files


def _diff_tree_input(commits: list[tuple[str, list[str]]]) -> bytes:
    """``<commit> <first parent>`` lines: a merge is diffed against its first parent only."""
    return "".join(
        f"{sha} {parents[0]}\n" if parents else f"{sha}\n" for sha, parents in commits
    ).encode()


def _patches(git_dir: Path, commits: list[tuple[str, list[str]]]) -> dict[str, str]:
    command = git_command(
        git_dir,
        "diff-tree",
        "--stdin",
        "-p",
        "-r",
        "--root",
        "--always",
        "--no-renames",
        "--no-color",
    )
    nodes = [sha for sha, _ in commits]
    return collect_patches(command, _diff_tree_input(commits), nodes, git_dir)
