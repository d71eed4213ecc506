"""The web pages through Flask's test client (both databases): sign-in, CSRF on every
POST, whose repository is whose, the service form (masking, checkboxes, errors), the
actions that share the REST API's code, pagination, the operator page and /metrics."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families
from rq import SimpleWorker
from rq.serializers import JSONSerializer

from brokerage.platform.db import session_scope
from brokerage.platform.models import Service
from brokerage.platform.runtime import Runtime
from brokerage.platform.services import values_of
from brokerage.sandbox.fake import FakeBackend
from brokerage.sandbox.interface import RunResult, RunStatus
from brokerage.submissions.fields import MASK
from brokerage.submissions.models import BrokerType, BrokerVersion
from tests.platform.web.conftest import WebClient, csrf_of
from tests.support import RedisServer, Seeder, snapshot

PAGE = "/repos/marcus/project-x"

WIDGET_FIELDS = [
    {"label": "Endpoint", "type": "url", "required": True, "default": None, "help": "Where to"},
    {"label": "Api Key", "type": "password", "required": False, "default": None},
    {"label": "Verbose", "type": "boolean", "required": False, "default": False},
    {"label": "Colour", "type": "choice", "required": False, "default": "red",
     "choices": ["red", "green"]},
]  # fmt: skip


@pytest.fixture
def widget(app: Flask) -> str:
    """An approved broker type with one field of each kind the form renders differently."""
    manifest = {"name": "widget", "version": "1.0.0", "title": "Widget", "description": "A test.",
                "vendor": {"name": "Tests"}, "events": ["push"], "fields": WIDGET_FIELDS,
                "egress": [], "entry_point": "broker.py"}  # fmt: skip
    with session_scope(app.extensions["brokerage.sessionmaker"]) as session:
        kind = BrokerType(name="widget", title="Widget", builtin=False)
        version = BrokerVersion(
            broker_type=kind, version="1.0.0", manifest=manifest, state="approved"
        )
        session.add(version)
        session.flush()
        WIDGET_CONSENT["consent"] = str(version.id)
    return "Widget"


WIDGET_CONSENT: dict[str, str] = {}
"""the widget's version id, which the form carries once its admin agreed (a vendor broker)"""


def widget_form(**values: str) -> dict[str, str]:
    return {"type": "Widget", **WIDGET_CONSENT,
            **{f"f:{label}": value for label, value in values.items()}}  # fmt: skip


def service(app: Flask, service_id: int = 1) -> tuple[dict[str, Any], bool, str]:
    runtime: Runtime = app.extensions["brokerage.runtime"]
    with runtime.sessions() as session:
        found = session.get(Service, service_id)
        assert found is not None
        return values_of(found, runtime.cipher), found.enabled, found.disabled_reason


# -- signing in -------------------------------------------------------------------------


def test_pages_ask_to_sign_in_first(web: WebClient, people: Seeder) -> None:
    response = web.get(f"{PAGE}/services")
    assert response.status_code == 302
    assert response.location == f"/login?next={PAGE}/services"


def test_a_wrong_password_is_refused_and_starts_no_session(web: WebClient, people: Seeder) -> None:
    response = web.sign_in("marcus", "not the password")
    assert response.status_code == 401
    assert "Wrong username or password." in response.text
    assert web.get("/").status_code == 302
    assert web.sign_in("nobody", "not the password").status_code == 401


def test_signing_in_goes_where_the_user_was_headed_but_never_off_site(
    web: WebClient, people: Seeder
) -> None:
    token = csrf_of(web.get("/login").text)
    form = {"username": "marcus", "password": "correct horse battery", "csrf_token": token}
    response = web.client.post("/login", data={**form, "next": f"{PAGE}/deliveries"})
    assert response.location == f"{PAGE}/deliveries"
    web.client.post("/logout", data={"csrf_token": csrf_of(web.get("/").text)})
    for elsewhere in ("//evil.example/", "/\\evil.example/", "https://evil.example/"):
        token = csrf_of(web.get("/login").text)
        response = web.client.post("/login", data={**form, "csrf_token": token, "next": elsewhere})
        assert response.location == "/"
        web.client.post("/logout", data={"csrf_token": csrf_of(web.get("/").text)})


