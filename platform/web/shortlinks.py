"""``GET /c/<code>``: the short commit links of ``${commit.tinyurl}``.

The code is computed by brokers inside the sandbox
(``sandbox/runner/sdk_shortlinks.py``) from owner, slug and node; here it is
resolved against the commits the repository reported (``seen_commits``) and
answered with a redirect to the commit's page, ``<CANON_URL>/<owner>/<slug>/commits/<node>``
(``web_commits``: the same URL the brokers' commit links use, so it is built here from
``CANON_URL`` rather than with ``url_for``).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, redirect
from sqlalchemy import select

from brokerage.core.errors import NotFoundError
from brokerage.platform.db import get_session
from brokerage.platform.models import Repository, SeenCommit
from brokerage.sandbox.runner import sdk_shortlinks

bp = Blueprint("shortlinks", __name__)

PREFIX_MATCHES_CHECKED = 50
"""commits sharing a 12-hex prefix that are checked for the repository tag (in practice 1)"""


def resolve(code: str) -> tuple[Repository, str] | None:
    """The repository and full node a code names; None when it names nothing known."""
    try:
        tag, prefix = sdk_shortlinks.parse_code(code)
    except ValueError:
        return None
    session = get_session()
    rows = session.execute(
        select(Repository, SeenCommit.raw_node)
        .join(SeenCommit, SeenCommit.repository_id == Repository.id)
        .where(SeenCommit.raw_node.startswith(prefix, autoescape=True))
        .limit(PREFIX_MATCHES_CHECKED)
    ).all()
    for repo, raw_node in rows:
        if sdk_shortlinks.repository_tag(repo.owner.username, repo.slug) == tag:
            return repo, raw_node
    return None


@bp.get("/c/<code>")
def follow(code: str) -> Any:
    found = resolve(code)
    if found is None:
        raise NotFoundError(f"no commit has the short link {code}")
    repo, raw_node = found
    base = str(current_app.config["CANON_URL"]).rstrip("/")
    return redirect(f"{base}/{repo.owner.username}/{repo.slug}/commits/{raw_node}", code=302)
