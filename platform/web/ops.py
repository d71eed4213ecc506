"""The operator's health page: the delivery queue, RQ workers, the sandbox set-up,
deliveries by status and the recent failures (paginated). Operators only.

Warm sandbox pools live inside each worker process (they are what makes a run cheap),
so this page shows the pool policy every worker applies rather than live pool contents.
"""

from __future__ import annotations

from typing import Any

from flask import render_template
from redis.exceptions import RedisError
from sqlalchemy import select

from brokerage.core.accounts import Role
from brokerage.platform import metrics
from brokerage.platform.db import get_session
from brokerage.platform.deliveries import sandbox_stats
from brokerage.platform.deliveries.states import DeliveryStatus
from brokerage.platform.models import Delivery
from brokerage.platform.paging import paginate
from brokerage.platform.web.deliveries import delivery_row
from brokerage.platform.web.support import runtime, web_blueprint, with_role
from brokerage.sandbox.backends import pool_policy, select_backend_name
from brokerage.sandbox.errors import BackendUnavailableError

bp = web_blueprint("web_ops", __name__, url_prefix="/ops")


def _sandbox_setup(config: dict[str, Any]) -> dict[str, Any]:
    policy = pool_policy(config)
    return {
        "configured": config.get("SANDBOX_BACKEND", "auto"),
        **_resolved_backend(config),
        "mode": config.get("SANDBOX_MODE", "warm"),
        "policy": policy,
    }


def _resolved_backend(config: dict[str, Any]) -> dict[str, Any]:
    """The backend (and Docker runtime) in use: what running workers report, by worker;
    with none reporting, what the configuration resolves to on this host."""
    try:
        reported = sandbox_stats.read_all(runtime().redis)
    except (RedisError, OSError):
        reported = {}
    in_use = {name: (str(f["backend"]), str(f.get("runtime") or ""))
              for name, f in reported.items() if f.get("backend")}  # fmt: skip
    if in_use:
        return {"in_use": sorted(set(in_use.values())), "by_worker": in_use, "error": None}
    wanted = str(config.get("SANDBOX_BACKEND", "auto"))
    try:
        name = select_backend_name(wanted)
    except BackendUnavailableError as exc:
        return {"in_use": [], "by_worker": {}, "error": str(exc)}
    docker_runtime = str(config.get("SANDBOX_RUNTIME") or "runc") if name == "docker" else ""
    return {"in_use": [(name, docker_runtime)], "by_worker": {}, "error": None}


def _failure_row(delivery: Delivery) -> dict[str, Any]:
    return {**delivery_row(delivery), "repository": delivery.push.repository}


@bp.get("/", strict_slashes=False)
def health() -> Any:
    with_role(Role.OPERATOR)
    session = get_session()
    failures = (
        select(Delivery)
        .where(Delivery.status.in_([str(DeliveryStatus.FAILED), str(DeliveryStatus.RETRYING)]))
        .order_by(Delivery.created_at.desc(), Delivery.id)
    )
    _buckets, seconds, runs = metrics.run_durations(session)
    return render_template(
        "ops/health.html",
        queue=metrics.queue_stats(runtime()),
        statuses=metrics.deliveries_by_status(session),
        refusals=metrics.gateway_refusals(session),
        runs=runs,
        mean_run=seconds / runs if runs else None,
        sandbox=_sandbox_setup(runtime().config),
        failures=paginate(session, failures, _failure_row),
    )
