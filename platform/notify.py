"""Telling people what happened: mail to a repository's admins when a service is disabled,
and to a vendor when a reviewer decides on their broker."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from brokerage.platform.models import Service, ServiceUpgrade
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


def pages_root(config: Mapping[str, object]) -> str:
    return str(config["CANON_URL"]).rstrip("/")


def service_page(config: Mapping[str, object], service: Service) -> str:
    """The service's web page: its settings, Enable/Disable, a pending upgrade's answer."""
    return f"{pages_root(config)}/repos/{service.repository.full_name}/services/{service.id}"


def send(config: Mapping[str, object], requests: list[MailRequest]) -> None:
    """Send mails; a failure is logged, never raised (what they tell stays on the pages)."""
    for request in requests:
        try:
            Mailer(mail_config(dict(config))).send(request)
        except Exception:  # the mail server is down
            log.exception("could not send %r to %s", request.subject, ", ".join(request.to))


def upgrade_waiting(config: Mapping[str, object], upgrade: ServiceUpgrade) -> MailRequest | None:
    """The mail telling a service's admins that a new broker version waits for their answer
    (it asks for more), with the page where they accept or decline it; None: nobody to tell.
    Built before the upgrade is committed, sent after (:func:`send`)."""
    service = upgrade.service
    to = admin_addresses(service)
    if not to:
        return None
    repo, title = service.repository, service.broker_type.title
    old, new = upgrade.from_version.version, upgrade.to_version.version
    body = (
        f"Version {new} of the {title} broker was approved. It asks for more than version "
        f"{old}, which the {title} service (id {service.id}) of {repo.full_name} runs:\n\n"
        + "".join(f"  - {item}\n" for item in upgrade.wider)
        + f"\nThe service keeps running version {old} until you answer. Accept or decline "
        f"on its page:\n  {service_page(config, service)}#upgrade\n"
    )
    subject = f"[{repo.full_name}] {title} {new} waits for your answer"
    return MailRequest(to=tuple(to), subject=subject, body=body)


def service_disabled(runtime: Runtime, service: Service) -> None:
    """Mail the admins that ``service`` was disabled and why. A mail failure is logged,
    never raised: the service stays disabled and the reason stays on it."""
    to = admin_addresses(service)
    if not to:
        return
    repo = service.repository
    title = service.broker_type.title
    page = service_page(runtime.config, service)
    body = (
        f"The {title} service (id {service.id}) of repository {repo.full_name} was disabled.\n\n"
        f"Why: {service.disabled_reason}\n\n"
        "Fix its settings, then enable it again with the Enable button on its page:\n"
        f"  {page}\n\n"
        "Deliveries that failed meanwhile can then be sent again from its deliveries\n"
        "(Redeliver failed, since a date):\n"
        f"  {pages_root(runtime.config)}/repos/{repo.full_name}/deliveries?service={service.id}\n"
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
