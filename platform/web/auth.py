"""Signing in and out of the web pages (the API's accounts and passwords), and the home
page: the repositories you administer and the areas your roles open."""

from __future__ import annotations

from typing import Any

from flask import current_app, redirect, render_template, request
from flask.blueprints import BlueprintSetupState

from brokerage.platform import accounts, repositories, signin
from brokerage.platform.db import get_session
from brokerage.platform.paging import paginate_list
from brokerage.platform.web.support import (
    back,
    current_user,
    safe_next,
    sign_in,
    sign_out,
    signed_in,
    web_blueprint,
)

bp = web_blueprint("web_auth", __name__)


@bp.record_once
def _cookie_defaults(state: BlueprintSetupState) -> None:
    app = state.app
    # Lax keeps the session cookie off cross-site POSTs: a second wall behind the CSRF token.
    if app.config.get("SESSION_COOKIE_SAMESITE") is None:
        app.config["SESSION_COOKIE_SAMESITE"] = "Lax"


@bp.get("/login")
def login() -> Any:
    if current_user() is not None:
        return back("web_auth.home")
    return render_template("login.html", next=request.args.get("next", ""), error=None)


@bp.post("/login")
def login_post() -> Any:
    username = request.form.get("username", "").strip()
    config, address = current_app.config, request.remote_addr
    try:
        signin.check_allowed(get_session(), config, username, address)
    except signin.TooManySignInsError as exc:
        return _login_page(username, f"{exc.message}."), 429
    user = accounts.check_password(get_session(), username, request.form.get("password", ""))
    if user is None:
        sessions = current_app.extensions["brokerage.sessionmaker"]
        signin.record_failure(sessions, config, username, address)
        return _login_page(username, "Wrong username or password."), 401
    sign_in(user)
    return redirect(safe_next(request.form.get("next")), code=303)


def _login_page(username: str, error: str) -> str:
    return render_template(
        "login.html", next=request.form.get("next", ""), username=username, error=error
    )


@bp.post("/logout")
def logout() -> Any:
    sign_out()
    return back("web_auth.login")


@bp.get("/")
def home() -> Any:
    repos = repositories.administered_by(get_session(), signed_in())
    return render_template("home.html", repos=paginate_list(repos))
