"""``/1.0/repositories/{account}/{repo_slug}/services`` — the services resource
(compatible with Bitbucket's 1.0 services API), with and without the
trailing slash. Every call authenticates and must come from an admin of the repository."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from brokerage.platform import services
from brokerage.platform.api.auth import authenticate
from brokerage.platform.api.support import cipher, form_params
from brokerage.platform.db import get_session
from brokerage.platform.models import Repository
from brokerage.platform.repositories import get_administered

bp = Blueprint(
    "services_api", __name__, url_prefix="/1.0/repositories/<account>/<repo_slug>/services"
)


def _repository(account: str, repo_slug: str) -> Repository:
    return get_administered(get_session(), authenticate(), account, repo_slug)


@bp.get("", strict_slashes=False)
def list_services(account: str, repo_slug: str) -> Any:
    repo = _repository(account, repo_slug)
    return jsonify([services.serialize(s, cipher()) for s in repo.services])


@bp.post("", strict_slashes=False)
def add_service(account: str, repo_slug: str) -> Any:
    repo = _repository(account, repo_slug)
    params = form_params()
    service = services.add_service(get_session(), repo, params, cipher())
    get_session().commit()
    return jsonify(services.serialize(service, cipher()))


@bp.get("/<int:service_id>", strict_slashes=False)
def get_service(account: str, repo_slug: str, service_id: int) -> Any:
    service = services.get_service(_repository(account, repo_slug), service_id)
    # The services API answers a single GET as a one-element list; we keep that shape.
    return jsonify([services.serialize(service, cipher())])


@bp.put("/<int:service_id>", strict_slashes=False)
def update_service(account: str, repo_slug: str, service_id: int) -> Any:
    service = services.get_service(_repository(account, repo_slug), service_id)
    warning = services.update_service(service, form_params(), cipher())
    get_session().commit()
    response: Response = jsonify(services.serialize(service, cipher()))
    if warning:
        response.headers["X-Brokerage-Warning"] = warning
    return response


@bp.delete("/<int:service_id>", strict_slashes=False)
def delete_service(account: str, repo_slug: str, service_id: int) -> Any:
    repo = _repository(account, repo_slug)
    service = services.get_service(repo, service_id)
    get_session().delete(service)
    get_session().commit()
    return Response(status=204)
