"""Telling people what happened: mail to a repository's admins when a service is disabled."""

from __future__ import annotations

import logging

from brokerage.platform.models import Service
from brokerage.platform.runtime import Runtime
from brokerage.sandbox.egress.mailer import MailConfig, Mailer, MailRequest

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
