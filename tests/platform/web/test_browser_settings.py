"""Browser stories (real headless Chromium, the real app on 127.0.0.1): a new user creates a
repository and gets its push token and hook line, manages its admins; an admin agrees to
what a vendor's broker gets before adding it, with a branch filter; an operator sees the
sandbox backend in use. Screenshots (desktop and a 390x844 phone) go to
``test-artifacts/screenshots/``."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest
from flask import Flask

from brokerage.platform import accounts, repositories
from brokerage.platform.models import Service
from brokerage.platform.runtime import Runtime
from tests.platform.web.browser import PHONE
from tests.platform.web.test_repo_settings import ACME_FIELDS
from tests.support import Seeder

if TYPE_CHECKING:
    from tests.platform.web.browser import Browser
    from tests.platform.web.conftest import Submissions

pytestmark = pytest.mark.parametrize("database", ["sqlite"])
"""The browser stories run on SQLite; test_repo_settings.py covers both databases."""


def push_token_hash(app: Flask, owner: str, slug: str) -> str | None:
    runtime: Runtime = app.extensions["brokerage.runtime"]
    with runtime.sessions() as session:
        repo = repositories.find_repository(session, owner, slug)
        assert repo is not None
        return repo.push_token_hash


def assert_every_control_labelled(browser: Browser) -> None:
    unlabelled = browser.script(
        "return Array.from(document.querySelectorAll('input, select, textarea'))"
        ".filter(e => e.type !== 'hidden' && e.type !== 'submit')"
        ".filter(e => !(e.id && document.querySelector('label[for=\"' + e.id + '\"]')))"
        ".map(e => e.name);"
    )
    assert unlabelled == [], f"{browser.path}: controls without a label: {unlabelled}"


def test_a_new_user_creates_a_repository_and_gets_its_hook_line(
    app: Flask, browser: Browser, people: Seeder
) -> None:
    people.user("nina")
    browser.sign_in("nina")
    assert "You administer no repository yet." in browser.text
    browser.screenshot("home-empty")
    with browser.window(*PHONE):
        browser.screenshot("home-empty-phone")
    browser.follow_link("create a repository")
    assert browser.heading() == "New repository"
    browser.fill("Name", "Website")
    browser.choose("Version control", "Mercurial (hg)")
    assert_every_control_labelled(browser)
    browser.screenshot("repo-new")
    browser.press("Create repository")

    assert "Created nina/website." in browser.flash()
    token = browser.driver.find_element("id", "push-token-value").text
    assert push_token_hash(app, "nina", "website") == accounts.hash_secret(token)
    hook = browser.driver.find_element("id", "hook-line").text
    assert hook == (f"brokerage hook install --url http://127.0.0.1:5000 --repo nina/website "
                    f"--token {token} --path /srv/hg/website")  # fmt: skip
    browser.screenshot("repo-created")
    with browser.window(*PHONE):
        browser.screenshot("repo-created-phone")
        overflow = browser.script(
            "return document.documentElement.scrollWidth > document.documentElement.clientWidth"
        )
        assert not overflow, "the page scrolls sideways on a phone"

    browser.follow_link("Settings")
    assert token not in browser.text  # shown once
    assert '--token "$PUSH_TOKEN"' in browser.driver.find_element("id", "hook-line").text

    browser.fill("Add an admin by username", "eve")
    browser.press("Add admin")
    assert "eve is now an admin of nina/website." in browser.flash()
    browser.fill("Add an admin by username", "nobody")
    browser.press("Add admin")
    assert "user 'nobody' does not exist" in browser.flash()
    assert_every_control_labelled(browser)
    browser.screenshot("repo-settings")
    with browser.window(*PHONE):
        browser.screenshot("repo-settings-phone")
    browser.press("Remove")
    assert "eve is no longer an admin of nina/website." in browser.flash()

    browser.script("window.confirm = function () { return true; };")
    browser.press("Rotate push token")
    assert "the old one no longer works" in browser.flash()
    rotated = browser.driver.find_element("id", "push-token-value").text
    assert rotated != token
    assert push_token_hash(app, "nina", "website") == accounts.hash_secret(rotated)


def test_an_admin_agrees_to_a_vendor_broker_before_adding_it(
    app: Flask, browser: Browser, people: Seeder, submissions: Submissions
) -> None:
    version_id = submissions.upload(
        "vera", egress=["*"], permissions=["issues:write"], fields=ACME_FIELDS
    )
    submissions.verify()
    submissions.decide(version_id, "approve")

    browser.sign_in("marcus")
    browser.open("/repos/marcus/project-x/services")
    groups = browser.script(
        "return Array.from(document.querySelectorAll('#service-type optgroup'))"
        ".map(g => [g.label, g.children.length]);"
    )
    assert [label for label, _n in groups] == [
        "Built-in brokers",
        "Vendors' brokers (reviewed and approved)",
    ]
    assert groups[1][1] == 1
    browser.choose("Add a service", "Acme Hook — by Acme")
    browser.press("Add service")

    assert browser.heading() == "Before you add an Acme Hook service"
    assert re.search(r"reviewed and approved on \d{2} \w+ \d{4}", browser.text)
    flagged = browser.driver.find_element("css selector", ".consent li.flagged").text
    assert "it can reach any public host" in flagged
    assert "read, open, update and comment on this repository's issues" in browser.text
    assert "API key (secret: stored encrypted" in browser.text
    browser.screenshot("consent")
    with browser.window(*PHONE):
        browser.screenshot("consent-phone")
    browser.press("I agree: continue to its settings")

    assert browser.heading() == "Add an Acme Hook service"
    browser.fill("URL", "https://hooks.acme.example/in")
    browser.fill("Branches", "main, release/*")
    assert_every_control_labelled(browser)
    browser.screenshot("service-form-branches")
    browser.press("Add service")
    assert "Added an Acme Hook service." in browser.flash()
    runtime: Runtime = app.extensions["brokerage.runtime"]
    with runtime.sessions() as session:
        [service] = session.query(Service).all()
        assert service.branches == "main, release/*"
        assert service.broker_version_id == version_id


def test_an_operator_sees_the_backend_in_use(browser: Browser, people: Seeder) -> None:
    browser.sign_in("olga")
    browser.follow_link("Operations")
    in_use = browser.driver.find_element("id", "backend-in-use").text
    assert re.match(r"(docker with the runc runtime|bubblewrap) \(", in_use), in_use
    assert "auto" not in in_use.split("(")[0]
    browser.screenshot("ops-backend")
    with browser.window(*PHONE):
        browser.screenshot("ops-backend-phone")
