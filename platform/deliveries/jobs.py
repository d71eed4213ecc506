"""The functions RQ runs. A worker process installs its :class:`Dispatcher` once
(``brokerage worker`` does); jobs then share its sandbox pools and gateway."""

from __future__ import annotations

from brokerage.platform.deliveries import outages
from brokerage.platform.deliveries.dispatch import Dispatcher
from brokerage.platform.errors import PlatformError

_dispatcher: Dispatcher | None = None


def install(dispatcher: Dispatcher | None) -> None:
    global _dispatcher
    _dispatcher = dispatcher


def run_delivery(delivery_id: str) -> str:
    """Run the next attempt of one delivery (the job ``delivery_<id>_<attempt>``)."""
    if _dispatcher is None:
        raise PlatformError("no dispatcher installed: start workers with `brokerage worker`")
    try:
        return _dispatcher.run(delivery_id)
    except Exception as exc:
        if outages.is_outage(exc):
            outages.database_dropped.set()  # the worker waits for it before the next job
        raise
