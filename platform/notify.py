"""Telling people what happened: mail to a repository's admins when a service is disabled,
and to a vendor when a reviewer decides on their broker."""

from __future__ import annotations

import logging

from brokerage.platform.models import Service
from brokerage.platform.runtime import Runtime
from brokerage.sandbox.egress.mailer import MailConfig, Mailer, MailRequest
from brokerage.submissions.models import BrokerVersion

log = logging.getLogger(__name__)


def mail_config(config: dict[str, object]) -> MailConfig:
    return MailConfig(
        host=str(config["SMTP_HOST"]),
        port=int(str(config["SMTP_PORT"])),
        domain=str(config["MAIL_DOMAIN"]),
    )


def admin_addresses(service: Service) -> list[str]:
    repo = service.repository
    people = [repo.owner, *repo.admins]
    return sorted({p.email for p in people if p.email})


def service_disabled(runtime: Runtime, service: Service) -> None:
    """Mail the admins that ``service`` was disabled and why. A mail failure is logged,
    never raised: the service stays disabled and the reason stays on it."""
    to = admin_addresses(service)
    if not to:
        return
    repo = service.repository
    title = service.broker_type.title
    body = (
        f"The {title} service (id {service.id}) of repository {repo.full_name} was disabled.\n\n"
        f"Why: {service.disabled_reason}\n\n"
        "Fix its settings, then enable it again with one call:\n"
        f"  POST {runtime.config['CANON_URL']}/1.0/repositories/{repo.full_name}"
        f"/services/{service.id}/enable\n"
    )
    request = MailRequest(
        to=tuple(to), subject=f"[{repo.full_name}] {title} service disabled", body=body
    )
    try:
        Mailer(mail_config(runtime.config)).send(request)
    except Exception:  # the mail server is down: the reason is still on the service
        log.exception(
            "could not mail the admins of %s about service %s", repo.full_name, service.id
        )


DECISION_WORDS = {
    "approved": "approved",
    "rejected": "rejected",
    "changes_requested": "sent back with changes requested",
}


def submission_decided(runtime: Runtime, version: BrokerVersion, comment: str) -> bool:
    """Mail the vendor who submitted ``version`` the reviewer's decision and comment, with a
    link to the version's page. A mail failure is logged, never raised (the decision and its
    comment stay on the version); returns whether the mail went out."""
    vendor = version.submitted_by
    if vendor is None or not vendor.email:
        return False
    name = f"{version.broker_type.name} {version.version}"
    words = DECISION_WORDS.get(version.state, version.state)
    page = f"{runtime.config['CANON_URL']}/vendor/submissions/{version.id}"
    body = f"{name} was {words} in review.\n\n"
    if comment.strip():
        body += "Their comment:\n\n" + "".join(f"  {line}\n" for line in comment.splitlines())
        body += "\n"
    body += f"The version, its report and its history: {page}\n"
    if version.state != "approved":
        body += "Answer with a new version: brokerage broker submit <folder> --notes '...'\n"
    request = MailRequest(to=(vendor.email,), subject=f"[Brokerage] {name} {words}", body=body)
    try:
        Mailer(mail_config(runtime.config)).send(request)
    except Exception:  # the mail server is down: the decision stands and is on the page
        log.exception("could not mail %s about the decision on %s", vendor.username, name)
        return False
    return True
