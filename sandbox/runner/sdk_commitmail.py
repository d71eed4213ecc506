"""Commit notification mails, as Bitbucket's Email and Email Diff brokers wrote them.

The Email subject rules (docs/design.md): one changeset →
``commit/<project>: <user>: <commit msg>``;
two or more → ``commit/<project>: <x> new changesets``. ``<project>`` is the
repository's slug, ``<user>`` the changeset's author, ``<commit msg>`` the
message's first line. The body lists every changeset (the aggregate), each
with its link, author, date, branch, message and files; with ``diffs`` it adds
each changeset's patch from ``payload["patches"]`` (keyed by raw_node; the
platform includes them for brokers with the ``repository:read`` permission).

Runs inside the sandbox: standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import brokerage_sdk
import sdk_templates

SUBJECT_MAX_CHARS = 200
"""a longer first line is cut (with an ellipsis): mail clients show ~80 anyway"""
LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@" + LABEL + r"(?:\." + LABEL + ")+")
"""what the platform's mailer accepts: a bare address"""


def recipients(value: Any, label: str = "Email") -> list[str]:
    """The addresses of a (comma-separated) email field; ConfigurationError if unusable."""
    addresses = [a.strip() for a in re.split(r"[,;\s]+", str(value or "")) if a.strip()]
    if not addresses:
        raise brokerage_sdk.ConfigurationError(f"{label}: required; give at least one address")
    bad = [a for a in addresses if not ADDRESS.fullmatch(a)]
    if bad:
        raise brokerage_sdk.ConfigurationError(f"{label}: not an email address: {', '.join(bad)}")
    return addresses


def first_line(message: str) -> str:
    line = " ".join((message or "").strip().split("\n")[0].split())
    if len(line) > SUBJECT_MAX_CHARS:
        return line[: SUBJECT_MAX_CHARS - 1] + "…"
    return line


def project(payload: Mapping[str, Any]) -> str:
    repository = payload.get("repository") or {}
    return str(repository.get("slug") or repository.get("name") or "")


def subject(payload: Mapping[str, Any]) -> str:
    commits = payload.get("commits") or []
    if len(commits) == 1:
        author, message = commits[0].get("author", ""), commits[0].get("message", "")
        return f"commit/{project(payload)}: {author}: {first_line(message)}"
    return f"commit/{project(payload)}: {len(commits)} new changesets"


def changeset_text(payload: Mapping[str, Any], commit: Mapping[str, Any]) -> str:
    lines = [
        sdk_templates.commit_url(payload, commit),
        f"Changeset:   {commit.get('node', '')}",
        f"User:        {commit.get('raw_author') or commit.get('author', '')}",
        f"Date:        {commit.get('utctimestamp') or commit.get('timestamp', '')}",
        f"Branch:      {commit.get('branch') or ''}",
        "",
        str(commit.get("message", "")).rstrip(),
        "",
    ]
    files = commit.get("files") or []
    lines.append(f"Affected #:  {len(files)} file{'' if len(files) == 1 else 's'}")
    lines += [f"  {f.get('type', ''):<9}{f.get('file', '')}" for f in files]
    return "\n".join(lines)


def body(payload: Mapping[str, Any], diffs: bool = False) -> str:
    commits = payload.get("commits") or []
    repository = payload.get("repository") or {}
    count = len(commits)
    where = f"{repository.get('owner', '')}/{repository.get('slug', '')}"
    parts = [f"{count} new changeset{'' if count == 1 else 's'} in {where}:"]
    patches = payload.get("patches") or {}
    for commit in commits:
        parts.append(changeset_text(payload, commit))
        if diffs:
            parts.append(patch_text(patches, commit))
    if payload.get("truncated"):
        parts.append("(This push had more changesets than one notification carries.)")
    parts.append(f"--\nRepository URL: {repository_page(payload)}")
    return "\n\n".join(parts) + "\n"


def repository_page(payload: Mapping[str, Any]) -> str:
    """The repository's web page on the platform (``<canon_url>/repos/<owner>/<slug>/``):
    a page a person opens, never an API endpoint."""
    repository = payload.get("repository") or {}
    base = str(payload.get("canon_url", "")).rstrip("/")
    return f"{base}/repos/{repository.get('owner', '')}/{repository.get('slug', '')}/"


def patch_text(patches: Mapping[str, str], commit: Mapping[str, Any]) -> str:
    patch = patches.get(str(commit.get("raw_node", "")))
    if patch is None:
        return "(no diff available for this changeset)"
    return patch.rstrip("\n")
