"""``/1.0/repositories``: create, list (those you administer) and show repositories."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from brokerage.core.accounts import Role
from brokerage.core.errors import ForbiddenError
from brokerage.platform import accounts, repositories
from brokerage.platform.api.auth import authenticate
from brokerage.platform.api.support import flag, json_or_form
from brokerage.platform.db import get_session
from brokerage.platform.models import Repository

bp = Blueprint("repositories_api", __name__, url_prefix="/1.0/repositories")


def _shown(repo: Repository) -> dict[str, Any]:
    return {
        **repositories.describe(repo),
        "full_name": repo.full_name,
        "admins": sorted(u.username for u in repo.admins),
    }


@bp.get("", strict_slashes=False)
def list_repositories() -> Any:
    user = authenticate()
    return jsonify([_shown(r) for r in repositories.administered_by(get_session(), user)])


@bp.post("", strict_slashes=False)
def create_repository() -> Any:
    """Form or JSON: ``name`` (required), ``slug``, ``scm`` (git|hg), ``is_private``,
    ``website``, ``fork``; operators may pass ``owner`` to create for another account."""
    user = authenticate()
    params = json_or_form()
    session = get_session()
    owner = user
    if params.get("owner") and params["owner"] != user.username:
        if not user.has_role(Role.OPERATOR):
            raise ForbiddenError("only operators create repositories for other accounts")
        owner = accounts.get_user(session, str(params["owner"]))
    repo = repositories.create_repository(
        session,
        owner,
        str(params.get("name", "")),
        slug=str(params["slug"]) if params.get("slug") else None,
        scm=str(params.get("scm", "git")),
        is_private=flag(params, "is_private", True),
        website=str(params.get("website", "")),
        fork=flag(params, "fork", False),
    )
    session.commit()
    response = jsonify(_shown(repo))
    response.status_code = 201
    return response


@bp.get("/<account>/<repo_slug>", strict_slashes=False)
def show_repository(account: str, repo_slug: str) -> Any:
    repo = repositories.get_administered(get_session(), authenticate(), account, repo_slug)
    return jsonify(_shown(repo))


@bp.post("/<account>/<repo_slug>/admins", strict_slashes=False)
def add_admin(account: str, repo_slug: str) -> Any:
    """Form or JSON ``username``: make that user an admin of this repository."""
    session = get_session()
    repo = repositories.get_administered(session, authenticate(), account, repo_slug)
    repositories.add_admin(session, repo, str(json_or_form().get("username", "")))
    session.commit()
    return jsonify(_shown(repo))
