"""Pivotal Tracker: commits that name stories go to Tracker's source commits API.

A commit names stories the way Tracker's SCM post-commit syntax says: square
brackets holding ``#<story id>`` (several allowed) and optionally a state word —
``[#12345]``, ``[#123 #456]``, ``[Fixes #12345]``, ``[Finishes #12345]``,
``[Delivers #12345]``. Each such commit is one ``POST
/services/v5/source_commits`` with the ``X-TrackerToken`` header and
``{"source_commit": {commit_id, message, url, author}}``; Tracker itself adds
the comment and moves the story. Commits naming no story are not sent.

Tracker was retired in April 2025; "API URL" (default Tracker's own) points the
broker at a server implementing the same API.

403 (``invalid_authentication``) and 401 mean the Token is wrong: a
configuration error. 5xx, 429 and no answer are retried.

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
    template_values,
)

API_ROOT = "https://www.pivotaltracker.com/services/v5"
"""Tracker's REST API, version 5 (the "API URL" field's default)"""
STORY_REFERENCE = re.compile(r"\[[^\[\]]*#(\d+)[^\[\]]*\]")
"""square brackets that hold at least one ``#<story id>``"""
STORY_ID = re.compile(r"#(\d+)")


def api_root(value):
    """The API's base URL: the field's value, else Tracker's own."""
    root = str(value or "").strip() or API_ROOT
    parts = urlsplit(root)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"API URL: {redact_url(root)!r} is not an http or https URL")
    return root.rstrip("/")


def story_ids(message):
    """The story ids a commit message names, in order, each once."""
    found = []
    for bracket in STORY_REFERENCE.finditer(message or ""):
        for story in STORY_ID.findall(bracket.group(0)):
            if story not in found:
                found.append(story)
    return found


def author_name(commit):
    """The name part of ``raw_author`` (``Name <mail>``), else the author's user name."""
    raw = str(commit.get("raw_author") or "")
    name = raw.split("<", 1)[0].strip()
    return name or str(commit.get("author") or "")


def source_commit(payload, commit):
    return {
        "source_commit": {
            "commit_id": commit.get("raw_node") or commit.get("node"),
            "message": str(commit.get("message") or "").strip(),
            "url": template_values(payload, commit)["commit.url"],
            "author": author_name(commit),
        }
    }


class PivotalTrackerBroker(BaseBroker):
    def handle(self, payload):
        token = str(self.get_local("Token") or "").strip()
        if not token:
            raise ConfigurationError("Token: required; create one on your Tracker profile page")
        root = api_root(self.get_local("API URL"))
        named = [c for c in payload.get("commits") or [] if story_ids(c.get("message"))]
        if not named:
            return {"message": "no commit names a Tracker story; nothing sent", "sent": []}
        session = gateway_session(payload)
        sent = []
        for commit in named:
            self.post(session, f"{root}/source_commits", token, source_commit(payload, commit))
            sent.append({"node": commit.get("node"), "stories": story_ids(commit.get("message"))})
            self.log.info(
                "sent %s to Tracker for stories %s", commit.get("node"), sent[-1]["stories"]
            )
        return {"message": f"sent {len(sent)} commit(s) to Pivotal Tracker", "sent": sent}

    def post(self, session, url, token, document):
        headers = {"X-TrackerToken": token}
        try:
            response = session.request(
                "POST", url, json=document, headers=headers, allow_redirects=False
            )
        except requests.Timeout:
            raise TransientError("Pivotal Tracker did not answer in time") from None
        except requests.RequestException:
            raise TransientError("Pivotal Tracker could not be reached") from None
        refused = response.headers.get(REFUSED_HEADER)
        if response.status_code in (401, 403) and not refused:
            raise ConfigurationError(
                f"Token: Pivotal Tracker refused the API token "
                f"({response.status_code} {error_code(response)})"
            )
        return raise_for_outcome(response)


def error_code(response):
    """Tracker's error ``code`` (``invalid_authentication``, ...) from its JSON answer."""
    try:
        answer = response.json()
    except ValueError:
        return ""
    return str(answer.get("code") or "") if isinstance(answer, dict) else ""
