"""Twitter: one post per pushed changeset, text from a template.

The text is ``Format`` rendered for the changeset (default
``${repository.name} - ${commit.author} - ${commit.message}``; ``${commit.tinyurl}``
is the platform's short link), cut to Twitter's 280 characters. Each post is
``POST /2/tweets`` with a JSON body, signed OAuth 1.0a user context (``oauth1``).

A retry re-posts the whole push; Twitter refuses a duplicate of a post it already
has (403 "duplicate content"), which counts here as already sent.

Runs under the sandbox's RestrictedPython policy: no names starting with ``_``.
"""

import json
import re

from brokerage_sdk import (
    BaseBroker,
    ConfigurationError,
    gateway_session,
    raise_for_outcome,
    render,
)
from oauth1 import authorization_header

DEFAULT_FORMAT = "${repository.name} - ${commit.author} - ${commit.message}"
DEFAULT_API = "https://api.twitter.com"
MAX_CHARS = 280
"""characters in one post"""
MAX_POSTS = 10
"""posts per push at most; later changesets of a bigger push are not posted"""
CREDENTIAL_FIELDS = ("Consumer Key", "Consumer Secret", "Token", "Secret")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def shorten(text, limit=MAX_CHARS):
    """One line of at most ``limit`` characters, without control characters."""
    text = " ".join(CONTROL.sub(" ", text).split())
    if len(text) <= limit:
        return text
    return text[: limit - 1].rstrip() + "…"


def is_duplicate(response):
    return response.status_code == 403 and "duplicate" in response.text.lower()


class TwitterBroker(BaseBroker):
    def handle(self, payload):
        credentials = self.credentials()
        endpoint = (self.get_local("API URL") or DEFAULT_API).rstrip("/") + "/2/tweets"
        template = self.get_local("Format") or DEFAULT_FORMAT
        commits = (payload.get("commits") or [])[:MAX_POSTS]
        session = gateway_session(payload)
        posted, duplicates = [], 0
        for commit in commits:
            answer = self.tweet(
                session, endpoint, credentials, shorten(render(template, payload, commit))
            )
            if answer is None:
                duplicates += 1
            else:
                posted.append(answer)
        skipped = len(payload.get("commits") or []) - len(commits)
        message = f"posted {len(posted)} tweet(s)"
        if duplicates:
            message += f", {duplicates} already posted"
        if skipped:
            message += f", {skipped} changeset(s) over the {MAX_POSTS}-post limit not posted"
        return {"message": message, "tweets": posted, "already_posted": duplicates}

    def credentials(self):
        missing = [label for label in CREDENTIAL_FIELDS if not self.get_local(label)]
        if missing:
            raise ConfigurationError(f"Twitter needs {', '.join(missing)}: set them in the service")
        return tuple(self.get_local(label) for label in CREDENTIAL_FIELDS)

    def tweet(self, session, endpoint, credentials, text):
        """The new post's id, or None when Twitter already has this text."""
        body = json.dumps({"text": text}).encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "Authorization": authorization_header("POST", endpoint, credentials),
        }
        response = session.fetch("POST", endpoint, data=body, headers=headers)
        if is_duplicate(response):
            self.log.info("already posted: %s", text)
            return None
        if response.status_code == 401:
            raise ConfigurationError(
                "Twitter refused the credentials (401): check Consumer Key, Consumer Secret, "
                "Token and Secret, and that the app has read and write permission"
            )
        raise_for_outcome(response)
        self.log.info("posted: %s", text)
        return str((response.json().get("data") or {}).get("id", ""))
