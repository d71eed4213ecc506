"""A repository's issue tracker, read in the browser: the list (by status, paginated) and
one issue with its comments — the changesets the Issues broker linked among them.

Reads go through ``tracker`` (the REST API's own functions and shapes); the same people
may read as through the API, less anonymous readers (pages need a signed-in user).
"""

from __future__ import annotations

from typing import Any

from flask import render_template, request
from sqlalchemy import select

from brokerage.core import issues as rules
from brokerage.core.errors import NotFoundError
from brokerage.platform.db import get_session
from brokerage.platform.issues import tracker
from brokerage.platform.models import Repository
from brokerage.platform.paging import paginate
from brokerage.platform.repositories import can_administer, find_repository
from brokerage.platform.web.support import signed_in, web_blueprint

bp = web_blueprint("web_issues", __name__, url_prefix="/repos/<account>/<repo_slug>")


def _readable(account: str, repo_slug: str) -> Repository:
    user = signed_in()
    repo = find_repository(get_session(), account, repo_slug)
    if repo is None or (repo.is_private and not can_administer(user, repo)):
        raise NotFoundError(f"repository {account}/{repo_slug} does not exist")
    return repo


@bp.get("/issues")
def list_issues(account: str, repo_slug: str) -> Any:
    repo = _readable(account, repo_slug)
    status = request.args.get("status", "")
    stmt = select(tracker.Issue).where(tracker.Issue.repository_id == repo.id)
    if status:
        stmt = stmt.where(tracker.Issue.status == rules.parse_status(status))
    stmt = stmt.order_by(tracker.Issue.local_id.desc())
    return render_template("repos/issues.html", repo=repo, status=status,
                           statuses=list(rules.IssueStatus),
                           issues=paginate(get_session(), stmt, tracker.serialize))  # fmt: skip


@bp.get("/issues/<int:issue_id>")
def show_issue(account: str, repo_slug: str, issue_id: int) -> Any:
    repo = _readable(account, repo_slug)
    issue = tracker.get_issue(get_session(), repo, issue_id)
    return render_template("repos/issue.html", repo=repo,
                           issue=tracker.serialize(issue, with_comments=True))  # fmt: skip