def test_signing_out_ends_the_session(web: WebClient, people: Seeder) -> None:
    web.sign_in("marcus")
    assert web.get("/").status_code == 200
    assert web.post("/logout").status_code == 303
    assert web.get("/").status_code == 302


def test_the_api_never_accepts_the_session_cookie(web: WebClient, people: Seeder) -> None:
    web.sign_in("marcus")
    assert web.get("/1.0/repositories/marcus/project-x/services").status_code == 401


# -- CSRF -------------------------------------------------------------------------------

POSTS = [
    (f"{PAGE}/services", widget_form(Endpoint="https://example.com/hook")),
    (f"{PAGE}/services/1", widget_form(Endpoint="https://example.com/changed")),
    (f"{PAGE}/services/1/delete", {}),
    (f"{PAGE}/services/1/disable", {}),
    (f"{PAGE}/services/1/test", {}),
    ("/logout", {}),
]


@pytest.mark.parametrize("token", ["", "forged-token"])
@pytest.mark.parametrize(("path", "form"), POSTS)
def test_every_post_without_the_sessions_token_is_refused_and_changes_nothing(
    app: Flask,
    web: WebClient,
    people: Seeder,
    widget: str,
    path: str,
    form: dict[str, str],
    token: str,
) -> None:
    web.sign_in("marcus")
    assert (
        web.post(f"{PAGE}/services", widget_form(Endpoint="https://example.com/a")).status_code
        == 303
    )
    before = snapshot(app)
    response = web.client.post(path, data={**form, "csrf_token": token})
    assert response.status_code == 400
    assert "CSRF token missing or wrong" in response.text
    assert snapshot(app) == before
    assert web.get("/").status_code == 200  # still signed in: /logout did not run


def test_a_login_form_from_another_site_is_refused(web: WebClient, people: Seeder) -> None:
    response = web.client.post(
        "/login", data={"username": "marcus", "password": "correct horse battery"}
    )
    assert response.status_code == 400
    assert web.get("/").status_code == 302


# -- whose repository ---------------------------------------------------------------------


def test_another_users_private_repository_does_not_exist_for_them(
    app: Flask, web: WebClient, people: Seeder, widget: str
) -> None:
    web.sign_in("eve")
    assert web.get(f"{PAGE}/services").status_code == 404
    before = snapshot(app)
    response = web.post(f"{PAGE}/services", widget_form(Endpoint="https://evil.example/"))
    assert response.status_code == 404
    assert "does not exist" in response.text
    assert snapshot(app) == before


def test_another_users_public_repository_is_forbidden(web: WebClient, people: Seeder) -> None:
    web.sign_in("marcus")
    response = web.get("/repos/eve/open/services")
    assert response.status_code == 403
    assert "not an admin" in response.text
    assert "eve/open" not in web.get("/").text


def test_operators_administer_every_repository(web: WebClient, people: Seeder) -> None:
    web.sign_in("olga")
    assert web.get(f"{PAGE}/services").status_code == 200
    home = web.get("/").text
    assert "marcus/project-x" in home and "eve/open" in home


# -- the service form ----------------------------------------------------------------------


def test_the_dropdown_offers_the_approved_types(
    web: WebClient, people: Seeder, widget: str
) -> None:
    web.sign_in("marcus")
    page = web.get(f"{PAGE}/services").text
    builtin, vendors = page.split('<optgroup label="Built-in brokers">')[1].split("<optgroup")
    assert '<option value="POST">POST</option>' in builtin and "Widget" not in builtin
    assert vendors.startswith(' label="Vendors&#39; brokers (reviewed and approved)">')
    assert '<option value="Widget">Widget — by Tests</option>' in vendors
    assert "POST" not in vendors
    consent = web.get(f"{PAGE}/services/new?type=widget").text
    assert "Before you add a Widget service" in consent and 'name="f:Endpoint"' not in consent
    form = web.get(f"{PAGE}/services/new?type=widget&consent={WIDGET_CONSENT['consent']}").text
    for label in ("Endpoint", "Api Key", "Verbose", "Colour", "Branches"):
        assert f'name="f:{label}"' in form
    assert 'type="password" id="field-api-key"' in form
    assert '<label for="field-endpoint">' in form


