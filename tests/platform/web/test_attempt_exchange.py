"""What a receiver answered, on every attempt: the built-in brokers run in the real Docker
sandbox behind the real egress gateway (``real_deliver``), and the attempt shows the
request and the response, in the API and on the attempt page, with secrets masked."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, quote_plus, urlencode

from flask.testing import FlaskClient

from tests.builtin_brokers.harness import BrokerRig as Rig
from tests.platform.deliveries.conftest import commit, push_body
from tests.platform.web.conftest import WebClient
from tests.support import FORM, Seeder, basic

API = "/1.0/repositories/marcus/project-x"
PAGE = "/repos/marcus/project-x"


def add_service(client: FlaskClient, **fields: str) -> int:
    response = client.post(
        f"{API}/services", data=urlencode(fields), headers={**basic("marcus"), **FORM}
    )
    assert response.status_code == 200, response.json
    return int(response.json["id"])


def attempt_of(client: FlaskClient, delivery_id: str) -> dict[str, Any]:
    shown = client.get(f"{API}/deliveries/{delivery_id}", headers=basic("marcus")).json
    attempt: dict[str, Any] = shown["attempt_log"][-1]
    return attempt


def test_the_receivers_answers_are_shown(
    client: FlaskClient, web: WebClient, people: Seeder, real_deliver: Any, rig: Rig
) -> None:
    down = rig.hook_url("/status/500?" + urlencode({"body": "receiver down for maintenance"}))
    refused = rig.hook_url(
        "/status/401?"
        + urlencode({"body": '{"error":"invalid_token"}', "type": "application/json"})
    )
    web.sign_in("marcus")
    for url, answer in ((down, "receiver down for maintenance"),
                        (refused, '{"error":"invalid_token"}')):  # fmt: skip
        service_id = add_service(client, type="POST", URL=url, Secret="s3cret-signing-key")
        location = web.post(f"{PAGE}/services/{service_id}/test").location
        real_deliver()
        [request] = attempt_of(client, location.rsplit("/", 1)[1])["requests"]
        assert request["response"]["body"] == answer
        assert request["request"]["body"].startswith("payload=")
        assert dict(request["request"]["headers"])["Content-Type"].startswith(
            "application/x-www-form-urlencoded"
        )
        page = web.get(location).text
        assert '<details class="exchange"' in page
        assert f'<pre class="log body response-body">{answer.replace(chr(34), "&#34;")}' in page
        assert "s3cret-signing-key" not in json.dumps(request) + page


def test_secrets_in_the_url_headers_and_body_are_masked(
    client: FlaskClient, web: WebClient, people: Seeder, real_deliver: Any, rig: Rig
) -> None:
    """The service's URL carries a user:password (sent as Basic auth) and a token; its
    Secret turns up, form-encoded, in the body (a commit message quoting it)."""
    secret = "s3cret signing/key"
    url = rig.hook_url(
        "/status/401?" + urlencode({"body": "token rejected", "token": "query-tok-4321"}),
        userinfo="hook:url-pass-5555@",
    )
    add_service(client, type="POST", URL=url, Secret=secret)
    token = client.post(f"{API}/push-token", headers=basic("marcus")).json["token"]
    body = push_body(commit(1, f"Rotate the key, it was {secret}\n"))
    [delivery] = client.post(
        f"{API}/pushes", json=body, headers={"Authorization": f"Bearer {token}"}
    ).json["deliveries"]
    real_deliver()
    [received] = rig.hook.requests
    assert quote_plus(secret) in received.body.decode()  # it was sent
    assert received.headers["authorization"].startswith("Basic ")
    [request] = attempt_of(client, delivery["id"])["requests"]
    web.sign_in("marcus")
    shown = json.dumps(request) + web.get(f"{PAGE}/deliveries/{delivery['id']}").text
    for value in (secret, quote_plus(secret), quote(secret, safe=""), "url-pass-5555",
                  "query-tok-4321", received.headers["authorization"].split()[1]):  # fmt: skip
        assert value not in shown, value
    assert dict(request["request"]["headers"])["Authorization"] == "***"
    assert "Rotate+the+key%2C+it+was+********" in request["request"]["body"]
    assert request["response"]["body"] == "token rejected"
    assert "token=***" in request["url"] and "url-pass" not in request["url"]
