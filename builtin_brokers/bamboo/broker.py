"""Bamboo: each push queues a build of a plan through Bamboo's REST API.

``POST <URL>/rest/api/latest/queue/<Plan Key>?os_authType=basic`` with HTTP
Basic (Username, Password), ``Accept: application/json`` and
``X-Atlassian-Token: no-check`` (Bamboo's XSRF guard lets scripted POSTs through
with it). Bamboo answers 200 with ``{"planKey", "buildNumber", "buildResultKey",
"triggerReason"}``.

401 (wrong Username or Password), 403 (the user may not build the plan), 404
(no such plan) and a 400 saying the plan is disabled are configuration errors;
other 400s (e.g. the plan's concurrent-build limit), 5xx and no answer are
retried.

Runs under the sandbox's RestrictedPython policy: no names starting with ``_``.
"""

import re
from urllib.parse import urlsplit

import requests
from brokerage_sdk import (
    REFUSED_HEADER,
    BaseBroker,
    ConfigurationError,
    TransientError,
    gateway_session,
    raise_for_outcome,
    redact_url,
)

PLAN_KEY = re.compile(r"^[A-Z][A-Z0-9]*-[A-Z0-9]+(-[A-Z0-9]+)?$")
"""PROJECT-PLAN, or PROJECT-PLAN-JOB / a plan branch's PROJECT-PLAN12"""
XSRF_HEADER = "X-Atlassian-Token"
XSRF_OPT_OUT = "no-check"
"""lets a scripted POST past Bamboo's XSRF guard (Atlassian's documented opt-out)"""
SETTING_ERRORS = {
    401: "Username or Password: Bamboo refused the credentials",
    403: "Username: this user may not build the plan",
    404: "Plan Key: Bamboo has no such plan (or the user may not see it)",
}


def base_url(value):
    url = str(value or "").strip()
    parts = urlsplit(url)
    if not url:
        raise ConfigurationError("URL: required; the base URL of your Bamboo server")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"URL: {redact_url(url)!r} is not an http or https URL")
    if "@" in parts.netloc:
        raise ConfigurationError("URL: put the credentials in Username and Password, not the URL")
    return url.rstrip("/")


def plan_key(value):
    key = str(value or "").strip().upper()
    if not PLAN_KEY.match(key):
        raise ConfigurationError(f"Plan Key: {value!r} is not a Bamboo plan key such as PROJ-PLAN")
    return key


def bamboo_message(response):
    try:
        answer = response.json()
    except ValueError:
        return response.text.strip()[:200]
    return str(answer.get("message") or "") if isinstance(answer, dict) else ""


def queued_key(response):
    """``buildResultKey`` of Bamboo's answer (``PROJ-PLAN-42``), None when it has none."""
    try:
        answer = response.json()
    except ValueError:
        return None
    return answer.get("buildResultKey") if isinstance(answer, dict) else None


def judge(response, key):
    status = response.status_code
    if not response.headers.get(REFUSED_HEADER):
        said = bamboo_message(response)
        if status in SETTING_ERRORS:
            raise ConfigurationError(f"{SETTING_ERRORS[status]} ({key}: {status} {said})".rstrip())
        if status == 400 and "disabled" in said.lower():
            raise ConfigurationError(f"Plan Key: {key} is disabled in Bamboo ({said})")
        if status == 400:
            raise TransientError(f"Bamboo did not queue {key}: {said}")
    return raise_for_outcome(response)


class BambooBroker(BaseBroker):
    def handle(self, payload):
        base = base_url(self.get_local("URL"))
        key = plan_key(self.get_local("Plan Key"))
        user = str(self.get_local("Username") or "")
        password = str(self.get_local("Password") or "")
        if not user or not password:
            raise ConfigurationError("Username and Password: both required")
        url = f"{base}/rest/api/latest/queue/{key}"
        headers = {XSRF_HEADER: XSRF_OPT_OUT, "Accept": "application/json"}
        try:
            response = gateway_session(payload).request(
                "POST", url, params={"os_authType": "basic"}, headers=headers,
                auth=(user, password), allow_redirects=False,
            )  # fmt: skip
        except requests.Timeout:
            raise TransientError(f"Bamboo at {redact_url(base)} did not answer in time") from None
        except requests.RequestException:
            raise TransientError(f"Bamboo at {redact_url(base)} could not be reached") from None
        judge(response, key)
        result_key = queued_key(response)
        self.log.info("Bamboo queued %s", result_key or key)
        return {"message": f"Bamboo queued {result_key or key}", "build_result_key": result_key}
