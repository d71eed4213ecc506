"""Configuration: defaults in code, then the ``BROKERAGE_*`` environment, then overrides.

Nothing here reads the environment at import time; :func:`load_config` is called by
the app factory (and by the worker and CLI) with the environment it is given.

Besides the prefixed names, the conventional unprefixed ``DATABASE_URL`` and
``REDIS_URL`` are honoured, since operators and hosting platforms set those.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV_PREFIX = "BROKERAGE_"


@dataclass(frozen=True)
class Setting:
    """One setting: its name (``BROKERAGE_<name>`` in the environment), its default and
    what it means (the README's settings table says the same)."""

    name: str
    default: Any
    meaning: str


MiB = 1024 * 1024

SETTINGS: tuple[Setting, ...] = (
    # -- where things are
    Setting("DATA_DIR", "var", "the SQLite file, generated keys, artifacts"),
    Setting("DATABASE_URL", None, "None: SQLite in DATA_DIR; postgresql://... for PostgreSQL"),
    Setting("REDIS_URL", "redis://127.0.0.1:6379/0", "the queue"),
    Setting("CANON_URL", "http://127.0.0.1:5000", "the payload's canon_url, links in mail"),
    Setting("AUTO_MIGRATE", True, "migrate and install the built-in brokers at start"),
    Setting("SQLITE_SYNCHRONOUS", None, "None: FULL for the web, NORMAL for workers (db.py)"),
    Setting("MAX_CONTENT_LENGTH", 32 * MiB, "bytes: the largest request body (a push)"),
    # -- secrets
    Setting("SECRET_KEY", None, "web sessions; None: generated once into DATA_DIR"),
    Setting("FIELD_KEYS", None, "Fernet keys, comma-separated, newest first; None: DATA_DIR"),
    Setting("METRICS_TOKEN", None, "when set, /metrics wants it as a Bearer token"),
    # -- sign-in
    Setting("SIGNIN_MAX_ACCOUNT_FAILURES", 10, "failed sign-ins per account per window"),
    Setting("SIGNIN_MAX_ADDRESS_FAILURES", 100, "failed sign-ins per client address per window"),
    Setting("SIGNIN_WINDOW", 900, "seconds the sign-in failures are counted over"),
    # -- mail
    Setting("MAIL_DOMAIN", "brokerage.localhost", "From is commits-noreply@<MAIL_DOMAIN>"),
    Setting("SMTP_HOST", "127.0.0.1", "the SMTP server mail goes through"),
    Setting("SMTP_PORT", 25, "its port"),
    # -- deliveries
    Setting(
        "RETRY_DELAYS", (10, 30, 120, 600, 1800, 3600), "seconds after failed attempt 1, 2, ..."
    ),
    Setting("AUTO_DISABLE_AFTER", 5, "failed deliveries in a row that disable a service"),
    Setting("LEASE_SECONDS", 120, "a claimed attempt older than this lost its worker"),
    Setting("SWEEP_INTERVAL", 5.0, "seconds between the sweeper's rounds"),
    Setting("VERIFY_LEASE_SECONDS", 660, "a verification running longer lost its worker"),
    # -- the sandbox
    Setting("SANDBOX_BACKEND", "auto", "docker, bubblewrap, fake (tests) or auto"),
    Setting("SANDBOX_MODE", "warm", "warm pools, or strict: a fresh sandbox per run"),
    Setting("SANDBOX_RUNTIME", "runc", "Docker's runtime: runc, or runsc (gVisor)"),
    Setting("SANDBOX_IMAGE", None, "None: the image built from sandbox/image/"),
    Setting("SANDBOX_ROOTFS", None, "None: the bubblewrap tree built beside the image"),
    Setting("SANDBOX_ALLOWED_IMPORTS", None, "None: the reviewed catalogue's modules"),
    Setting("SANDBOX_POOL_SIZE", 2, "idle warm sandboxes kept per service"),
    Setting("SANDBOX_POOL_BLANK", 1, "pre-started sandboxes per broker version"),
    Setting("SANDBOX_POOL_MAX_BOUND", 32, "sandboxes bound to services per worker (LRU)"),
    Setting("SANDBOX_POOL_MAX_VERSIONS", 16, "broker versions with blank sandboxes per worker"),
    Setting("SANDBOX_POOL_MAX_RUNS", 1000, "runs before a warm sandbox is replaced"),
    Setting("SANDBOX_POOL_MAX_AGE", 600.0, "seconds before a warm sandbox is replaced"),
    Setting("SANDBOX_POOL_IDLE", 60.0, "seconds unused before a bound sandbox is retired"),
    Setting("RUN_WALL_SECONDS", 10.0, "wall-clock limit of one run"),
    Setting("RUN_MEMORY_BYTES", 256 * MiB, "memory limit of one run"),
    # -- the egress gateway
    Setting("EGRESS_PORTS", (80, 443), "ports brokers may reach"),
    Setting(
        "EGRESS_EXTRA_RANGES", None, "address ranges opened for named hosts (tests: 127.0.0.1)"
    ),
    Setting("EGRESS_SOCKET_DIR", None, "None: a private temporary directory per worker"),
    Setting("EGRESS_DESTINATION_RATE", 200.0, "requests/s per destination host:port, per worker"),
    Setting("EGRESS_DESTINATION_BURST", 400, "burst of the same"),
    Setting("EGRESS_SERVICE_RATE", 50.0, "requests/s per service, per worker"),
    Setting("EGRESS_SERVICE_BURST", 200, "burst of the same"),
    Setting("EGRESS_REPOSITORY_RATE", 100.0, "requests/s per repository, per worker"),
    Setting("EGRESS_REPOSITORY_BURST", 500, "burst of the same"),
    Setting("EGRESS_LIMIT_WAIT", 2.0, "seconds a request over a limit waits; beyond: deferred"),
    Setting(
        "EGRESS_LOG_BODY_BYTES", 8 * 1024, "bytes of each request/response body an attempt keeps"
    ),
    Setting("EGRESS_LOG_HEADER_BYTES", 4 * 1024, "bytes of each request's/response's headers kept"),
)
"""every setting, its default and its meaning: the one table (README's "Configuration")"""

DEFAULTS: dict[str, Any] = {s.name: s.default for s in SETTINGS}


def _parse(value: str) -> Any:
    """Environment values are JSON where they parse as JSON (numbers, booleans), else text."""
    try:
        return json.loads(value)
    except ValueError:
        return value


def load_config(
    environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Defaults, then ``BROKERAGE_*`` (and ``DATABASE_URL``/``REDIS_URL``), then overrides."""
    environ = os.environ if environ is None else environ
    config = dict(DEFAULTS)
    for name in ("DATABASE_URL", "REDIS_URL"):
        if environ.get(name):
            config[name] = environ[name]
    for key, value in environ.items():
        if key.startswith(ENV_PREFIX):
            config[key.removeprefix(ENV_PREFIX)] = _parse(value)
    config.update(overrides or {})
    data_dir = Path(config["DATA_DIR"]).resolve()
    config["DATA_DIR"] = str(data_dir)
    if not config["DATABASE_URL"]:
        config["DATABASE_URL"] = f"sqlite:///{data_dir / 'brokerage.db'}"
    return config
