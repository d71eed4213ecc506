"""End-to-end stories in a real headless Chromium against the real app on 127.0.0.1.

The push is a real ``git push`` to a bare repository with the project's post-receive
hook installed (``push_commits``). Deliveries run on the real RQ queue: the admin's story
with the real Docker sandbox and egress gateway (``real_deliver``), the others with the
fake sandbox answering a canned broker log and gateway request log (``deliver``).
Screenshots of the main pages go to ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests
from flask import Flask

from brokerage.core.accounts import Role
from brokerage.sandbox.fake import FakeBackend
from tests.platform.hooks.hook_fixtures import GitRepos, install_hook, isolate_scm
from tests.platform.web.browser import PHONE
from tests.support import Seeder, basic, snapshot

if TYPE_CHECKING:
    from tests.builtin_brokers.harness import BrokerRig
    from tests.platform.web.browser import Browser
    from tests.platform.web.conftest import Submissions

pytestmark = pytest.mark.parametrize("database", ["sqlite"])
"""The browser stories run on SQLite; tests/platform/web/test_web_pages.py covers both databases."""

SERVICES = "/repos/marcus/project-x/services"


def push_commits(base_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Push two commits to marcus/project-x for real: ``git push`` to a bare repository
    whose post-receive hook (``brokerage hook install``) reports to the live platform."""
    token = requests.post(
        f"{base_url}/1.0/repositories/marcus/project-x/push-token",
        headers=basic("marcus"),
        timeout=10,
    ).json()["token"]
    isolate_scm(tmp_path / "home", monkeypatch)
    (tmp_path / "git").mkdir()
    repos = GitRepos.create(tmp_path / "git")
    install_hook(repos.server, base_url, token=token, repo_name="marcus/project-x")
    repos.commit("Add the parser\n", {"parser.py": "print('hi')\n"})
    repos.commit("Fix the parser, refs #4711\n", {"parser.py": "print('hello')\n"})
    output = repos.push("main")
    assert "error" not in output.lower(), output


