"""The commit page (``/<owner>/<slug>/commits/<node>``): what the pushes recorded about a
commit, its patch, the pushes that brought it and their deliveries; the short link that
lands on it; the same access as the repository's other pages; a clear 404 otherwise."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask.testing import FlaskClient

from brokerage.sandbox.runner.sdk_shortlinks import short_code
from tests.platform.web.conftest import WebClient
from tests.support import FORM, Seeder, basic

API = "/1.0/repositories/marcus/project-x"
PATCHED = "d1403d93e9fb4d5e2f59db154b55d2609b628f01"
PLAIN = "e2514ea4fa0c5e6f3a6aec265c66e3710c739f02"
PATCH = (
    "diff --git a/test_hook b/test_hook\n--- /dev/null\n+++ b/test_hook\n@@ -0,0 +1 @@\n+hello\n"
)


def commit(raw_node: str, message: str, files: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "author": "marcus", "branch": "feature/<x>", "files": files, "message": message,
        "node": raw_node[:12], "parents": ["702c70160afc"],
        "raw_author": "Marcus Bertrand <marcus@somedomain.com>", "raw_node": raw_node,
        "revision": None, "size": -1, "timestamp": "2012-05-30 05:58:56",
        "utctimestamp": "2012-05-30 03:58:56+00:00",
    }  # fmt: skip


def push(
    client: FlaskClient, *commits: dict[str, Any], patches: dict[str, str] | None = None
) -> int:
    token = client.post(f"{API}/push-token", headers=basic("marcus")).get_json()["token"]
    body = {"scm": "git", "user": "marcus", "push_id": str(uuid.uuid4()), "truncated": False,
            "refs": [{"ref": "refs/heads/feature/<x>", "type": "branch", "old": "0" * 40,
                      "new": commits[-1]["raw_node"]}],
            "commits": list(commits), **({"patches": patches} if patches else {})}  # fmt: skip
    response = client.post(f"{API}/pushes", json=body, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code in (200, 201, 202), response.get_json()
    return int(response.get_json()["id"])


@pytest.fixture
def pushed(client: FlaskClient, people: Seeder, deliver: Any) -> int:
    """One push of two commits to marcus/project-x (one with its patch), delivered to a
    POST service on the fake sandbox."""
    added = client.post(f"{API}/services", data="type=POST&URL=http://hooks.example.com/ci",
                        headers={**basic("marcus"), **FORM})  # fmt: skip
    assert added.status_code == 200, added.get_json()
    push_id = push(
        client,
        commit(PATCHED, "Add the <hook> test\n\nLonger story.\n",
               [{"file": "test_hook", "type": "added"}, {"file": "old.py", "type": "removed"}]),
        commit(PLAIN, "Tidy up\n", [{"file": "somefile.py", "type": "modified"}]),
        patches={PATCHED: PATCH},
    )  # fmt: skip
    deliver()
    return push_id


def test_the_commit_page_shows_what_the_push_recorded(web: WebClient, pushed: int) -> None:
    web.sign_in("marcus")
    page = web.get(f"/marcus/project-x/commits/{PATCHED}")
    assert page.status_code == 200, page.text
    text = page.text
    assert "Add the &lt;hook&gt; test" in text and "Longer story." in text
    assert "Marcus Bertrand &lt;marcus@somedomain.com&gt;" in text and "feature/&lt;x&gt;" in text
    assert "<code>test_hook</code>" in text and ">added<" in text
    assert "<code>old.py</code>" in text and ">removed<" in text
    assert "+hello" in text and "No push carried" not in text
    assert f"Push #{pushed}" in text and "2 commit(s)" in text
    [delivery] = web.client.get(f"{API}/deliveries", headers=basic("marcus")).get_json()
    assert f"/repos/marcus/project-x/deliveries/{delivery['id']}" in text
    assert "badge succeeded" in text and "POST 1.0.0" in text


@pytest.mark.parametrize("node", [PLAIN, PLAIN[:12], PLAIN[:7], PLAIN.upper()])
def test_short_and_full_ids_and_the_repos_path(web: WebClient, pushed: int, node: str) -> None:
    web.sign_in("marcus")
    for path in (f"/marcus/project-x/commits/{node}", f"/repos/marcus/project-x/commits/{node}"):
        page = web.get(path)
        assert page.status_code == 200 and "Tidy up" in page.text
        assert "<code>somefile.py</code>" in page.text and "No push carried" in page.text


def test_a_short_link_lands_on_the_commit_page(web: WebClient, pushed: int) -> None:
    web.sign_in("marcus")
    response = web.get(f"/c/{short_code('marcus', 'project-x', PATCHED)}")
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == f"/marcus/project-x/commits/{PATCHED}"
    landed = web.get(location.path)
    assert landed.status_code == 200 and "Add the &lt;hook&gt; test" in landed.text


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ("ab" * 20, "no push to marcus/project-x brought a commit abababab"),
        ("abc", "is not a commit id (give 7 to 40 hex digits)"),
        ("not-hex-at-all", "is not a commit id"),
    ],
)
def test_an_unknown_commit_is_a_clear_404(
    web: WebClient, pushed: int, node: str, message: str
) -> None:
    web.sign_in("marcus")
    page = web.get(f"/marcus/project-x/commits/{node}")
    assert page.status_code == 404 and message in page.text


def test_a_prefix_naming_two_commits_is_a_404_that_says_so(
    web: WebClient, client: FlaskClient, people: Seeder
) -> None:
    twin = PATCHED[:10] + "0" * 30
    push(client, commit(PATCHED, "one\n", []), commit(twin, "two\n", []))
    web.sign_in("marcus")
    page = web.get(f"/marcus/project-x/commits/{PATCHED[:8]}")
    assert page.status_code == 404 and "names 2 commits" in page.text
    assert web.get(f"/marcus/project-x/commits/{twin}").status_code == 200


def test_only_the_repository_s_admins_see_it(
    web: WebClient, client: FlaskClient, pushed: int, seed: Seeder
) -> None:
    path = f"/marcus/project-x/commits/{PATCHED}"
    anonymous = web.get(path)
    assert anonymous.status_code in (302, 303) and "/login" in anonymous.headers["Location"]
    web.sign_in("eve")
    assert web.get(path).status_code == 404  # a private repository eve does not administer
    assert web.get(f"/eve/open/commits/{PATCHED}").status_code == 404  # hers; no such commit
    seed.user("ann")
    seed.repo("ann", "public", is_private=False)
    shown = web.get(f"/ann/public/commits/{PATCHED}")
    assert shown.status_code == 403 and "not an admin" in shown.text
