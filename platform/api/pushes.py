"""``POST /1.0/repositories/{owner}/{slug}/pushes``: what the hooks call.

Authenticated with the repository's push token (``Authorization: Bearer …``), which
``POST …/push-token`` issues to an admin. Answers 202 with the push and its delivery
ids, or 200 with the same when the push was stored before (a retried hook call).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy import bindparam, select
from sqlalchemy.orm import contains_eager

from brokerage.core.accounts import User
from brokerage.core.errors import AuthenticationError, BadRequestError, NotFoundError
from brokerage.platform import accounts, pushes, repositories
from brokerage.platform.api.auth import authenticate
from brokerage.platform.db import get_session
from brokerage.platform.deliveries import queue as delivery_queue
from brokerage.platform.deliveries.states import DeliveryStatus
from brokerage.platform.models import Push, Repository
from brokerage.platform.paging import page
from brokerage.platform.pushes import shown
from brokerage.platform.runtime import current_runtime

log = logging.getLogger(__name__)

bp = Blueprint("pushes_api", __name__, url_prefix="/1.0/repositories/<account>/<repo_slug>")


_PUSHED_REPOSITORY = (
    select(Repository)
    .join(Repository.owner)
    .options(contains_eager(Repository.owner))
    .where(User.username == bindparam("owner"), Repository.slug == bindparam("slug"))
)
"""``repositories.find_repository``, loading the owner the payload names; built once (building
a statement per request costs more than running it)"""


def _pushing_repository(account: str, repo_slug: str) -> Repository:
    auth = request.authorization
    if auth is None or auth.type != "bearer" or not auth.token:
        raise AuthenticationError("a push needs the repository's push token as a Bearer token")
    repo = get_session().scalar(_PUSHED_REPOSITORY, {"owner": account, "slug": repo_slug})
    if repo is None:
        raise NotFoundError(f"repository {account}/{repo_slug} does not exist")
    if repo.push_token_hash is None or repo.push_token_hash != accounts.hash_secret(auth.token):
        raise AuthenticationError(f"wrong push token for repository {account}/{repo_slug}")
    return repo


@bp.post("/pushes", strict_slashes=False)
def receive_push(account: str, repo_slug: str) -> Any:
    repo = _pushing_repository(account, repo_slug)
    body = request.get_json(silent=True)
    if body is None:
        raise BadRequestError(
            "malformed push: the body must be JSON (Content-Type: application/json)"
        )
    session = get_session()
    stored = pushes.ingest(
        session, repo, pushes.validate_body(body), current_app.config["CANON_URL"]
    )
    answer = stored.shown
    if stored.created:
        session.commit()
        if not delivery_queue.enqueue_stored(current_runtime(), stored.delivery_ids):
            for delivery in answer["deliveries"]:
                delivery["status"] = str(DeliveryStatus.PENDING)
    response = jsonify(answer)
    response.status_code = 202 if stored.created else 200
    return response


@bp.get("/pushes", strict_slashes=False)
def list_pushes(account: str, repo_slug: str) -> Any:
    repo = repositories.get_administered(get_session(), authenticate(), account, repo_slug)
    query = get_session().query(Push).filter(Push.repository_id == repo.id).order_by(Push.id.desc())
    return jsonify([shown(p) for p in page(query)])


@bp.get("/pushes/<int:push_id>", strict_slashes=False)
def show_push(account: str, repo_slug: str, push_id: int) -> Any:
    """One push with the payload its brokers receive (less ``service``, which is per service)."""
    repo = repositories.get_administered(get_session(), authenticate(), account, repo_slug)
    push = get_session().get(Push, push_id)
    if push is None or push.repository_id != repo.id:
        raise NotFoundError(f"push {push_id} does not exist on repository {repo.full_name}")
    return jsonify({**shown(push), "payload": push.payload})


@bp.post("/push-token", strict_slashes=False)
def issue_push_token(account: str, repo_slug: str) -> Any:
    """A new push token for the repository's hook (the old one stops working)."""
    session = get_session()
    repo = repositories.get_administered(session, authenticate(), account, repo_slug)
    secret = repositories.issue_push_token(repo)
    session.commit()
    response = jsonify({"repository": repo.full_name, "token": secret})
    response.status_code = 201
    return response
