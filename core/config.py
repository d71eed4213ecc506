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
from pathlib import Path
from typing import Any

ENV_PREFIX = "BROKERAGE_"

DEFAULTS: dict[str, Any] = {
    "DATA_DIR": "var",
    "DATABASE_URL": None,  # None: a SQLite file in DATA_DIR
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "SECRET_KEY": None,  # None: generated once and kept in DATA_DIR
    "FIELD_KEYS": None,  # Fernet keys, comma-separated, newest first; None: kept in DATA_DIR
    "AUTO_MIGRATE": True,
    "MAIL_DOMAIN": "brokerage.localhost",
    "SMTP_HOST": "127.0.0.1",
    "SMTP_PORT": 25,
    "MAX_CONTENT_LENGTH": 32 * 1024 * 1024,  # bytes: the largest request body (a push) accepted
    "CANON_URL": "http://127.0.0.1:5000",
    # sign-in rate limit (platform/signin.py): failed password checks allowed per account and
    # per client address within SIGNIN_WINDOW seconds; beyond, sign-ins are refused (429)
    "SIGNIN_MAX_ACCOUNT_FAILURES": 10,
    "SIGNIN_MAX_ADDRESS_FAILURES": 100,
    "SIGNIN_WINDOW": 900,
    # egress rate limits, per worker process: requests/s and burst per destination (host:port),
    # per service and per repository; a request over one waits up to EGRESS_LIMIT_WAIT seconds,
    # beyond that its delivery is deferred (re-queued, never a failed attempt)
    "EGRESS_DESTINATION_RATE": 200.0,
    "EGRESS_DESTINATION_BURST": 400,
    "EGRESS_SERVICE_RATE": 50.0,
    "EGRESS_SERVICE_BURST": 200,
    "EGRESS_REPOSITORY_RATE": 100.0,
    "EGRESS_REPOSITORY_BURST": 500,
    "EGRESS_LIMIT_WAIT": 2.0,
    "EGRESS_LOG_BODY_BYTES": 8 * 1024,  # bytes of each request/response body an attempt keeps
    "EGRESS_LOG_HEADER_BYTES": 4 * 1024,  # bytes of each request's/response's headers kept
}


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
