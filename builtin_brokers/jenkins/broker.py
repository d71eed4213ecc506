"""Jenkins: each push triggers a build of a job through its remote build trigger.

``POST <Endpoint>/job/<Project Name>/build?token=<Token>&cause=…`` — the job's
"Trigger builds remotely" URL (a job in a folder: ``folder/job`` becomes
``/job/folder/job/job``). ``https://user:token@host/`` in the Endpoint sends
HTTP Basic. When Jenkins has CSRF protection on, the broker first asks
``/crumbIssuer/api/json`` for a crumb and sends it back in the header Jenkins
names, on the same session (Jenkins ties crumbs to the session's cookie); a 404
there means protection is off.

A parameterized job answers ``/build`` with 400 (it expects its form): the broker
then uses ``/buildWithParameters``, which builds with the parameters' defaults.

"Module name" limits triggering to pushes that change a file under that
directory; a truncated push (files not all known) triggers anyway.

401 and 403 (wrong token or credentials, or a refused crumb), 404 (no such
job) and 409 (the job is disabled) are configuration errors; 5xx and no answer are retried.

Runs under the sandbox's RestrictedPython policy: no names starting with ``_``.
"""

from urllib.parse import quote, unquote, urlsplit, urlunsplit

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

CRUMB_PATH = "/crumbIssuer/api/json"


def split_endpoint(value):
    """``(base URL without user:pass@ or trailing slash, (user, password) or None)``."""
    url = str(value or "").strip()
    if not url:
        raise ConfigurationError("Endpoint: required; the base URL of your Jenkins server")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"Endpoint: {redact_url(url)!r} is not an http or https URL")
    credentials, at, host = parts.netloc.rpartition("@")
    auth = None
    if at:
        user, colon, password = credentials.partition(":")
        auth = (unquote(user), unquote(password))
    base = urlunsplit((parts.scheme, host if at else parts.netloc, parts.path.rstrip("/"), "", ""))
    return base, auth


def job_path(name):
    """``/job/a/job/b`` for ``a/b`` (folders), each part URL-quoted."""
    parts = [p for p in str(name or "").strip().strip("/").split("/") if p]
    if not parts:
        raise ConfigurationError("Project Name: required; the name of the Jenkins job to build")
    return "".join(f"/job/{quote(p, safe='')}" for p in parts)


def module_changed(payload, module):
    """Whether a pushed file lies under ``module`` (a directory path)."""
    prefix = str(module or "").strip().strip("/")
    if not prefix or payload.get("truncated"):
        return True
    for commit in payload.get("commits") or []:
        for changed in commit.get("files") or []:
            path = str(changed.get("file") or "").lstrip("/")
            if path == prefix or path.startswith(prefix + "/"):
                return True
    return False


def cause(payload):
    repository = payload.get("repository") or {}
    count = len(payload.get("commits") or [])
    name = repository.get("name") or repository.get("slug") or "?"
    return f"Push of {count} commit(s) to {name} by {payload.get('user') or 'someone'}"


def wants_parameters(response):
    """Whether ``/build`` refused because the job is parameterized (Jenkins answers 400,
    expecting its form); ``/buildWithParameters`` then builds with the defaults."""
    text = response.text.lower()
    return (
        response.status_code == 400
        and not response.headers.get(REFUSED_HEADER)
        and ("submitted" in text or "form submission" in text)
    )


def send(session, method, url, **kwargs):
    try:
        return session.request(method, url, allow_redirects=False, **kwargs)
    except requests.Timeout:
        raise TransientError(
            f"{method} {redact_url(url)}: Jenkins did not answer in time"
        ) from None
    except requests.RequestException:
        raise TransientError(f"{method} {redact_url(url)}: Jenkins could not be reached") from None


class JenkinsBroker(BaseBroker):
    def handle(self, payload):
        base, auth = split_endpoint(self.get_local("Endpoint"))
        path = job_path(self.get_local("Project Name"))
        module = self.get_local("Module name")
        if not module_changed(payload, module):
            return {"message": f"no changed file under {module!r}; build not triggered",
                    "triggered": False}  # fmt: skip
        session = gateway_session(payload)
        crumb = self.crumb(session, base, auth)
        params = {"cause": cause(payload)}
        token = str(self.get_local("Token") or "")
        if token:
            params["token"] = token
        response = send(session, "POST", f"{base}{path}/build", params=params, auth=auth,
                        headers=crumb)  # fmt: skip
        if wants_parameters(response):
            response = send(session, "POST", f"{base}{path}/buildWithParameters", params=params,
                            auth=auth, headers=crumb)  # fmt: skip
        self.judge(response, path, bool(crumb))
        queued = response.headers.get("Location", "")
        self.log.info("Jenkins queued a build of %s: %s", path, queued)
        return {"message": f"Jenkins build of {path} triggered: {response.status_code}",
                "triggered": True, "queue_item": queued}  # fmt: skip

    def crumb(self, session, base, auth):
        """``{header: crumb}`` when Jenkins issues crumbs; ``{}`` when CSRF protection is off."""
        response = send(session, "GET", base + CRUMB_PATH, auth=auth)
        if response.status_code == 404 and not response.headers.get(REFUSED_HEADER):
            return {}
        if response.status_code in (401, 403) and not response.headers.get(REFUSED_HEADER):
            # anonymous may not read the crumb issuer; the build URL's token may still do
            self.log.info(
                "Jenkins gave no crumb (%d); triggering without one", response.status_code
            )
            return {}
        raise_for_outcome(response)
        try:
            answer = response.json()
            return {str(answer["crumbRequestField"]): str(answer["crumb"])}
        except (ValueError, KeyError, TypeError):
            # not Jenkins' crumb issuer (a proxy's page?): if Jenkins does want a crumb, the
            # build's 403 says so
            self.log.warning("%s answered without a crumb; triggering without one", CRUMB_PATH)
            return {}

    def judge(self, response, path, had_crumb):
        status = response.status_code
        if not response.headers.get(REFUSED_HEADER):
            if status == 404:
                raise ConfigurationError(f"Project Name: Jenkins has no job at {path}")
            if status == 409:
                raise ConfigurationError(f"Project Name: the job at {path} is disabled")
            if status == 403 and "crumb" in response.text.lower() and not had_crumb:
                raise ConfigurationError(
                    "Jenkins wants a CSRF crumb but did not give one: put a user and API token "
                    "in the Endpoint (https://user:token@host/)"
                )
            if status in (401, 403):
                raise ConfigurationError(
                    f"Jenkins refused to build {path} ({status}): check the Token and the "
                    "user:token in the Endpoint"
                )
        return raise_for_outcome(response)
