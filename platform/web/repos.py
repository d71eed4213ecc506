"""A repository's services page (as Bitbucket's service pages had it: "a dropdown of
services available... you may add as many as you want, and even more of the same
type"): add, edit, remove, enable, disable, send a test push, and each service's recent
deliveries.

Every action calls what the REST API calls: ``services.add_service`` / ``update_service``
/ ``serialize`` (so password fields come back only as the mask), and
``deliveries.log.queue_test_push`` / ``services.set_enabled``. The form names each field
``f:<label>`` and this module turns it into the API's parameters (label → value), with
an unticked checkbox sent as ``false`` because browsers send nothing for it.
"""

from __future__ import annotations

from typing import Any

from flask import flash, render_template, request
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from brokerage.core.errors import BadRequestError, NotFoundError
from brokerage.platform import branches, catalogue, repositories, services, upgrades
from brokerage.platform.db import get_session
from brokerage.platform.deliveries.log import queue_test_push
from brokerage.platform.models import Delivery, Repository, Service
from brokerage.platform.paging import paginate
from brokerage.platform.runtime import current_runtime
from brokerage.platform.web.deliveries import delivery_row
from brokerage.platform.web.support import back, signed_in, web_blueprint
from brokerage.submissions.models import BrokerVersion

bp = web_blueprint("web_repos", __name__, url_prefix="/repos/<account>/<repo_slug>")

FIELD_PREFIX = "f:"
CONSENT = "consent"
"""the form parameter carrying the id of the vendor broker version the admin agreed to"""
YOU_SOUND = ("uni", "use", "usa", "uk", "url", "utf", "one")


def with_article(title: str) -> str:
    """``title`` after "a" or "an", as it sounds ("an Email", "a POST", "a URL checker")."""
    lowered = title.lower()
    vowel = lowered[:1] in ("a", "e", "i", "o", "u") and not lowered.startswith(YOU_SOUND)
    return f"{'an' if vowel else 'a'} {title}"


def form_fields(version: BrokerVersion) -> list[dict[str, Any]]:
    """The broker's fields and the platform-level ``Branches`` filter every service has."""
    return [*version.fields, branches.FIELD]


def needs_consent(version: BrokerVersion) -> bool:
    """A vendor's broker is enabled only after its admin has seen what it gets."""
    return not version.broker_type.builtin


def administered(account: str, repo_slug: str) -> Repository:
    """The repository, if the signed-in user administers it (404 / 403 otherwise)."""
    return repositories.get_administered(get_session(), signed_in(), account, repo_slug)


def _params(version: BrokerVersion, type_name: str | None = None) -> MultiDict[str, str]:
    params: MultiDict[str, str] = MultiDict()
    if type_name is not None:
        params["type"] = type_name
    for field in form_fields(version):
        raw = request.form.get(FIELD_PREFIX + field["label"])
        if field["type"] == "boolean":
            params[field["label"]] = "true" if raw else "false"
        else:
            params[field["label"]] = raw or ""
    return params


def _form_rows(version: BrokerVersion, shown: dict[str, str]) -> list[dict[str, Any]]:
    """Each field with the value the form shows (a set password shows only the mask)."""
    return [
        {**field, "input": FIELD_PREFIX + field["label"], "value": shown.get(field["label"], "")}
        for field in form_fields(version)
    ]


def _posted_values(version: BrokerVersion, stored: dict[str, str]) -> dict[str, str]:
    """What was typed, to show again after an error; a password field shows what is stored
    (the mask or nothing), never what was typed."""
    return {
        f["label"]: stored.get(f["label"], "")
        if f["type"] == "password"
        else request.form.get(FIELD_PREFIX + f["label"], "")
        for f in form_fields(version)
    }


def _shown_values(service: Service) -> dict[str, str]:
    fields = services.serialize(service, current_runtime().cipher)["service"]["fields"]
    return {f["name"]: f["value"] for f in fields}


@bp.get("/", strict_slashes=False)
@bp.get("/services")
def list_services(account: str, repo_slug: str) -> Any:
    repo = administered(account, repo_slug)
    rows = [
        {"service": s, "fields": _shown_values(s),
         "upgrade": bool(upgrades.pending_upgrades(get_session(), s))}
        for s in repo.services
    ]  # fmt: skip
    offered = catalogue.offered(get_session())
    vendors = "Vendors' brokers (reviewed and approved)"
    groups = [
        ("Built-in brokers", [v for v in offered if v.broker_type.builtin]),
        (vendors, [v for v in offered if not v.broker_type.builtin]),
    ]
    return render_template(
        "repos/services.html", repo=repo, rows=rows, groups=[g for g in groups if g[1]]
    )


@bp.get("/services/new")
def new_service(account: str, repo_slug: str) -> Any:
    repo = administered(account, repo_slug)
    version = catalogue.find_offered(get_session(), request.args.get("type", ""))
    if needs_consent(version) and request.args.get(CONSENT) != str(version.id):
        return _consent_page(repo, version)
    return _service_form(repo, version, None, {}, None)


def _consent_page(repo: Repository, version: BrokerVersion, status: int = 200) -> Any:
    """Before a vendor's broker is enabled: who wrote it, that it was reviewed, where it
    connects, what it may do and which values it receives."""
    page = render_template(
        "repos/consent.html",
        repo=repo,
        info=catalogue.consent(get_session(), version),
        version=version,
        consent_field=CONSENT,
        article=with_article(version.broker_type.title),
    )
    return page, status