def test_several_services_of_one_type(
    app: Flask, web: WebClient, people: Seeder, widget: str
) -> None:
    web.sign_in("marcus")
    for n in range(3):
        response = web.post(f"{PAGE}/services", widget_form(Endpoint=f"https://example.com/{n}"))
        assert response.status_code == 303
        assert response.location == f"{PAGE}/services/{n + 1}"
    page = web.get(f"{PAGE}/services").text
    assert page.count('class="service ') == 3


def test_a_password_is_kept_but_never_shown_back(
    app: Flask, web: WebClient, people: Seeder, widget: str
) -> None:
    web.sign_in("marcus")
    web.post(
        f"{PAGE}/services",
        widget_form(**{"Endpoint": "https://u:hunter22@example.com/x", "Api Key": "s3cr3t-key"}),
    )
    for path in (f"{PAGE}/services", f"{PAGE}/services/1"):
        page = web.get(path).text
        assert "s3cr3t-key" not in page and "hunter22" not in page
        assert MASK in page
    # Saving the form as shown keeps the secrets (the API's masked round trip).
    shown = web.get(f"{PAGE}/services/1").text
    assert f'value="{MASK}"' in shown
    web.post(
        f"{PAGE}/services/1",
        {"f:Endpoint": f"https://u:{MASK}@example.com/x", "f:Api Key": MASK, "f:Colour": "green"},
    )
    values, _enabled, _ = service(app)
    assert values["Api Key"] == "s3cr3t-key"
    assert values["Endpoint"] == "https://u:hunter22@example.com/x"
    assert values["Colour"] == "green"


def test_an_unticked_checkbox_means_false(
    app: Flask, web: WebClient, people: Seeder, widget: str
) -> None:
    web.sign_in("marcus")
    web.post(f"{PAGE}/services", widget_form(Endpoint="https://example.com/", Verbose="true"))
    assert service(app)[0]["Verbose"] is True
    web.post(f"{PAGE}/services/1", {"f:Endpoint": "https://example.com/", "f:Colour": "red"})
    values = service(app)[0]
    assert values["Verbose"] is False
    assert values["Endpoint"] == "https://example.com/"  # the seed's clear-all rule did not fire


def test_a_bad_value_shows_the_form_again_and_changes_nothing(
    app: Flask, web: WebClient, people: Seeder, widget: str
) -> None:
    web.sign_in("marcus")
    before = snapshot(app)
    response = web.post(
        f"{PAGE}/services",
        widget_form(Endpoint="ftp://example.com/", **{"Api Key": "typed-secret"}),
    )
    assert response.status_code == 400
    assert "is not an http or https URL" in response.text
    assert 'value="ftp://example.com/"' in response.text
    assert "typed-secret" not in response.text
    assert snapshot(app) == before
    web.post(f"{PAGE}/services", widget_form(Endpoint="https://example.com/"))
    response = web.post(f"{PAGE}/services/1", {"f:Endpoint": "nonsense", "f:Colour": "blue"})
    assert response.status_code == 400
    assert service(app)[0]["Endpoint"] == "https://example.com/"


def test_an_unknown_type_is_a_clear_error(web: WebClient, people: Seeder) -> None:
    web.sign_in("marcus")
    response = web.get(f"{PAGE}/services/new?type=nope")
    assert response.status_code == 400
    assert "unknown service type" in response.text


def test_disable_enable_and_remove(app: Flask, web: WebClient, people: Seeder, widget: str) -> None:
    web.sign_in("marcus")
    web.post(f"{PAGE}/services", widget_form(Endpoint="https://example.com/"))
    web.post(f"{PAGE}/services/1/disable")
    assert service(app)[1:] == (False, "disabled by marcus")
    page = web.get(f"{PAGE}/services/1").text
    assert "This service is disabled." in page and "disabled by marcus" in page
    web.post(f"{PAGE}/services/1/enable")
    assert service(app)[1:] == (True, "")
    assert web.post(f"{PAGE}/services/1/delete").location == f"{PAGE}/services"
    assert web.get(f"{PAGE}/services/1").status_code == 404


