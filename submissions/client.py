"""A small REST client for the vendor and reviewer command lines (``--url`` and ``--token``,
or ``BROKERAGE_URL`` and ``BROKERAGE_TOKEN``, or what ``brokerage login`` stored).

``brokerage login`` keeps the URL and token in a user config file readable by its owner
only (0600, in a 0700 folder): ``$BROKERAGE_CLI_CONFIG``, else
``$XDG_CONFIG_HOME/brokerage/cli.json``, else ``~/.config/brokerage/cli.json``. Options
and the environment win over it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from brokerage.submissions.errors import ApiCallError

TIMEOUT_SECONDS = 60.0
"""seconds one API call may take"""


CONFIG_ENV = "BROKERAGE_CLI_CONFIG"


def config_path() -> Path:
    """Where ``brokerage login`` keeps the URL and token."""
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "brokerage" / "cli.json"


def load_login() -> dict[str, str]:
    """The stored ``{"url", "token"}`` (empty when nobody logged in, or it is unreadable)."""
    try:
        found = json.loads(config_path().read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(found, dict):
        return {}
    return {key: str(found[key]) for key in ("url", "token") if isinstance(found.get(key), str)}


def save_login(url: str, token: str) -> Path:
    """Store ``url`` and ``token`` for the owner only (file 0600, new folder 0700)."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # an older file keeps its mode through O_CREAT
    with os.fdopen(descriptor, "w") as handle:
        json.dump({"url": url.rstrip("/"), "token": token}, handle)
        handle.write("\n")
    return path


def resolve_login(url: str, token: str) -> tuple[str, str]:
    """``url`` and ``token`` as given (options, environment), else as stored by login."""
    stored = load_login() if not (url and token) else {}
    return url or stored.get("url", ""), token or stored.get("token", "")


@dataclass
class ApiClient:
    url: str
    token: str

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        try:
            response = requests.request(
                method,
                self.url.rstrip("/") + path,
                headers=headers,
                timeout=TIMEOUT_SECONDS,
                **kwargs,
            )
        except requests.RequestException as exc:
            raise ApiCallError(None, f"cannot reach {self.url}: {exc}") from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            error = (body or {}).get("error", {}) if isinstance(body, dict) else {}
            raise ApiCallError(
                response.status_code,
                error.get("message") or response.text[:500],
                error.get("problems"),
            )
        return body

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.call("POST", path, **kwargs)
