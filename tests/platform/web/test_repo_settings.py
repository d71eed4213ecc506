"""Repository settings, consent before a vendor's broker, the Branches field, who pushed,
the sandbox backend on /ops and the worker's line per attempt — through Flask's test
client on both databases (the browser stories are in test_browser_settings.py)."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import pytest
from flask import Flask

from brokerage.platform import accounts, repositories
from brokerage.platform.deliveries import sandbox_stats
from brokerage.platform.models import Repository, Service
from brokerage.platform.runtime import Runtime
from brokerage.submissions.models import BrokerType
from tests.platform.web.conftest import Submissions, WebClient
from tests.platform.web.test_web_commits import PATCHED, pushed  # noqa: F401
from tests.platform.web.test_web_pages import WIDGET_CONSENT, widget, widget_form  # noqa: F401
from tests.support import Seeder, snapshot

PAGE = "/repos/marcus/project-x"
TOKEN = re.compile(r'<code class="secret" id="push-token-value">(brk_[A-Za-z0-9_-]+)</code>')
HOOK = re.compile(r'<pre class="log" id="hook-line">([^<]+)</pre>')


def repository(app: Flask, owner: str, slug: str) -> Repository:
    runtime: Runtime = app.extensions["brokerage.runtime"]
    with runtime.sessions() as session:
        found = repositories.find_repository(session, owner, slug)
        assert found is not None
        session.expunge(found)
        return found


def admins(app: Flask, owner: str, slug: str) -> list[str]:
    runtime: Runtime = app.extensions["brokerage.runtime"]
    with runtime.sessions() as session:
        found = repositories.find_repository(session, owner, slug)
        assert found is not None
        return sorted(u.username for u in found.admins)


# -- home and creating a repository ------------------------------------------------------


def test_the_empty_home_page_offers_the_next_step(web: WebClient, people: Seeder) -> None:
    people.user("nina")
    web.sign_in("nina")
    page = web.get("/").text
    assert "You administer no repository yet." in page
    assert '<a href="/repos/new">create a repository</a>' in page
    assert "add you by your username, <strong>nina</strong>" in page


def test_creating_a_repository_shows_its_push_token_once(
    app: Flask, web: WebClient, people: Seeder
) -> None:
    web.sign_in("marcus")
    assert 'name="name"' in web.get("/repos/new").text
    created = web.post("/repos/new", {"name": "Project Y", "slug": "", "scm": "hg",
                                      "is_private": "true", "website": ""})  # fmt: skip
    assert created.status_code == 201
    assert created.headers["Cache-Control"] == "no-store"
    [token] = TOKEN.findall(created.text)
    repo = repository(app, "marcus", "project-y")
    assert (repo.name, repo.scm, repo.is_private) == ("Project Y", "hg", True)
    assert repo.push_token_hash == accounts.hash_secret(token)
    [line] = HOOK.findall(created.text)
    assert line == (f"brokerage hook install --url http://127.0.0.1:5000 --repo marcus/project-y "
                    f"--token {token} --path /srv/hg/project-y")  # fmt: skip
    assert "changegroup" in created.text

    again = web.get("/repos/marcus/project-y/settings")
    assert again.status_code == 200 and token not in again.text
    assert "--token &#34;$PUSH_TOKEN&#34; --path /srv/hg/project-y" in again.text
    assert "marcus/project-y" in web.get("/").text


def test_a_pushed_token_works_and_rotating_replaces_it(
    app: Flask, web: WebClient, people: Seeder
) -> None:
    web.sign_in("marcus")
    settings = web.get(f"{PAGE}/settings").text
    assert "has no push token yet" in settings and "Issue push token" in settings
    first = TOKEN.findall(web.post(f"{PAGE}/settings/push-token").text)[0]
    rotated = web.post(f"{PAGE}/settings/push-token")
    assert "the old one no longer works" in rotated.text
    [second] = TOKEN.findall(rotated.text)
    assert second != first
    assert repository(app, "marcus", "project-x").push_token_hash == accounts.hash_secret(second)
    refused = app.test_client().post(
        "/1.0/repositories/marcus/project-x/pushes",
        json={"scm": "git", "user": "marcus", "commits": []},
        headers={"Authorization": f"Bearer {first}"},
    )
    assert refused.status_code == 401  # the first token no longer works


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"name": "  "}, "name: required"),
        ({"name": "X", "slug": "Bad Slug!"}, "slug &#39;Bad Slug!&#39;: use lowercase"),
        ({"name": "project-x"}, "repository marcus/project-x already exists"),
        ({"name": "X", "scm": "svn"}, "scm &#39;svn&#39;: must be one of git, hg"),
    ],
)
def test_a_bad_repository_is_refused_with_the_form_again(
    app: Flask, web: WebClient, people: Seeder, form: dict[str, str], message: str
) -> None:
    web.sign_in("marcus")
    before = snapshot(app)
    refused = web.post("/repos/new", form)
    assert refused.status_code == 400
    assert message in refused.text and 'name="name"' in refused.text
    assert snapshot(app) == before


# -- admins ---------------------------------------------------------------------------------


def test_an_owner_adds_and_removes_admins(app: Flask, web: WebClient, people: Seeder) -> None:
    web.sign_in("marcus")
    added = web.post(f"{PAGE}/settings/admins", {"username": "eve"}, follow_redirects=True)
    assert "eve is now an admin of marcus/project-x." in added.text
    assert admins(app, "marcus", "project-x") == ["eve"]
    unknown = web.post(f"{PAGE}/settings/admins", {"username": "nobody"}, follow_redirects=True)
    assert "user &#39;nobody&#39; does not exist" in unknown.text
    owner = web.post(f"{PAGE}/settings/admins", {"username": "marcus"}, follow_redirects=True)
    assert "marcus owns the repository and administers it already." in owner.text
    assert admins(app, "marcus", "project-x") == ["eve"]

    eve = WebClient(app.test_client())
    eve.sign_in("eve")
    assert eve.get(f"{PAGE}/settings").status_code == 200
    removed = web.post(f"{PAGE}/settings/admins/remove", {"username": "eve"},
                       follow_redirects=True)  # fmt: skip
    assert "eve is no longer an admin of marcus/project-x." in removed.text
    assert admins(app, "marcus", "project-x") == []
    assert eve.get(f"{PAGE}/settings").status_code == 404
    again = web.post(f"{PAGE}/settings/admins/remove", {"username": "eve"}, follow_redirects=True)
    assert "eve is not an admin of repository marcus/project-x" in again.text


def test_only_admins_reach_the_settings(app: Flask, web: WebClient, people: Seeder) -> None:
    web.sign_in("eve")
    before = snapshot(app)
    assert web.get(f"{PAGE}/settings").status_code == 404
    assert web.post(f"{PAGE}/settings/push-token").status_code == 404
    assert web.post(f"{PAGE}/settings/admins", {"username": "eve"}).status_code == 404
    assert web.get("/repos/eve/open/settings").status_code == 200
    assert snapshot(app) == before
    anonymous = app.test_client().get("/repos/new")
    assert anonymous.status_code == 302 and anonymous.location.startswith("/login")


# -- consent before a vendor's broker ----------------------------------------------------------

ACME_FIELDS = [
    {"label": "URL", "type": "url", "required": True},
    {"label": "API key", "type": "password", "required": False},
]


@pytest.fixture
def acme(submissions: Submissions, people: Seeder) -> int:
    """An approved vendor broker that may reach any public host and write issues."""
    version_id = submissions.upload(
        "vera", egress=["*"], permissions=["issues:write"], fields=ACME_FIELDS
    )
    submissions.verify()
    submissions.decide(version_id, "approve")
    return version_id


def test_a_vendor_broker_asks_for_consent_first(app: Flask, web: WebClient, acme: int) -> None:
    web.sign_in("marcus")
    listing = web.get(f"{PAGE}/services").text
    vendors = listing.split("Vendors&#39; brokers (reviewed and approved)")[1]
    assert '<option value="Acme Hook">Acme Hook — by Acme</option>' in vendors

    consent = web.get(f"{PAGE}/services/new?type=Acme Hook").text
    assert "Before you add an Acme Hook service" in consent
    assert 'name="f:URL"' not in consent
    assert 'Acme <span class="muted">(account vera)</span>' in consent
    assert re.search(r"reviewed and approved on \d{2} \w+ \d{4}", consent)
    assert "any public host on the internet" in consent
    assert "<strong>it can reach any public host</strong>" in consent
    assert "read, open, update and comment on this repository&#39;s issues" in consent
    assert 'API key <span class="muted">(secret' in consent
    assert f'name="consent" value="{acme}"' in consent

    before = snapshot(app)
    refused = web.post(f"{PAGE}/services", {"type": "Acme Hook", "f:URL": "https://a.example/"})
    assert refused.status_code == 409 and "Before you add an Acme Hook service" in refused.text
    stale = web.post(f"{PAGE}/services", {"type": "Acme Hook", "consent": str(acme - 1),
                                          "f:URL": "https://a.example/"})  # fmt: skip
    assert stale.status_code == 409
    assert snapshot(app) == before

    form = web.get(f"{PAGE}/services/new?type=Acme Hook&consent={acme}").text
    assert "Add an Acme Hook service" in form and 'name="f:URL"' in form
    agreed = {"type": "Acme Hook", "consent": str(acme), "f:URL": "https://a.example/"}
    added = web.post(f"{PAGE}/services", agreed, follow_redirects=True)
    assert "Added an Acme Hook service." in added.text


def test_built_in_brokers_need_no_consent(app: Flask, web: WebClient, people: Seeder) -> None:
    web.sign_in("marcus")
    form = web.get(f"{PAGE}/services/new?type=Email").text
    assert "Add an Email service" in form and "Before you add" not in form
    runtime: Runtime = app.extensions["brokerage.runtime"]
    with runtime.sessions() as session:
        types = session.query(BrokerType).filter(BrokerType.builtin.is_(True)).count()
    listing = web.get(f"{PAGE}/services").text
    builtin = listing.split('<optgroup label="Built-in brokers">')[1].split("</optgroup>")[0]
    assert builtin.count("<option ") == types
    assert "Vendors&#39; brokers" not in listing  # no vendor broker approved: no empty group


# -- Branches, wording ------------------------------------------------------------------------


def test_the_branches_field_is_in_the_form(
    app: Flask,
    web: WebClient,
    people: Seeder,
    widget: str,  # noqa: F811
) -> None:
    web.sign_in("marcus")
    form = web.get(f"{PAGE}/services/new?type=Widget&consent={WIDGET_CONSENT['consent']}").text
    assert '<label for="field-branches">Branches</label>' in form
    assert "glob patterns separated by commas" in form
    web.post(f"{PAGE}/services", widget_form(Endpoint="https://e.example/",
                                             Branches=" main ,release/*,"))  # fmt: skip
    runtime: Runtime = app.extensions["brokerage.runtime"]
    with runtime.sessions() as session:
        service = session.get(Service, 1)
        assert service is not None and service.branches == "main, release/*"
    page = web.get(f"{PAGE}/services/1").text
    assert 'name="f:Branches" value="main, release/*"' in page
    web.post(f"{PAGE}/services/1", {"f:Endpoint": "https://e.example/", "f:Branches": ""})
    with runtime.sessions() as session:
        service = session.get(Service, 1)
        assert service is not None and service.branches == ""


def test_the_post_broker_speaks_of_the_product(web: WebClient, people: Seeder) -> None:
    web.sign_in("marcus")
    form = web.get(f"{PAGE}/services/new?type=POST").text
    assert "The URL each push is POSTed to." in form
    assert "Bitbucket should send" not in form


def test_a_delivery_says_who_pushed_and_how_it_is_known(
    app: Flask, web: WebClient, people: Seeder, deliver: Any, caplog: pytest.LogCaptureFixture
) -> None:
    web.sign_in("marcus")
    web.post(f"{PAGE}/services", {"type": "POST", "f:URL": "https://hooks.example.com/ci"})
    tested = web.post(f"{PAGE}/services/1/test")
    delivery_id = tested.location.rsplit("/", 1)[1]
    caplog.set_level(logging.INFO, logger="brokerage.platform.deliveries.dispatch")
    deliver()
    page = web.get(tested.location).text
    assert "(test push) sent by marcus" in page

    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("attempt ")]
    assert line.startswith(f"attempt delivery={delivery_id} attempt=1 service=1 broker=post@")
    assert " outcome=succeeded duration=0.042s requests=2 next=- worker=web-test-worker " in line
    assert re.search(r' message="posted \d+ commit\(s\)"$', line), line


def test_a_push_names_its_pusher_and_says_where_the_name_comes_from(
    web: WebClient,
    pushed: int,  # noqa: F811
) -> None:
    web.sign_in("marcus")
    page = web.get(f"/marcus/project-x/commits/{PATCHED}").text
    assert re.search(r'pushed as <strong class="pusher" title="[^"]+">marcus</strong>', page)
    assert "is the push's <code>user</code>" in page and "<code>BROKERAGE_USER</code>" in page
    assert "by marcus" not in page


# -- /ops ----------------------------------------------------------------------------------------


def test_ops_shows_the_backend_the_workers_use(app: Flask, web: WebClient, people: Seeder) -> None:
    runtime: Runtime = app.extensions["brokerage.runtime"]
    web.sign_in("olga")
    page = web.get("/ops").text
    assert "SANDBOX_BACKEND=auto" in page
    resolved = re.search(r'<dd id="backend-in-use">(.*?)</dd>', page, re.S)
    assert resolved and "auto" not in resolved.group(1).split("(")[0]
    assert re.search(r"<strong>(docker|bubblewrap)</strong>", resolved.group(1))

    figures = {"blank": 1, "bound": 0, "tenants": 0, "started": 1}
    for name, backend in (("w1", "docker"), ("w2", "docker")):
        published = {**figures, "backend": backend, "runtime": "runsc"}
        runtime.redis.set(sandbox_stats.KEY_PREFIX + name, json.dumps(published))
    try:
        page = web.get("/ops").text
    finally:
        runtime.redis.delete(sandbox_stats.KEY_PREFIX + "w1", sandbox_stats.KEY_PREFIX + "w2")
    assert "<strong>docker</strong> with the <strong>runsc</strong> runtime (gVisor)" in page
    assert "as 2 running workers report" in page
    assert "<li>w1: docker (runsc)</li>" in page


def test_a_worker_publishes_its_backend_and_runtime() -> None:
    class Docker:
        name = "docker"
        runtime = "runsc"

    class Bubblewrap:
        name = "bubblewrap"

    assert sandbox_stats.backend_in_use(Docker()) == {"backend": "docker", "runtime": "runsc"}
    assert sandbox_stats.backend_in_use(Bubblewrap()) == {"backend": "bubblewrap", "runtime": ""}
