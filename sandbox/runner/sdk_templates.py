"""``${repository.name} - ${commit.author} - ${commit.message}`` templates, as the classic
Twitter and FriendFeed brokers had them.

Names: ``repository.<key>`` for every key of the payload's repository
(``name``, ``slug``, ``owner``, ``absolute_url``, ``website``, ``scm``),
``commit.<key>`` for every key of the commit (``author``, ``message``, ``node``,
``raw_node``, ``branch``, ``timestamp``, ...) plus ``commit.url`` and
``commit.tinyurl`` (a short link the platform serves, ``<canon_url>/c/<code>``),
and ``user``. ``commit.message`` is its first line. An unknown name stays as
written, so a typo shows in the output instead of vanishing.

Runs inside the sandbox: standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import sdk_shortlinks

PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)\}")


def commit_url(payload: Mapping[str, Any], commit: Mapping[str, Any]) -> str:
    """The commit's page on the platform: ``<canon_url><absolute_url>commits/<raw_node>``."""
    repository = payload.get("repository") or {}
    base = str(payload.get("canon_url", "")).rstrip("/")
    path = str(repository.get("absolute_url") or "/").rstrip("/")
    return f"{base}{path}/commits/{commit.get('raw_node') or commit.get('node', '')}"


def tinyurl(payload: Mapping[str, Any], commit: Mapping[str, Any]) -> str:
    """The platform's short link to ``commit``; its full URL when the node is unusable."""
    repository = payload.get("repository") or {}
    node = str(commit.get("raw_node") or commit.get("node") or "")
    try:
        return sdk_shortlinks.short_url(str(payload.get("canon_url", "")),
                                        str(repository.get("owner", "")),
                                        str(repository.get("slug", "")), node)  # fmt: skip
    except ValueError:
        return commit_url(payload, commit)


def template_values(
    payload: Mapping[str, Any], commit: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """Every name a template may use, for ``commit`` (default: the push's last commit)."""
    if commit is None:
        commits = payload.get("commits") or [{}]
        commit = commits[-1]
    values = {f"repository.{k}": str(v) for k, v in (payload.get("repository") or {}).items()}
    values.update({f"commit.{k}": str(v) for k, v in commit.items() if not isinstance(v, list)})
    values["commit.message"] = str(commit.get("message", "")).strip().split("\n")[0]
    if commit:
        values["commit.url"] = commit_url(payload, commit)
        values["commit.tinyurl"] = tinyurl(payload, commit)
    values["user"] = str(payload.get("user", ""))
    return values


def render(
    template: str, payload: Mapping[str, Any], commit: Mapping[str, Any] | None = None
) -> str:
    """``template`` with every known ``${name}`` replaced."""
    values = template_values(payload, commit)
    return PLACEHOLDER.sub(lambda match: values.get(match.group(1), match.group(0)), template)
