"""POST: sends each push to a URL, like an HTTP publish/subscribe service.

The body is what Bitbucket actually sent — form-encoded ``payload=<json>`` —
or, when the service's "Content type" says ``application/json``, the JSON
document itself. Credentials in the URL (``https://user:pass@host/``) become
HTTP Basic. Every request carries the delivery id; with a "Secret" it is also
signed (Standard Webhooks headers). A non-2xx answer fails the attempt: 401,
403, 404 and 410 as a configuration error, anything else as transient.

Runs under the sandbox's RestrictedPython policy: no names starting with ``_``.
"""

import json
from urllib.parse import unquote, urlencode, urlsplit, urlunsplit

from brokerage_sdk import (
    BaseBroker,
    ConfigurationError,
    forward_payload,
    gateway_session,
    redact_url,
    webhook_headers,
)

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


def split_credentials(url):
    """``(url without user:pass@, (user, password) or None)``; ConfigurationError if unusable."""
    if not url:
        raise ConfigurationError("URL: required; set the address to POST to")
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"URL: {redact_url(url)!r} is not an http or https URL")
    credentials, at, host = parts.netloc.rpartition("@")
    if not at:
        return url.strip(), None
    user, colon, password = credentials.partition(":")
    bare = urlunsplit((parts.scheme, host, parts.path or "/", parts.query, ""))
    return bare, (unquote(user), unquote(password))


def encode(document, content_type):
    """The request body for ``document`` in ``content_type``."""
    text = json.dumps(document)
    if content_type == JSON:
        return text.encode("utf-8")
    return urlencode({"payload": text}).encode("ascii")


class PostBroker(BaseBroker):
    def handle(self, payload):
        url, auth = split_credentials(self.get_local("URL"))
        content_type = self.get_local("Content type") or FORM
        if content_type not in (FORM, JSON):
            raise ConfigurationError(f"Content type: {content_type!r} is not {FORM} or {JSON}")
        body = encode(forward_payload(payload), content_type)
        headers = {"Content-Type": content_type}
        secret = self.get_local("Secret")
        if secret:
            message_id = (payload.get("delivery") or {}).get("id") or "local"
            headers.update(webhook_headers(secret, message_id, body))
        response = gateway_session(payload).checked(
            "POST", url, data=body, headers=headers, auth=auth
        )
        self.log.info("POST %s answered %d", redact_url(url), response.status_code)
        return {
            "message": f"POST {redact_url(url)}: {response.status_code}",
            "status": response.status_code,
            "signed": bool(secret),
        }