# -- deliveries -----------------------------------------------------------------------------


def failing(*_args: Any) -> RunResult:
    return RunResult(
        status=RunStatus.FAILED,
        exit_code=1,
        error={"type": "ConfigurationError", "kind": "configuration", "message": "receiver down"},
    )


@pytest.mark.parametrize("fake", [FakeBackend(handler=failing)])
def test_an_auto_disabled_service_shows_why(
    app: Flask, web: WebClient, people: Seeder, deliver: Any, fake: FakeBackend
) -> None:
    web.sign_in("marcus")
    web.post(f"{PAGE}/services", {"type": "POST", "f:URL": "http://127.0.0.1:9/hook"})
    for _ in range(2):  # AUTO_DISABLE_AFTER=2; a configuration error is not retried
        web.post(f"{PAGE}/services/1/test")
        deliver()
    assert service(app)[1] is False
    page = web.get(f"{PAGE}/services").text
    assert 'class="banner" role="alert"' in page
    assert "disabled after 2 failed deliveries in a row" in page
    assert "receiver down" in web.get(f"{PAGE}/services/1").text


def test_a_test_push_is_delivered_and_shown_with_its_request_log(
    web: WebClient, people: Seeder, deliver: Any, fake: FakeBackend
) -> None:
    web.sign_in("marcus")
    web.post(f"{PAGE}/services", {"type": "POST", "f:URL": "http://127.0.0.1:9/hook"})
    response = web.post(f"{PAGE}/services/1/test")
    assert response.status_code == 303
    deliver()
    page = web.get(response.location).text
    assert "http://hooks.example.com/ci" in page
    assert "address_denied" in page
    assert "POST http://hooks.example.com/ci -&gt; 200" in page
    assert fake.calls[0].envelope["delivery"]["attempt"] == 1


def test_redeliver_runs_the_same_delivery_again(
    app: Flask, web: WebClient, people: Seeder, deliver: Any, fake: FakeBackend
) -> None:
    web.sign_in("marcus")
    web.post(f"{PAGE}/services", {"type": "POST", "f:URL": "http://127.0.0.1:9/hook"})
    location = web.post(f"{PAGE}/services/1/test").location
    delivery_id = location.rsplit("/", 1)[1]
    response = web.post(f"{location}/redeliver")
    assert response.status_code == 409  # queued, not run yet: refused like the API refuses it
    deliver()
    assert web.post(f"{location}/redeliver").status_code == 303
    deliver()
    assert [c.envelope["delivery"] for c in fake.calls] == [
        {"id": delivery_id, "attempt": 1},
        {"id": delivery_id, "attempt": 2},
    ]
    assert "Attempt 2" in web.get(location).text


def test_long_delivery_lists_are_paginated(
    app: Flask, web: WebClient, people: Seeder, widget: str
) -> None:
    web.sign_in("marcus")
    web.post(f"{PAGE}/services", widget_form(Endpoint="https://example.com/"))
    for _ in range(30):
        web.post(f"{PAGE}/services/1/test")
    first = web.get(f"{PAGE}/deliveries").text
    assert first.count("<tr>") - 1 == 25
    assert "Page 1 of 2 (30)" in first
    second = web.get(f"{PAGE}/deliveries?page=2").text
    assert second.count("<tr>") - 1 == 5
    assert web.get(f"{PAGE}/services/1?pagelen=10&page=3").text.count("<tr>") - 1 == 10
    assert web.get(f"{PAGE}/deliveries?page=x").status_code == 400
    assert web.get(f"{PAGE}/deliveries?status=succeeded").text.count("<tr>") == 0


