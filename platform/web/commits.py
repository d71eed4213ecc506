"""One commit as the platform recorded it from pushes, at
``<CANON_URL>/<owner>/<slug>/commits/<node>``: the page ``${commit.tinyurl}`` (``GET /c/<code>``)
and the brokers' commit links lead to.

Read-only. It shows the commit as the hook reported it (message, author, branch, files
with their change type), its patch when a push carried one, and every push that brought
it with that push's deliveries. ``<node>`` is the full hash or a prefix of at least
:data:`MIN_NODE_CHARS` hex digits (Bitbucket's 12-digit ``node`` included). The same
people see it as the repository's other pages: its signed-in admins.

Nothing is stored for the page: the commit is read from the payloads of the pushes that
hold it (a commit reaches brokers once, so normally one push; a test push's sample commit
may appear in several).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import render_template
from pygments.lexers import DiffLexer
from sqlalchemy import String, cast, select
from sqlalchemy.orm import Session, selectinload

from brokerage.core.errors import NotFoundError
from brokerage.platform import repositories
from brokerage.platform.db import get_session
from brokerage.platform.models import Delivery, Push, Repository
from brokerage.platform.web.review import highlighted
from brokerage.platform.web.support import signed_in, web_blueprint

bp = web_blueprint("web_commits", __name__)

MIN_NODE_CHARS = 7
"""shortest commit id prefix the page accepts (git's own short form)"""
HEX = frozenset("0123456789abcdef")


@dataclass
class CommitRecord:
    """A commit and the pushes that brought it, oldest first."""

    commit: dict[str, Any]
    pushes: list[Push] = field(default_factory=list)
    patch: str | None = None


def _valid_node(node: str) -> str:
    node = node.lower()
    if not MIN_NODE_CHARS <= len(node) <= 40 or not set(node) <= HEX:
        raise NotFoundError(f"{node!r} is not a commit id (give {MIN_NODE_CHARS} to 40 hex digits)")
    return node


def find_commit(session: Session, repo: Repository, node: str) -> CommitRecord:
    """The commit of ``repo`` whose hash starts with ``node``; NotFoundError when no push
    of the repository brought one, or when the prefix names several."""
    node = _valid_node(node)
    # the payload's text narrows the pushes in the database; the commits list decides
    stmt = (
        select(Push)
        .where(Push.repository_id == repo.id, cast(Push.payload, String).contains(node))
        .options(selectinload(Push.deliveries).selectinload(Delivery.attempt_log))
        .order_by(Push.received_at, Push.id)
    )
    found: dict[str, CommitRecord] = {}
    for push in session.scalars(stmt):
        for commit in push.payload.get("commits") or []:
            raw_node = str(commit.get("raw_node") or "").lower()
            if not raw_node.startswith(node):
                continue
            record = found.setdefault(raw_node, CommitRecord(commit))
            record.pushes.append(push)
            patch = (push.patches or {}).get(commit.get("raw_node"))
            if patch and record.patch is None:
                record.patch = patch
    if not found:
        raise NotFoundError(f"no push to {repo.full_name} brought a commit {node}")
    if len(found) > 1:
        raise NotFoundError(
            f"{node} names {len(found)} commits of {repo.full_name}: give more digits "
            f"({', '.join(sorted(n[:12] for n in found))})"
        )
    return next(iter(found.values()))


@bp.get("/<account>/<repo_slug>/commits/<node>")
@bp.get("/repos/<account>/<repo_slug>/commits/<node>")
def show_commit(account: str, repo_slug: str, node: str) -> Any:
    session = get_session()
    repo = repositories.get_administered(session, signed_in(), account, repo_slug)
    record = find_commit(session, repo, node)
    patch_html = highlighted(record.patch, DiffLexer(stripnl=False)) if record.patch else None
    return render_template(
        "repos/commit.html", repo=repo, commit=record.commit, pushes=record.pushes,
        patch_html=patch_html,
    )  # fmt: skip
