"""The tracker's pages: the list with a status filter, one issue with its comments, and
the same visibility as the API (a private tracker is its admins' only)."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.platform.web.conftest import WebClient
from tests.support import Seeder, basic

ISSUES = "/1.0/repositories/marcus/project-x/issues"


def test_list_and_show(web: WebClient, client: FlaskClient, people: Seeder) -> None:
    client.post(ISSUES, json={"title": "Crash on <start>"}, headers=basic("marcus"))
    client.post(ISSUES, json={"title": "Typo", "status": "resolved"}, headers=basic("marcus"))
    client.post(f"{ISSUES}/1/comments", json={"content": "Seen on 1.2"}, headers=basic("marcus"))
    web.sign_in("marcus")
    page = web.get("/repos/marcus/project-x/issues")
    assert page.status_code == 200
    assert "Crash on &lt;start&gt;" in page.text and "Typo" in page.text
    resolved = web.get("/repos/marcus/project-x/issues?status=resolved").text
    assert "Typo" in resolved and "Crash" not in resolved
    shown = web.get("/repos/marcus/project-x/issues/1")
    assert "Seen on 1.2" in shown.text and "marcus" in shown.text


def test_private_tracker_pages_are_hidden(web: WebClient, people: Seeder) -> None:
    web.sign_in("eve")
    assert web.get("/repos/marcus/project-x/issues").status_code == 404
    assert web.get("/repos/eve/open/issues").status_code == 200
    assert web.get("/repos/eve/open/issues/7").status_code == 404
