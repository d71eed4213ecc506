"""Accounts, roles, passwords and API tokens over the REST API."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from brokerage.core.accounts import ApiToken, Role, User
from tests.support import Seeder, basic, snapshot


def test_passwords_are_stored_with_scrypt(app: Flask, seed: Seeder) -> None:
    seed.user("alice")
    with app.extensions["brokerage.engine"].connect() as conn:
        stored = conn.execute(select(User.password_hash)).scalar_one()
    assert stored.startswith("scrypt:")


def test_operator_creates_users_with_roles(client: FlaskClient, seed: Seeder) -> None:
    seed.user("root", Role.OPERATOR)
    response = client.post(
        "/1.0/users",
        json={"username": "vera", "password": "longenough1", "roles": "vendor reviewer"},
        headers=basic("root"),
    )
    assert response.status_code == 201
    assert response.json == {"username": "vera", "email": "", "roles": ["reviewer", "vendor"]}
    assert client.get("/1.0/user", headers=basic("vera", "longenough1")).json["username"] == "vera"


def test_only_operators_create_users(client: FlaskClient, seed: Seeder, app: Flask) -> None:
    seed.user("vendor1", Role.VENDOR)
    before = snapshot(app)
    response = client.post(
        "/1.0/users", json={"username": "x", "password": "longenough1"}, headers=basic("vendor1")
    )
    assert response.status_code == 403
    assert "operator role" in response.json["error"]["message"]
    assert snapshot(app) == before


def test_bad_user_input_is_refused(client: FlaskClient, seed: Seeder, app: Flask) -> None:
    seed.user("root", Role.OPERATOR)
    before = snapshot(app)
    cases = [
        ({"username": "Bad Name", "password": "longenough1"}, 400, "username"),
        ({"username": "ok", "password": "short"}, 400, "password"),
        ({"username": "ok", "password": "longenough1", "roles": "king"}, 400, "roles"),
        ({"username": "root", "password": "longenough1"}, 409, "already exists"),
    ]
    for body, status, message in cases:
        response = client.post("/1.0/users", json=body, headers=basic("root"))
        assert response.status_code == status, body
        assert message in response.json["error"]["message"]
    assert snapshot(app) == before


def test_tokens_are_shown_once_hashed_at_rest_and_revocable(
    client: FlaskClient, seed: Seeder, app: Flask
) -> None:
    seed.user("alice")
    created = client.post("/1.0/user/tokens", json={"name": "ci"}, headers=basic("alice"))
    assert created.status_code == 201
    secret = created.json["token"]
    assert secret.startswith("brk_")
    bearer = {"Authorization": f"Bearer {secret}"}
    assert client.get("/1.0/user", headers=bearer).status_code == 200
    listed = client.get("/1.0/user/tokens", headers=bearer).json
    assert [t["name"] for t in listed] == ["ci"] and "token" not in listed[0]
    with app.extensions["brokerage.engine"].connect() as conn:
        stored = conn.execute(select(ApiToken.token_hash)).scalar_one()
    assert secret not in stored and len(stored) == 64
    assert (
        client.delete(f"/1.0/user/tokens/{created.json['id']}", headers=bearer).status_code == 204
    )
    assert client.get("/1.0/user", headers=bearer).status_code == 401


def test_nobody_revokes_another_users_token(client: FlaskClient, seed: Seeder) -> None:
    seed.user("alice")
    seed.user("bob")
    token_id = client.post("/1.0/user/tokens", json={"name": "x"}, headers=basic("alice")).json[
        "id"
    ]
    assert client.delete(f"/1.0/user/tokens/{token_id}", headers=basic("bob")).status_code == 404


def test_inactive_users_cannot_authenticate(client: FlaskClient, seed: Seeder, app: Flask) -> None:
    seed.user("gone")
    with app.extensions["brokerage.engine"].begin() as conn:
        conn.execute(User.__table__.update().values(is_active=False))
    assert client.get("/1.0/user", headers=basic("gone")).status_code == 401
