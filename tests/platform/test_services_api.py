"""The services resource, checked against its contract's shapes (tests/fixtures/services_*.json),
rules and error cases."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from brokerage.core.accounts import Role
from brokerage.platform.models import Service
from tests.support import Seeder, basic, post_fields, snapshot

BASE = "/1.0/repositories/tutorials/testrepo/services"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def owner(seed: Seeder) -> dict[str, str]:
    seed.user("tutorials")
    seed.repo("tutorials", "testrepo")
    return basic("tutorials")


def add(client: FlaskClient, auth: dict[str, str], body: str, base: str = BASE + "/") -> dict:
    response = client.post(base, data=body, headers={**auth, **FORM})
    assert response.status_code == 200, response.json
    return response.json


def test_post_returns_the_seed_shape(client: FlaskClient, owner: dict[str, str]) -> None:
    created = add(client, owner, "type=POST&URL=https%3A%2F%2Fbitbucket.org/post")
    assert created == {
        "id": created["id"],
        "service": {
            "fields": post_fields("https://bitbucket.org/post"),
            "type": "POST",
        },
    }


def test_type_is_case_insensitive_and_answered_in_catalogue_spelling(
    client: FlaskClient, owner: dict[str, str]
) -> None:
    assert add(client, owner, "type=post")["service"]["type"] == "POST"
    assert add(client, owner, "type=email%20DIFF")["service"]["type"] == "Email Diff"


def test_only_type_is_required_and_unset_fields_are_empty(
    client: FlaskClient, owner: dict[str, str]
) -> None:
    created = add(client, owner, "type=Basecamp")
    assert created["service"] == {
        "fields": [
            {"name": "Password", "value": ""},
            {"name": "Username", "value": ""},
            {"name": "Discussion URL", "value": ""},
            {"name": "Branches", "value": ""},
        ],
        "type": "Basecamp",
    }


def test_list_and_single_get_with_and_without_trailing_slash(
    client: FlaskClient, owner: dict[str, str]
) -> None:
    first = add(client, owner, "type=Email&Email=mcatalbas%40atlassian.com", base=BASE)
    second = add(client, owner, "type=POST&URL=http%3A%2F%2Fexample.com%2Fpost")
    for url in (BASE, BASE + "/"):
        listed = client.get(url, headers=owner)
        assert listed.status_code == 200
        assert listed.json == [first, second]
    for url in (f"{BASE}/{second['id']}", f"{BASE}/{second['id']}/"):
        single = client.get(url, headers=owner)
        assert single.status_code == 200
        assert single.json == [second]  # a single GET answers a one-element list


def test_several_services_of_one_type(client: FlaskClient, owner: dict[str, str]) -> None:
    urls = [f"http://example.com/hook{i}" for i in range(3)]
    for url in urls:
        add(client, owner, f"type=POST&URL={url}")
    listed = client.get(BASE, headers=owner).json
    assert [s["service"]["fields"][0]["value"] for s in listed] == urls


def test_put_with_every_field_updates(client: FlaskClient, owner: dict[str, str]) -> None:
    sid = add(client, owner, "type=POST&URL=https%3A%2F%2Fbitbucket.org/post")["id"]
    response = client.put(
        f"{BASE}/{sid}/", data="URL=https://bitbucket.org/new_post", headers={**owner, **FORM}
    )
    assert response.status_code == 200
    assert response.json == {
        "id": sid,
        "service": {
            "fields": post_fields("https://bitbucket.org/new_post"),
            "type": "POST",
        },
    }
    assert "X-Brokerage-Warning" not in response.headers


@pytest.mark.parametrize(
    ("body", "warning"),
    [
        ("Username=bob", "omitted Password, Discussion URL"),
        (
            "Password=x&Username=bob&Discussion%20URL=http://b.example/d&Colour=red",
            "unknown Colour",
        ),
        ("", "omitted Password, Username, Discussion URL"),
    ],
)
def test_put_missing_or_unknown_parameter_clears_every_value(
    client: FlaskClient, owner: dict[str, str], body: str, warning: str
) -> None:
    sid = add(
        client,
        owner,
        "type=Basecamp&Username=alice&Password=s3cret&Discussion%20URL=http://b.example/d",
    )["id"]
    response = client.put(f"{BASE}/{sid}", data=body, headers={**owner, **FORM})
    assert response.status_code == 200
    assert [f["value"] for f in response.json["service"]["fields"]] == ["", "", "", ""]
    assert warning in response.headers["X-Brokerage-Warning"]


def test_password_fields_are_masked_and_survive_a_get_put_round_trip(
    client: FlaskClient, owner: dict[str, str], app: Flask
) -> None:
    sid = add(
        client,
        owner,
        "type=Basecamp&Username=alice&Password=s3cret&Discussion%20URL=http://b.example/d",
    )["id"]
    shown = client.get(f"{BASE}/{sid}", headers=owner).json[0]["service"]["fields"]
    assert {"name": "Password", "value": "********"} in shown
    form = {f["name"]: f["value"] for f in shown}
    form["Username"] = "alice2"
    assert client.put(f"{BASE}/{sid}", data=form, headers=owner).status_code == 200
    from brokerage.platform.services import values_of

    with app.app_context():
        from brokerage.platform.db import get_session

        service = get_session().get(Service, sid)
        assert values_of(service, app.extensions["brokerage.cipher"]) == {
            "Password": "s3cret",
            "Username": "alice2",
            "Discussion URL": "http://b.example/d",
        }


def test_credentials_in_a_url_are_masked_but_kept(
    client: FlaskClient, owner: dict[str, str]
) -> None:
    created = add(
        client, owner, "type=POST&URL=https%3A%2F%2Fci%3Ahunter22%40jenkins.example%2Fhook"
    )
    assert created["service"]["fields"][0]["value"] == "https://ci:********@jenkins.example/hook"
    sid = created["id"]
    put = client.put(
        f"{BASE}/{sid}", data={"URL": "https://ci:********@jenkins.example/hook"}, headers=owner
    )
    assert put.json["service"]["fields"][0]["value"] == "https://ci:********@jenkins.example/hook"


def test_field_values_are_encrypted_at_rest(
    client: FlaskClient, owner: dict[str, str], app: Flask
) -> None:
    add(client, owner, "type=Basecamp&Username=alice&Password=topsecret-xyzzy")
    with app.extensions["brokerage.engine"].connect() as conn:
        stored = conn.execute(select(Service.config_ciphertext)).scalar_one()
    assert "topsecret-xyzzy" not in stored and "alice" not in stored


def test_delete_removes_the_service(client: FlaskClient, owner: dict[str, str]) -> None:
    sid = add(client, owner, "type=POST&URL=http://example.com/p")["id"]
    response = client.delete(f"{BASE}/{sid}/", headers=owner)
    assert response.status_code == 204
    assert client.get(BASE, headers=owner).json == []
    assert client.get(f"{BASE}/{sid}", headers=owner).status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "message"),
    [
        ("post", BASE, "type=Carrier%20Pigeon", FORM, 400, "unknown service type 'Carrier Pigeon'"),
        ("post", BASE, "URL=http://example.com", FORM, 400, "type: required"),
        ("post", BASE, "type=POST&URL=ftp://example.com/x", FORM, 400, "URL:"),
        (
            "post",
            BASE,
            "type=POST&Colour=red",
            FORM,
            400,
            "unknown parameter 'Colour' for type POST",
        ),
        (
            "post",
            BASE,
            "type=POST&URL=http://a.example&URL=http://b.example",
            FORM,
            400,
            "given 2 times",
        ),
        ("post", BASE, "type=Email&Email=not-an-address", FORM, 400, "Email:"),
        (
            "post",
            BASE,
            '{"type": "POST"}',
            {"Content-Type": "application/json"},
            400,
            "malformed form data",
        ),
        ("post", BASE, b"type=POST&URL=\xff\xfe", FORM, 400, "not UTF-8"),
        (
            "post",
            "/1.0/repositories/tutorials/nope/services",
            "type=POST",
            FORM,
            404,
            "repository tutorials/nope does not exist",
        ),
        (
            "post",
            "/1.0/repositories/ghost/testrepo/services",
            "type=POST",
            FORM,
            404,
            "does not exist",
        ),
        ("get", BASE + "/999", "", {}, 404, "service 999 does not exist"),
        ("put", BASE + "/999", "URL=http://x.example", FORM, 404, "service 999 does not exist"),
        ("delete", BASE + "/999", "", {}, 404, "service 999 does not exist"),
    ],
)
def test_bad_requests_get_a_clear_error_and_change_nothing(
    client: FlaskClient,
    owner: dict[str, str],
    app: Flask,
    method: str,
    path: str,
    body: str | bytes,
    headers: dict[str, str],
    status: int,
    message: str,
) -> None:
    existing = add(client, owner, "type=POST&URL=http://example.com/keep")
    before = snapshot(app)
    response = getattr(client, method)(path, data=body, headers={**owner, **headers})
    assert response.status_code == status
    assert message in response.json["error"]["message"]
    assert snapshot(app) == before
    assert client.get(BASE, headers=owner).json == [existing]


def test_put_with_an_invalid_value_changes_nothing(
    client: FlaskClient, owner: dict[str, str], app: Flask
) -> None:
    sid = add(client, owner, "type=POST&URL=http://example.com/keep")["id"]
    before = snapshot(app)
    response = client.put(
        f"{BASE}/{sid}", data="URL=javascript:alert(1)", headers={**owner, **FORM}
    )
    assert response.status_code == 400
    assert response.json["error"]["message"].startswith("URL:")
    assert snapshot(app) == before


@pytest.mark.parametrize("method", ["get", "post", "put", "delete"])
def test_every_call_authenticates(
    client: FlaskClient, owner: dict[str, str], app: Flask, method: str
) -> None:
    sid = add(client, owner, "type=POST&URL=http://example.com/keep")["id"]
    before = snapshot(app)
    path = BASE if method in ("get", "post") else f"{BASE}/{sid}"
    for headers in (
        {},
        basic("tutorials", "wrong password"),
        {"Authorization": "Bearer brk_forged"},
    ):
        response = getattr(client, method)(
            path, data="type=POST&URL=http://x.example", headers={**headers, **FORM}
        )
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Basic")
        assert response.json["error"]["status"] == 401
    assert snapshot(app) == before


def test_non_admins_are_refused(
    client: FlaskClient, owner: dict[str, str], seed: Seeder, app: Flask
) -> None:
    seed.user("mallory")
    seed.repo("tutorials", "public-repo", is_private=False)
    before = snapshot(app)
    public = client.post(
        "/1.0/repositories/tutorials/public-repo/services",
        data="type=POST",
        headers={**basic("mallory"), **FORM},
    )
    assert public.status_code == 403
    assert "not an admin" in public.json["error"]["message"]
    private = client.get(BASE, headers=basic("mallory"))
    assert private.status_code == 404  # a private repository is not revealed to outsiders
    assert snapshot(app) == before


def test_listed_admins_and_operators_administer(
    client: FlaskClient, owner: dict[str, str], seed: Seeder
) -> None:
    seed.user("helper")
    seed.user("ops", Role.OPERATOR)
    seed.repo("tutorials", "shared", admins=("helper",))
    for who in ("helper", "ops"):
        response = client.post(
            "/1.0/repositories/tutorials/shared/services",
            data="type=POST",
            headers={**basic(who), **FORM},
        )
        assert response.status_code == 200


def test_api_tokens_authenticate_as_bearer_and_as_basic_password(
    client: FlaskClient, owner: dict[str, str], seed: Seeder
) -> None:
    token = seed.token("tutorials")
    assert client.get(BASE, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert client.get(BASE, headers=basic("tutorials", token)).status_code == 200
    seed.user("other")
    assert client.get(BASE, headers=basic("other", token)).status_code == 401


def test_put_may_leave_out_optional_fields_which_keep_their_values(
    client: FlaskClient, owner: dict[str, str]
) -> None:
    sid = add(
        client, owner, "type=POST&URL=http://a.example/&Content%20type=application/json&Secret=s3"
    )["id"]
    response = client.put(f"{BASE}/{sid}", data="URL=http://b.example/", headers={**owner, **FORM})
    assert "X-Brokerage-Warning" not in response.headers
    assert response.json["service"]["fields"] == [
        {"name": "URL", "value": "http://b.example/"},
        {"name": "Content type", "value": "application/json"},
        {"name": "Secret", "value": "********"},
        {"name": "Branches", "value": ""},
    ]


def test_every_type_takes_the_platform_branch_filter(
    client: FlaskClient, owner: dict[str, str]
) -> None:
    created = add(client, owner, "type=Email&Email=a%40example.org&Branches=main,+release/*")
    assert created["service"]["fields"][-1] == {"name": "Branches", "value": "main, release/*"}
    sid = created["id"]
    kept = client.put(f"{BASE}/{sid}", data="Email=b@example.org", headers={**owner, **FORM})
    assert kept.json["service"]["fields"][-1]["value"] == "main, release/*"
    changed = client.put(
        f"{BASE}/{sid}", data="Email=b@example.org&branches=", headers={**owner, **FORM}
    )
    assert changed.json["service"]["fields"][-1]["value"] == ""
