"""The push a hook sends: ref updates and new commits in the payload's commit shape, and the
request body built from them (``schemas/push.schema.json``), within the documented caps."""

from __future__ import annotations

import getpass
import json
import os
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from pathlib import Path
from typing import Any

from brokerage.platform.hooks.scm import Scm

MAX_COMMITS = 1000
"""commits per push; when more are new, the newest MAX_COMMITS are sent and ``truncated`` is set."""

MAX_FILES_PER_COMMIT = 1000
"""files listed per commit; the rest are left out and ``truncated`` is set."""

MAX_REFS = 1000
"""ref updates per push; the rest are left out and ``truncated`` is set."""

MAX_BODY_BYTES = 8 * 1024 * 1024
"""bytes of one request body (UTF-8 JSON); over it, patches are dropped first, then the
oldest commits (``truncated``). The platform must accept bodies of this size."""

PUSHER_VARIABLES = ("BROKERAGE_USER", "REMOTE_USER", "GL_USERNAME", "GL_USER")
"""Environment variables naming the pusher, most specific first; the OS user is the fallback."""

SCHEMA_PATH = Path(__file__).parents[1] / "schemas" / "push.schema.json"


class RefType(StrEnum):
    BRANCH = "branch"
    TAG = "tag"


class FileChange(StrEnum):
    ADDED = "added"
    MODIFIED = "modified"
    REMOVED = "removed"


def push_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) every push body satisfies."""
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return loaded


@dataclass(frozen=True)
class RefUpdate:
    ref: str
    type: RefType
    old: str | None
    new: str | None

    def to_json(self) -> dict[str, Any]:
        return {"ref": self.ref, "type": str(self.type), "old": self.old, "new": self.new}


@dataclass
class Push:
    """What one hook run read from the repository, before it becomes a request body."""

    scm: Scm
    refs: list[RefUpdate]
    commits: list[dict[str, Any]]
    truncated: bool = False
    patches: dict[str, str] | None = None
    user: str = field(default_factory=lambda: pusher())

    def is_empty(self) -> bool:
        return not self.refs and not self.commits

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "scm": str(self.scm),
            "user": self.user,
            "push_id": str(uuid.uuid4()),
            "pushed_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S+00:00"),
            "refs": [ref.to_json() for ref in self.refs[:MAX_REFS]],
            "commits": self.commits,
            "truncated": self.truncated or len(self.refs) > MAX_REFS,
        }
        if self.patches is not None:
            body["patches"] = self.patches
        return fit_body(body)


def fit_body(body: dict[str, Any]) -> dict[str, Any]:
    """Shrink a body over MAX_BODY_BYTES: drop its patches, then its oldest commits."""
    if _json_size(body) <= MAX_BODY_BYTES:
        return body
    body.pop("patches", None)
    excess = _json_size(body) - MAX_BODY_BYTES
    commits = body["commits"]
    dropped = 0
    while excess > 0 and dropped < len(commits):
        excess -= _json_size(commits[dropped]) + 2  # the ", " between items
        dropped += 1
    if dropped:
        body["commits"] = commits[dropped:]
        body["truncated"] = True
    return body


def _json_size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False).encode())


def pusher(environ: Mapping[str, str] = os.environ) -> str:
    """Who pushed: the first of PUSHER_VARIABLES that is set, else the OS user of the hook."""
    for name in PUSHER_VARIABLES:
        if environ.get(name):
            return environ[name]
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry for the uid (containers)
        return f"uid-{os.getuid()}"


def commit_json(
    *,
    raw_node: str,
    parents: Sequence[str],
    branch: str | None,
    raw_author: str,
    epoch: int,
    utc_offset: int,
    message: str,
    files: Sequence[tuple[str, FileChange]],
    revision: int | None,
) -> tuple[dict[str, Any], bool]:
    """One commit in the payload's shape (docs/design.md), and whether its file list was cut.

    ``utc_offset`` is the author's offset east of UTC in seconds.
    """
    when = datetime.fromtimestamp(epoch, timezone(timedelta(seconds=utc_offset)))
    commit = {
        "author": author_name(raw_author),
        "branch": branch,
        "files": [{"file": name, "type": str(kind)} for name, kind in files[:MAX_FILES_PER_COMMIT]],
        "message": message,
        "node": raw_node[:12],
        "parents": [parent[:12] for parent in parents],
        "raw_author": raw_author,
        "raw_node": raw_node,
        "revision": revision,
        "size": -1,
        "timestamp": when.strftime("%Y-%m-%d %H:%M:%S"),
        "utctimestamp": when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S+00:00"),
    }
    return commit, len(files) > MAX_FILES_PER_COMMIT


def author_name(raw_author: str) -> str:
    """The user part of the author's e-mail address (as in the payload), else the name."""
    match = re.search(r"<([^<>@]+)@[^<>]*>", raw_author)
    if match:
        return match.group(1)
    return raw_author.split("<", 1)[0].strip() or raw_author
