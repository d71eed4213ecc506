"""``/1.0/users`` (operators create accounts) and ``/1.0/user`` (yourself and your tokens)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from brokerage.core.accounts import ApiToken, Role, User
from brokerage.core.errors import BadRequestError
from brokerage.platform import accounts
from brokerage.platform.api.auth import authenticate, require_role
from brokerage.platform.api.support import json_or_form
from brokerage.platform.db import get_session

bp = Blueprint("users_api", __name__, url_prefix="/1.0")


def _shown(user: User) -> dict[str, Any]:
    return {"username": user.username, "email": user.email, "roles": sorted(user.roles)}


def _token_shown(token: ApiToken) -> dict[str, Any]:
    return {
        "id": token.id,
        "name": token.name,
        "prefix": token.prefix,
        "created_at": token.created_at.isoformat(),
        "revoked": token.revoked_at is not None,
    }


def parse_roles(text: str) -> set[Role]:
    try:
        return {Role(r.strip()) for r in text.replace(",", " ").split()}
    except ValueError as exc:
        raise BadRequestError(f"roles: each one of {', '.join(Role)}") from exc


@bp.post("/users", strict_slashes=False)
def create_user() -> Any:
    require_role(Role.OPERATOR)
    params = json_or_form()
    session = get_session()
    user = accounts.create_user(
        session,
        str(params.get("username", "")),
        str(params.get("password", "")),
        email=str(params.get("email", "")),
        roles=parse_roles(str(params.get("roles", ""))),
    )
    session.commit()
    response = jsonify(_shown(user))
    response.status_code = 201
    return response


@bp.get("/user", strict_slashes=False)
def me() -> Any:
    return jsonify(_shown(authenticate()))


@bp.get("/user/tokens", strict_slashes=False)
def list_tokens() -> Any:
    return jsonify([_token_shown(t) for t in authenticate().tokens])


@bp.post("/user/tokens", strict_slashes=False)
def create_token() -> Any:
    """Form or JSON ``name``. The token is in the answer once and never again."""
    user = authenticate()
    name = str(json_or_form().get("name", "")).strip() or "api"
    token, secret = accounts.issue_token(get_session(), user, name)
    get_session().commit()
    response = jsonify({**_token_shown(token), "token": secret})
    response.status_code = 201
    return response


@bp.delete("/user/tokens/<int:token_id>", strict_slashes=False)
def revoke_token(token_id: int) -> Any:
    accounts.revoke_token(get_session(), authenticate(), token_id)
    get_session().commit()
    return Response(status=204)