def test_a_delivery_of_another_repository_is_not_found(
    web: WebClient, people: Seeder, widget: str, app: Flask
) -> None:
    web.sign_in("marcus")
    web.post(f"{PAGE}/services", widget_form(Endpoint="https://example.com/"))
    location = web.post(f"{PAGE}/services/1/test").location
    delivery_id = location.rsplit("/", 1)[1]
    people.repo("marcus", "other")
    assert web.get(f"/repos/marcus/other/deliveries/{delivery_id}").status_code == 404
    assert web.post(f"/repos/marcus/other/deliveries/{delivery_id}/redeliver").status_code == 404


# -- operators ----------------------------------------------------------------------------


def test_the_health_page_is_for_operators(web: WebClient, people: Seeder) -> None:
    web.sign_in("marcus")
    assert web.get("/ops").status_code == 403
    assert "Operations" not in web.get("/").text


def test_the_health_page_shows_queue_workers_and_failures(
    app: Flask, runtime: Runtime, web: WebClient, people: Seeder, deliver: Any, widget: str
) -> None:
    web.sign_in("marcus")
    web.post(f"{PAGE}/services", {"type": "POST", "f:URL": "http://127.0.0.1:9/hook"})
    web.post(f"{PAGE}/services", widget_form(Endpoint="https://example.com/"))
    web.post(f"{PAGE}/services/1/test")
    web.post(f"{PAGE}/services/2/test")  # no bundle for Widget: fails without retries
    deliver()
    web.post(f"{PAGE}/services/1/test")  # left on the queue
    worker = SimpleWorker(
        [runtime.queue],
        connection=runtime.redis,
        serializer=JSONSerializer,
        name="worker-on-host-7",
    )
    worker.register_birth()
    web.client.post("/logout", data={"csrf_token": web.token})
    web.sign_in("olga")
    page = web.get("/ops").text
    assert "worker-on-host-7" in page
    assert '<span class="n">1</span> queued' in page
    assert "Recent failures" in page and "Widget" in page
    assert "address_denied" in page  # the gateway refusal of the canned run
    worker.register_death()


def test_the_health_page_says_when_redis_is_down(
    web: WebClient, people: Seeder, redis_server: RedisServer
) -> None:
    web.sign_in("olga")
    redis_server.stop()
    page = web.get("/ops")
    assert page.status_code == 200
    assert "Redis did not answer" in page.text


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_in_prometheus_text_format(
    app: Flask, web: WebClient, people: Seeder, deliver: Any
) -> None:
    web.sign_in("marcus")
    web.post(f"{PAGE}/services", {"type": "POST", "f:URL": "http://127.0.0.1:9/hook"})
    web.post(f"{PAGE}/services/1/test")
    deliver()
    web.post(f"{PAGE}/services/1/test")
    response = web.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    samples = metric_samples(response.text)
    assert samples[("brokerage_deliveries", (("status", "succeeded"),))] == 1
    assert samples[("brokerage_deliveries", (("status", "queued"),))] == 1
    assert samples[("brokerage_run_duration_seconds_count", ())] == 1
    assert samples[("brokerage_run_duration_seconds_bucket", (("le", "0.025"),))] == 0
    assert samples[("brokerage_run_duration_seconds_bucket", (("le", "0.05"),))] == 1
    assert samples[("brokerage_run_duration_seconds_sum", ())] == pytest.approx(0.042)
    assert samples[("brokerage_gateway_refusals_total", (("reason", "address_denied"),))] == 1
    assert samples[("brokerage_queue_jobs", (("state", "queued"),))] == 1
    assert samples[("brokerage_redis_up", ())] == 1


def test_metrics_still_answer_without_redis(
    web: WebClient, people: Seeder, redis_server: RedisServer
) -> None:
    redis_server.stop()
    samples = metric_samples(web.client.get("/metrics").text)
    assert samples[("brokerage_redis_up", ())] == 0
    assert samples[("brokerage_deliveries", (("status", "failed"),))] == 0


def test_metrics_can_require_a_token(app: Flask, web: WebClient) -> None:
    app.config["METRICS_TOKEN"] = "scrape-me"
    assert web.client.get("/metrics").status_code == 401
    wrong = web.client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    right = web.client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
    assert right.status_code == 200
