"""``/1.0/repositories/{account}/{repo_slug}/issues`` — the repository's issue tracker.

::

    GET    …/issues                      list (``?status=resolved``)
    POST   …/issues                      create (title, content[, status])
    GET    …/issues/{id}                 one issue with its comments
    PUT    …/issues/{id}                 change status (and title/content)
    POST   …/issues/{id}/comments        comment (content)
    POST   …/issues/{id}/changesets      apply a changeset's command once (the Issues broker)

Parameters come as a form or a JSON object. Who may: anyone reads a public
repository's tracker; an authenticated user writes to it; a private tracker is
its admins' only. A broker reaches this API through the gateway with a delivery
token (``api_access``) scoped to the delivery's repository and its manifest's
``issues:read``/``issues:write``; ``changesets`` takes a delivery token or an admin.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from brokerage.core import issues as rules
from brokerage.core.errors import ForbiddenError, NotFoundError
from brokerage.platform.api import broker_access as api_access
from brokerage.platform.api.auth import authenticate
from brokerage.platform.api.support import json_or_form
from brokerage.platform.db import get_session
from brokerage.platform.issues import tracker
from brokerage.platform.models import Repository
from brokerage.platform.repositories import can_administer, find_repository

bp = Blueprint("issues_api", __name__, url_prefix="/1.0/repositories/<account>/<repo_slug>/issues")


def _tracker(
    account: str, repo_slug: str, write: bool, admin_only: bool = False
) -> tuple[Repository, str]:
    """The repository whose tracker the caller may read (or write), and the caller's name."""
    session = get_session()
    repo = find_repository(session, account, repo_slug)
    grant = api_access.grant_from_request(session)
    if grant is not None:
        return grant.require(repo, "issues:write" if write else "issues:read"), grant.actor
    if repo is not None and not repo.is_private and not write:
        return repo, ""
    user = authenticate()
    if repo is None or (repo.is_private and not can_administer(user, repo)):
        raise NotFoundError(f"repository {account}/{repo_slug} does not exist")
    if admin_only and not can_administer(user, repo):
        raise ForbiddenError(f"you are not an admin of repository {account}/{repo_slug}")
    return repo, user.username


@bp.get("", strict_slashes=False)
def list_issues(account: str, repo_slug: str) -> Any:
    repo, _ = _tracker(account, repo_slug, write=False)
    issues = tracker.list_issues(get_session(), repo, request.args.get("status"))
    return jsonify({"count": len(issues), "issues": [tracker.serialize(i) for i in issues]})


@bp.post("", strict_slashes=False)
def create_issue(account: str, repo_slug: str) -> Any:
    repo, actor = _tracker(account, repo_slug, write=True)
    params = json_or_form()
    issue = tracker.create_issue(get_session(), repo, rules.text_param(params, "title"),
                                 rules.text_param(params, "content", ""), actor,
                                 params.get("status"))  # fmt: skip
    get_session().commit()
    return jsonify(tracker.serialize(issue, with_comments=True)), 201


@bp.get("/<int:issue_id>", strict_slashes=False)
def show_issue(account: str, repo_slug: str, issue_id: int) -> Any:
    repo, _ = _tracker(account, repo_slug, write=False)
    issue = tracker.get_issue(get_session(), repo, issue_id)
    return jsonify(tracker.serialize(issue, with_comments=True))


@bp.put("/<int:issue_id>", strict_slashes=False)
def update_issue(account: str, repo_slug: str, issue_id: int) -> Any:
    repo, _ = _tracker(account, repo_slug, write=True, admin_only=True)
    issue = tracker.get_issue(get_session(), repo, issue_id)
    params = json_or_form()
    if "status" in params:
        tracker.set_status(issue, rules.text_param(params, "status"))
    if "title" in params:
        issue.title = rules.text_param(params, "title").strip() or issue.title
    if "content" in params:
        issue.content = rules.text_param(params, "content")
    get_session().commit()
    return jsonify(tracker.serialize(issue, with_comments=True))


@bp.post("/<int:issue_id>/comments", strict_slashes=False)
def comment(account: str, repo_slug: str, issue_id: int) -> Any:
    repo, actor = _tracker(account, repo_slug, write=True)
    issue = tracker.get_issue(get_session(), repo, issue_id)
    added = tracker.add_comment(
        get_session(), issue, actor, rules.text_param(json_or_form(), "content")
    )
    get_session().commit()
    return jsonify(tracker.serialize_comment(added)), 201


@bp.post("/<int:issue_id>/changesets", strict_slashes=False)
def apply_changeset(account: str, repo_slug: str, issue_id: int) -> Any:
    repo, _ = _tracker(account, repo_slug, write=True, admin_only=True)
    session = get_session()
    grant = api_access.grant_from_request(session)
    issue = tracker.get_issue(session, repo, issue_id)
    params = json_or_form()
    applied = tracker.apply_changeset(session, issue, rules.text_param(params, "command"), params,
                                      grant.delivery_id if grant else None)  # fmt: skip
    session.commit()
    issue = tracker.get_issue(session, repo, issue_id)
    body = {"applied": applied, "issue": tracker.serialize(issue)}
    return jsonify(body), 201 if applied else 200
