"""``GET /c/<code>``: the platform's side of ``${commit.tinyurl}``."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from brokerage.platform.models import SeenCommit
from brokerage.sandbox.runner.sdk_shortlinks import short_code
from tests.support import Seeder

NODE = "d1403d93e9fb4d5e2f59db154b55d2609b628f28"
TWIN = "d1403d93e9fb" + "0" * 28  # same 12-hex prefix, other repository


@pytest.fixture
def commits(app: Flask, seed: Seeder) -> None:
    seed.user("marcus")
    first = seed.repo("marcus", "project-x")
    second = seed.repo("marcus", "other")
    with app.extensions["brokerage.sessionmaker"]() as session:
        session.add(SeenCommit(repository_id=first.id, raw_node=NODE))
        session.add(SeenCommit(repository_id=second.id, raw_node=TWIN))
        session.commit()


@pytest.mark.parametrize(("slug", "node"), [("project-x", NODE), ("other", TWIN)])
def test_a_code_redirects_to_its_commit(
    app: Flask, client: FlaskClient, commits: None, slug: str, node: str
) -> None:
    response = client.get(f"/c/{short_code('marcus', slug, node)}")
    assert response.status_code == 302
    base = app.config["CANON_URL"].rstrip("/")
    assert response.headers["Location"] == f"{base}/marcus/{slug}/commits/{node}"
    endpoint, args = app.url_map.bind("localhost").match(f"/marcus/{slug}/commits/{node}")
    assert endpoint == "web_commits.show_commit"  # the page exists (tests/platform/web shows it)
    assert args == {"account": "marcus", "repo_slug": slug, "node": node}


@pytest.mark.parametrize(
    "code", [short_code("marcus", "project-x", "ab" * 20), short_code("eve", "project-x", NODE),
             "not-a-code", "zzzzzzzzzzzz"],
)  # fmt: skip
def test_unknown_codes_are_404(client: FlaskClient, commits: None, code: str) -> None:
    response = client.get(f"/c/{code}")
    assert response.status_code == 404
    assert response.get_json()["error"]["message"]
