"""FriendFeed: one entry per pushed changeset, the commit message as its first comment.

The entry's title is ``Format`` rendered for the changeset (default
``${repository.name} - ${commit.author}``; ``${commit.tinyurl}`` works), its link the
changeset's page. Each entry is FriendFeed's published ``POST /api/share`` (API v1):
form fields ``title``, ``link`` and ``comment``, HTTP Basic with the Nickname and
Remote Key. FriendFeed closed in 2015: the broker talks to any server that keeps
that API, at API URL.

Runs under the sandbox's RestrictedPython policy: no names starting with ``_``.
"""

from urllib.parse import urlsplit

from brokerage_sdk import (
    BaseBroker,
    ConfigurationError,
    gateway_session,
    raise_for_outcome,
    redact_url,
    render,
    template_values,
)

DEFAULT_FORMAT = "${repository.name} - ${commit.author}"
DEFAULT_API = "https://friendfeed.com/api"
MAX_ENTRIES = 10
"""entries per push at most"""


class FriendFeedBroker(BaseBroker):
    def handle(self, payload):
        url = self.share_url()
        auth = self.credentials()
        template = self.get_local("Format") or DEFAULT_FORMAT
        session = gateway_session(payload)
        commits = payload.get("commits") or []
        entries = []
        for commit in commits[:MAX_ENTRIES]:
            form = {
                "title": render(template, payload, commit),
                "link": template_values(payload, commit)["commit.url"],
                "comment": str(commit.get("message", "")).strip(),
            }
            response = session.fetch("POST", url, data=form, auth=auth)
            check(response)
            found = (response.json().get("entries") or [{}])[0]
            entries.append(str(found.get("id", "")))
            self.log.info("shared %s", form["title"])
        message = f"shared {len(entries)} entr{'y' if len(entries) == 1 else 'ies'}"
        if len(commits) > MAX_ENTRIES:
            message += f", {len(commits) - MAX_ENTRIES} changeset(s) over the limit not shared"
        return {"message": message, "entries": entries}

    def share_url(self):
        base = str(self.get_local("API URL") or DEFAULT_API).strip().rstrip("/")
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(f"API URL: {redact_url(base)!r} is not an http(s) URL")
        return base + "/share"

    def credentials(self):
        nickname = str(self.get_local("Nickname") or "").strip()
        key = str(self.get_local("Remote Key") or "").strip()
        if not nickname or not key:
            raise ConfigurationError(
                "Nickname and Remote Key: both are required (friendfeed.com/remotekey)"
            )
        return (nickname, key)


def check(response):
    if response.status_code == 401:
        raise ConfigurationError("FriendFeed refused the Nickname and Remote Key (401)")
    raise_for_outcome(response)