def test_an_admin_adds_a_service_pushes_and_redelivers(
    browser: Browser,
    people: Seeder,
    real_deliver: Any,
    rig: BrokerRig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The whole story for real: a git push through the hook, the POST broker run in the
    Docker sandbox, its request through the egress gateway to a receiver on 127.0.0.1."""
    browser.sign_in("marcus")
    assert browser.heading() == "Your repositories"
    browser.screenshot("home")
    browser.follow_link("marcus/project-x")
    assert browser.path == SERVICES
    assert "No services yet" in browser.text

    browser.choose("Add a service", "POST")
    browser.press("Add service")
    assert browser.heading() == "Add a POST service"
    browser.fill("URL", rig.hook_url("/hook"))
    browser.fill("Secret", "s3cret-signing-key")
    browser.screenshot("service-form")
    browser.press("Add service")
    assert "Added a POST service." in browser.flash()
    assert browser.heading().startswith("POST")
    assert "No deliveries yet" in browser.text
    assert "s3cret-signing-key" not in browser.driver.page_source

    push_commits(browser.base_url, tmp_path, monkeypatch)
    real_deliver()

    [received] = rig.hook.requests
    assert [c["message"] for c in json.loads(received.form["payload"])["commits"]] == [
        "Add the parser\n",
        "Fix the parser, refs #4711\n",
    ]
    assert "webhook-signature" in received.headers
    delivery_id = received.headers["x-brokerage-delivery"]

    browser.driver.refresh()
    row = browser.driver.find_element("css selector", "table.deliveries tbody tr")
    assert "succeeded" in row.text and delivery_id[:8] in row.text
    browser.screenshot("service")
    browser.follow(row.find_element("tag name", "a"))
    assert browser.heading() == f"Delivery {delivery_id}"
    requests_log = browser.driver.find_element("css selector", "table.requests").text
    assert f"POST {rig.hook_url('/hook')} 200" in requests_log
    assert "answered 200" in browser.text  # the broker's own log line
    assert "2 commit(s)" in browser.text
    browser.screenshot("delivery")

    browser.press("Redeliver")
    assert "queued again (attempt 2)" in browser.flash()
    real_deliver()
    browser.driver.refresh()
    assert "Attempt 2" in browser.text and "Attempt 1" in browser.text
    assert [r.headers["x-brokerage-delivery"] for r in rig.hook.requests] == [delivery_id] * 2

    browser.open(SERVICES)
    with browser.window(*PHONE):
        browser.screenshot("services-phone")
    browser.open(f"/repos/marcus/project-x/deliveries/{delivery_id}")
    with browser.window(*PHONE):
        browser.screenshot("delivery-phone")


def test_a_wrong_password_is_refused(browser: Browser, people: Seeder) -> None:
    browser.sign_in("marcus", "wrong password")
    assert browser.path == "/login"
    assert "Wrong username or password." in browser.text
    browser.screenshot("login-refused")
    browser.open("/")
    assert browser.path.startswith("/login?next=")


def test_a_forged_csrf_token_is_refused(app: Flask, browser: Browser, people: Seeder) -> None:
    browser.sign_in("marcus")
    browser.open(f"{SERVICES}/new?type=POST")
    browser.fill("URL", "http://hooks.example.com/ci")
    browser.script(
        "document.querySelectorAll('input[name=csrf_token]')"
        ".forEach(function (e) { e.value = 'forged'; });"
    )
    before = snapshot(app)
    browser.press("Add service")
    assert browser.heading() == "Bad request"
    assert "CSRF token missing or wrong" in browser.text
    assert snapshot(app) == before


def test_another_users_repository_is_refused(app: Flask, browser: Browser, people: Seeder) -> None:
    browser.sign_in("eve")
    assert "marcus/project-x" not in browser.text
    before = snapshot(app)
    browser.open(SERVICES)
    assert browser.heading() == "Not found"
    browser.open(f"{SERVICES}/new?type=POST")
    assert browser.heading() == "Not found"
    browser.sign_out()
    browser.sign_in("marcus")
    browser.open("/repos/eve/open/services")
    assert browser.heading() == "Not allowed"
    browser.screenshot("not-allowed")
    assert snapshot(app) == before


def test_an_auto_disabled_service_shows_a_banner(
    browser: Browser, people: Seeder, deliver: Any, fake: FakeBackend
) -> None:
    from tests.platform.web.test_web_pages import failing

    fake.handler = failing
    browser.sign_in("marcus")
    browser.open(f"{SERVICES}/new?type=POST")
    browser.fill("URL", "http://127.0.0.1:9/hook")
    browser.press("Add service")
    for _ in range(2):
        browser.press("Send test push")
        deliver()
        browser.follow_link("POST #1")
    banner = browser.driver.find_element("css selector", ".banner")
    assert "This service is disabled." in banner.text
    assert "disabled after 2 failed deliveries in a row" in banner.text
    browser.screenshot("service-disabled")
    browser.press("Enable again")
    assert "Service enabled." in browser.flash()
    assert not browser.driver.find_elements("css selector", ".banner")


def test_an_operator_sees_the_health_page(browser: Browser, people: Seeder, deliver: Any) -> None:
    browser.sign_in("marcus")
    browser.open(f"{SERVICES}/new?type=POST")
    browser.fill("URL", "http://hooks.example.com/ci")
    browser.press("Add service")
    browser.press("Send test push")
    deliver()
    browser.sign_out()
    browser.sign_in("olga")
    browser.follow_link("Operations")
    assert browser.heading() == "Platform health"
    assert "No worker is running" in browser.text
    assert "address_denied" in browser.text
    browser.screenshot("ops")
    metrics = requests.get(f"{browser.base_url}/metrics", timeout=10).text
    assert 'brokerage_deliveries{status="succeeded"} 1.0' in metrics


def test_pages_have_a_label_for_every_control(
    browser: Browser, people: Seeder, submissions: Submissions, issues: None
) -> None:
    """Every visible input, select and textarea is named by a <label for> (or is a button)."""
    people.user("root", Role.OPERATOR, Role.VENDOR, Role.REVIEWER)
    version_id = submissions.upload("vera")
    submissions.verify()
    browser.sign_in("root")
    browser.open(f"{SERVICES}/new?type=POST")
    browser.fill("URL", "http://hooks.example.com/ci")
    browser.press("Add service")
    browser.press("Send test push")
    repo = "/repos/marcus/project-x"
    pages = ["/", SERVICES, f"{SERVICES}/new?type=POST", f"{SERVICES}/1", f"{repo}/deliveries",
             browser.path, f"{repo}/issues", f"{repo}/issues/2", "/ops", "/vendor",
             f"/vendor/submissions/{version_id}", "/review", f"/review/{version_id}"]  # fmt: skip
    for path in pages:
        browser.open(path)
        assert browser.driver.find_elements("tag name", "h1"), f"{path}: no heading"
        unlabelled = browser.script(
            "return Array.from(document.querySelectorAll('input, select, textarea'))"
            ".filter(e => e.type !== 'hidden' && e.type !== 'submit')"
            ".filter(e => !(e.id && document.querySelector('label[for=\"' + e.id + '\"]')))"
            ".map(e => e.name);"
        )
        assert unlabelled == [], f"{path}: controls without a label: {unlabelled}"


def test_a_reviewer_approves_and_the_vendor_sees_the_new_state(
    browser: Browser, people: Seeder, submissions: Submissions
) -> None:
    version_id = submissions.upload("vera")
    submissions.verify()
    browser.sign_in("vera")
    browser.follow_link("My brokers")
    assert "awaiting_review" in browser.text
    browser.sign_out()

    browser.sign_in("rita")
    browser.follow_link("Review queue")
    browser.screenshot("review-queue")
    browser.follow_link("Acme Hook")
    assert browser.path == f"/review/{version_id}"
    assert "HookBroker" in browser.text and "every check passed" in browser.text
    browser.screenshot("review-submission")
    browser.control("Approve").click()
    browser.fill("Comment for the vendor", "Clean and small. Approved.")
    browser.press("Record decision")
    assert "acme-hook 1.0.0 is now approved; the vendor was mailed." in browser.flash()
    assert "Nothing awaits review." in browser.text
    browser.sign_out()

    browser.sign_in("vera")
    browser.follow_link("My brokers")
    row = browser.driver.find_element("css selector", "table tbody tr")
    assert "approved" in row.text
    browser.screenshot("vendor-brokers")
    browser.follow(row.find_element("link text", "1.0.0"))
    assert "Clean and small. Approved." in browser.text
    browser.screenshot("vendor-submission")
    with browser.window(*PHONE):
        browser.screenshot("vendor-submission-phone")


def test_the_issue_pages(browser: Browser, issues: None) -> None:
    browser.sign_in("marcus")
    browser.open("/repos/marcus/project-x/services")
    browser.follow_link("Issues")
    assert browser.heading() == "Issues"
    browser.choose("Status", "resolved")
    browser.press("Filter")
    browser.follow_link("Issue number 2")
    assert "Fix the parser, fixes #2" in browser.text
    browser.screenshot("issue")


def test_the_review_loop_comments_first_risk_summary_and_the_resubmission(
    browser: Browser, people: Seeder, submissions: Submissions, smtp: Any
) -> None:
    from tests.submissions.conftest import archive, package_files

    def upload(notes: str, **changes: Any) -> int:
        response = submissions.client.post(
            "/1.0/submissions",
            data={"package": (io.BytesIO(archive(package_files(**changes))),
                              "p.tar.gz"), "notes": notes},
            headers=basic("vera"),
        )  # fmt: skip
        assert response.status_code == 201, response.get_json()
        return int(response.get_json()["id"])

    first = upload("Posts every push; the admin sets the URL.", egress=["*"])
    submissions.verify()
    browser.sign_in("rita")
    browser.open(f"/review/{first}")
    risk = browser.driver.find_element("id", "risk-h")
    decide = browser.driver.find_element("id", "decide-h")
    assert risk.location["y"] < decide.location["y"]  # the risk summary leads the page
    assert "any public host" in browser.text and "first version of this broker" in browser.text
    assert "Posts every push; the admin sets the URL." in browser.text
    browser.screenshot("review-risk-summary")
    browser.control("Request changes").click()
    browser.fill("Comment for the vendor", "Name the hosts instead of *.")
    browser.press("Record decision")
    assert "the vendor was mailed" in browser.flash()
    assert smtp.messages[-1]["to"] == ["vera@example.org"]
    browser.sign_out()

    browser.sign_in("vera")
    browser.follow_link("My brokers")
    comment = browser.driver.find_element("css selector", ".decision blockquote.comment")
    table = browser.driver.find_element("css selector", "section.broker table")
    assert comment.text == "Name the hosts instead of *."
    assert comment.location["y"] < table.location["y"]  # the decision comes first
    browser.screenshot("vendor-brokers-decision")
    browser.open(f"/vendor/submissions/{first}")
    comment = browser.driver.find_element("css selector", ".decision blockquote.comment")
    withdraw = browser.control("Reason")
    assert comment.location["y"] < withdraw.location["y"]
    browser.screenshot("vendor-submission-decision")
    with browser.window(*PHONE):
        browser.screenshot("vendor-submission-decision-phone")
    browser.sign_out()

    second = upload("Named the hosts.", version="1.1.0", egress=["hooks.acme.test"])
    submissions.verify()
    browser.sign_in("rita")
    browser.open(f"/review/{second}")
    assert "since 1.0.0 (last decided: changes_requested)" in browser.text
    earlier = browser.driver.find_element("id", "earlier-h").find_element("xpath", "..")
    assert "Name the hosts instead of *." in earlier.text and "by rita" in earlier.text
    assert "Named the hosts." in browser.text
    assert (
        "hooks.acme.test"
        in browser.driver.find_element("id", "risk-h").find_element("xpath", "..").text
    )
    browser.screenshot("review-resubmission")
    with browser.window(*PHONE):
        browser.screenshot("review-resubmission-phone")