def _service_form(
    repo: Repository,
    version: BrokerVersion,
    service: Service | None,
    shown: dict[str, str],
    error: str | None,
) -> Any:
    page = render_template(
        "repos/service_form.html",
        repo=repo,
        version=version,
        service=service,
        rows=_form_rows(version, shown),
        error=error,
        info=catalogue.describe(version),
        article=with_article(version.broker_type.title),
        consent=version.id if service is None and needs_consent(version) else None,
        consent_field=CONSENT,
    )
    return page, (400 if error else 200)


@bp.post("/services")
def add_service(account: str, repo_slug: str) -> Any:
    repo = administered(account, repo_slug)
    session = get_session()
    version = catalogue.find_offered(session, request.form.get("type", ""))
    if needs_consent(version) and request.form.get(CONSENT) != str(version.id):
        # no agreement, or one to another version than the one now offered: ask (again)
        return _consent_page(repo, version, status=409)
    try:
        service = services.add_service(
            session, repo, _params(version, version.broker_type.title), current_runtime().cipher
        )
    except BadRequestError as exc:
        session.rollback()
        return _service_form(repo, version, None, _posted_values(version, {}), exc.message)
    session.commit()
    flash(f"Added {with_article(version.broker_type.title)} service.", "success")
    return back(
        "web_repos.show_service", account=account, repo_slug=repo_slug, service_id=service.id
    )


@bp.get("/services/<int:service_id>")
def show_service(account: str, repo_slug: str, service_id: int) -> Any:
    repo = administered(account, repo_slug)
    service = services.get_service(repo, service_id)
    stmt = (
        select(Delivery)
        .where(Delivery.service_id == service.id)
        .order_by(Delivery.created_at.desc(), Delivery.id)
    )
    deliveries = paginate(get_session(), stmt, delivery_row)
    page = render_template(
        "repos/service.html",
        repo=repo,
        service=service,
        rows=_form_rows(service.broker_version, _shown_values(service)),
        deliveries=deliveries,
        info=catalogue.describe(service.broker_version),
        upgrades=upgrades.pending_upgrades(get_session(), service),
    )
    return page


@bp.post("/services/<int:service_id>")
def update_service(account: str, repo_slug: str, service_id: int) -> Any:
    repo = administered(account, repo_slug)
    service = services.get_service(repo, service_id)
    version = service.broker_version
    try:
        warning = services.update_service(service, _params(version), current_runtime().cipher)
    except BadRequestError as exc:
        get_session().rollback()
        stored = _shown_values(service)
        return _service_form(repo, version, service, _posted_values(version, stored), exc.message)
    get_session().commit()
    flash(warning or "Saved.", "warning" if warning else "success")
    return back(
        "web_repos.show_service", account=account, repo_slug=repo_slug, service_id=service.id
    )


@bp.post("/services/<int:service_id>/delete")
def delete_service(account: str, repo_slug: str, service_id: int) -> Any:
    service = services.get_service(administered(account, repo_slug), service_id)
    title = service.broker_type.title
    get_session().delete(service)
    get_session().commit()
    flash(f"Removed the {title} service {service_id}.", "success")
    return back("web_repos.list_services", account=account, repo_slug=repo_slug)


@bp.post("/services/<int:service_id>/enable")
def enable_service(account: str, repo_slug: str, service_id: int) -> Any:
    return _set_enabled(account, repo_slug, service_id, True)


@bp.post("/services/<int:service_id>/disable")
def disable_service(account: str, repo_slug: str, service_id: int) -> Any:
    return _set_enabled(account, repo_slug, service_id, False)


def _set_enabled(account: str, repo_slug: str, service_id: int, enabled: bool) -> Any:
    service = services.get_service(administered(account, repo_slug), service_id)
    services.set_enabled(get_session(), service, enabled, signed_in().username)
    flash("Service enabled." if enabled else "Service disabled.", "success")
    return back(
        "web_repos.show_service", account=account, repo_slug=repo_slug, service_id=service_id
    )


@bp.post("/services/<int:service_id>/test")
def test_push(account: str, repo_slug: str, service_id: int) -> Any:
    service = services.get_service(administered(account, repo_slug), service_id)
    delivery = queue_test_push(get_session(), service, signed_in().username)
    flash(f"Test push sent as delivery {delivery.id}.", "success")
    return back(
        "web_deliveries.show_delivery",
        account=account,
        repo_slug=repo_slug,
        delivery_id=delivery.id,
    )


@bp.post("/services/<int:service_id>/upgrade")
def answer_upgrade(account: str, repo_slug: str, service_id: int) -> Any:
    """Accept or decline the pending permission upgrade (a newer version that wants more)."""
    admin = signed_in()
    service = services.get_service(administered(account, repo_slug), service_id)
    pending = upgrades.pending_upgrades(get_session(), service)
    action = request.form.get("action", "")
    if not pending:
        raise NotFoundError(f"service {service_id} has no pending permission upgrade")
    if action not in ("accept", "decline"):
        raise BadRequestError(f"action: accept or decline, got {action!r}")
    upgrades.answer_upgrade(
        get_session(), pending[-1], admin, action == "accept", current_runtime().cipher
    )
    get_session().commit()
    to_version = pending[-1].to_version.version
    flash(f"Upgraded to version {to_version}." if action == "accept" else
          f"Declined version {to_version}; the service stays on {service.broker_version.version}.",
          "success")  # fmt: skip
    return back(
        "web_repos.show_service", account=account, repo_slug=repo_slug, service_id=service_id
    )
