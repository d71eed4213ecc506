"""A small REST client for the vendor and reviewer command lines (``--url`` and ``--token``,
or ``BROKERAGE_URL`` and ``BROKERAGE_TOKEN``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

from brokerage.submissions.errors import ApiCallError

TIMEOUT_SECONDS = 60.0
"""seconds one API call may take"""


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
