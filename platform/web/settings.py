"""A repository's settings pages: create a repository, see and rotate its push token (shown
once, when issued, as ``POST …/push-token`` answers it), the ``brokerage hook install``
line to copy onto the server that hosts the repository, and its admins.

Every action calls what the REST API calls (``repositories.create_repository`` /
``issue_push_token`` / ``add_admin`` / ``remove_admin``). A page that shows a fresh token
is the answer to the POST that issued it (never a redirect: the secret is not kept
anywhere to show again) and is marked ``no-store``.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any

from flask import flash, render_template, request
from werkzeug.wrappers import Response

from brokerage.core.errors import BadRequestError, ConflictError, NotFoundError
from brokerage.platform import repositories
from brokerage.platform.db import get_session
from brokerage.platform.models import Repository, Scm
from brokerage.platform.web.support import back, runtime, signed_in, web_blueprint

bp = web_blueprint("web_settings", __name__)

REPO = "/repos/<account>/<repo_slug>/settings"
HOOK_PATHS = {Scm.GIT: "/srv/git/{slug}.git", Scm.HG: "/srv/hg/{slug}"}
"""example server paths in the hook line (the admin replaces them with the real one)"""
TOKEN_PLACEHOLDER = "$PUSH_TOKEN"


def administered(account: str, repo_slug: str) -> Repository:
    return repositories.get_administered(get_session(), signed_in(), account, repo_slug)


def hook_line(repo: Repository, base_url: str, token: str | None) -> str:
    """The ``brokerage hook install`` command for this repository, ready to paste (the
    token in clear only when it was just issued; else a shell variable to fill in)."""
    path = HOOK_PATHS.get(Scm(repo.scm), HOOK_PATHS[Scm.GIT]).format(slug=repo.slug)
    token_arg = shlex.quote(token) if token else f'"{TOKEN_PLACEHOLDER}"'
    return (
        f"brokerage hook install --url {shlex.quote(base_url.rstrip('/'))} "
        f"--repo {shlex.quote(repo.full_name)} --token {token_arg} --path {path}"
    )


def _settings_page(repo: Repository, token: str | None = None, status: int = 200) -> Any:
    base_url = str(runtime().config.get("CANON_URL") or request.url_root)
    page = render_template(
        "repos/settings.html",
        repo=repo,
        token=token,
        hook=hook_line(repo, base_url, token),
        example_path=HOOK_PATHS.get(Scm(repo.scm), HOOK_PATHS[Scm.GIT]).format(slug=repo.slug),
        placeholder=TOKEN_PLACEHOLDER,
    )
    response = Response(page, status=status, mimetype="text/html")
    if token:
        response.headers["Cache-Control"] = "no-store"
    return response


# -- creating ---------------------------------------------------------------------------


@bp.get("/repos/new")
def new_repository() -> Any:
    signed_in()
    return _new_form({"scm": "git", "is_private": "true"}, None)


def _new_form(values: dict[str, str], error: str | None) -> Any:
    page = render_template("repos/new.html", values=values, error=error, scms=list(Scm))
    return page, (400 if error else 200)


@bp.post("/repos/new")
def create_repository() -> Any:
    owner = signed_in()
    session = get_session()
    values = {key: request.form.get(key, "").strip() for key in ("name", "slug", "scm", "website")}
    values["is_private"] = "true" if request.form.get("is_private") else ""
    try:
        repo = repositories.create_repository(
            session,
            owner,
            values["name"],
            slug=values["slug"] or None,
            scm=values["scm"] or Scm.GIT,
            is_private=bool(values["is_private"]),
            website=values["website"],
        )
    except (BadRequestError, ConflictError) as exc:
        session.rollback()
        return _new_form(values, exc.message)
    token = repositories.issue_push_token(repo)
    session.commit()
    flash(f"Created {repo.full_name}. Copy its push token now: it is shown only once.", "success")
    return _settings_page(repo, token, status=201)


# -- a repository's settings ----------------------------------------------------------------


@bp.get(REPO)
def show_settings(account: str, repo_slug: str) -> Any:
    return _settings_page(administered(account, repo_slug))


@bp.post(REPO + "/push-token")
def rotate_push_token(account: str, repo_slug: str) -> Any:
    repo = administered(account, repo_slug)
    had_one = repo.push_token_hash is not None
    token = repositories.issue_push_token(repo)
    get_session().commit()
    flash(
        ("New push token issued; the old one no longer works. " if had_one else
         "Push token issued. ") + "Copy it now: it is shown only once.",
        "success",
    )  # fmt: skip
    return _settings_page(repo, token)


@bp.post(REPO + "/admins")
def add_admin(account: str, repo_slug: str) -> Any:
    repo = administered(account, repo_slug)
    username = request.form.get("username", "").strip()
    if username == repo.owner.username:
        flash(f"{username} owns the repository and administers it already.", "warning")
    elif _apply(lambda: repositories.add_admin(get_session(), repo, username)):
        flash(f"{username} is now an admin of {repo.full_name}.", "success")
    return back("web_settings.show_settings", account=account, repo_slug=repo_slug)


@bp.post(REPO + "/admins/remove")
def remove_admin(account: str, repo_slug: str) -> Any:
    repo = administered(account, repo_slug)
    username = request.form.get("username", "").strip()
    if not _apply(lambda: repositories.remove_admin(get_session(), repo, username)):
        return back("web_settings.show_settings", account=account, repo_slug=repo_slug)
    flash(f"{username} is no longer an admin of {repo.full_name}.", "success")
    me = signed_in()
    if username == me.username and not repositories.can_administer(me, repo):
        return back("web_auth.home")
    return back("web_settings.show_settings", account=account, repo_slug=repo_slug)


def _apply(change: Callable[[], None]) -> bool:
    """Run a change and commit it; on a refusal (an unknown user, say) roll back and say
    why on the settings page. Whether it was applied."""
    try:
        change()
    except (BadRequestError, NotFoundError) as exc:
        get_session().rollback()
        flash(exc.message, "error")
        return False
    get_session().commit()
    return True
