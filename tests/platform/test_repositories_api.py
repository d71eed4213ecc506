"""Repositories: create, list, show, admins."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from brokerage.core.accounts import Role
from tests.support import Seeder, basic, snapshot


def test_create_then_show_in_the_payload_shape(client: FlaskClient, seed: Seeder) -> None:
    seed.user("marcus")
    created = client.post(
        "/1.0/repositories",
        data={"name": "Project X", "scm": "hg", "website": "https://atlassian.com/"},
        headers=basic("marcus"),
    )
    assert created.status_code == 201
    shown = client.get("/1.0/repositories/marcus/project-x", headers=basic("marcus")).json
    assert shown == {
        "absolute_url": "/marcus/project-x/",
        "fork": False,
        "is_private": True,
        "name": "Project X",
        "owner": "marcus",
        "scm": "hg",
        "slug": "project-x",
        "website": "https://atlassian.com/",
        "full_name": "marcus/project-x",
        "admins": [],
    }


def test_list_shows_only_what_you_administer(client: FlaskClient, seed: Seeder) -> None:
    seed.user("alice")
    seed.user("bob")
    seed.user("ops", Role.OPERATOR)
    seed.repo("alice", "a1")
    seed.repo("bob", "b1", admins=("alice",))
    seed.repo("bob", "b2")

    def names(who: str) -> list[str]:
        listed = client.get("/1.0/repositories", headers=basic(who)).json
        return [r["full_name"] for r in listed]

    assert names("alice") == ["alice/a1", "bob/b1"]
    assert names("bob") == ["bob/b1", "bob/b2"]
    assert names("ops") == ["alice/a1", "bob/b1", "bob/b2"]


def test_admins_can_be_added_by_admins_only(client: FlaskClient, seed: Seeder) -> None:
    seed.user("alice")
    seed.user("bob")
    seed.repo("alice", "a1", is_private=False)
    refused = client.post(
        "/1.0/repositories/alice/a1/admins", data={"username": "bob"}, headers=basic("bob")
    )
    assert refused.status_code == 403
    added = client.post(
        "/1.0/repositories/alice/a1/admins", data={"username": "bob"}, headers=basic("alice")
    )
    assert added.json["admins"] == ["bob"]
    assert client.get("/1.0/repositories/alice/a1", headers=basic("bob")).status_code == 200


def test_bad_repository_input(client: FlaskClient, seed: Seeder, app: Flask) -> None:
    seed.user("alice")
    seed.user("bob")
    seed.repo("alice", "taken")
    before = snapshot(app)
    cases = [
        ({"name": ""}, 400, "name: required"),
        ({"name": "x", "scm": "svn"}, 400, "scm 'svn'"),
        ({"name": "x", "slug": "Not A Slug"}, 400, "slug"),
        ({"name": "x", "is_private": "maybe"}, 400, "is_private"),
        ({"name": "taken"}, 409, "already exists"),
        ({"name": "x", "owner": "bob"}, 403, "only operators"),
    ]
    for body, status, message in cases:
        response = client.post("/1.0/repositories", data=body, headers=basic("alice"))
        assert response.status_code == status, body
        assert message in response.json["error"]["message"]
    assert snapshot(app) == before
    assert client.get("/1.0/repositories/alice/nothing", headers=basic("alice")).status_code == 404
