"""Vendor and reviewer pages, and pending permission upgrades, through the test client
(both databases): what each role sees, decisions with their rules, and what a vendor and
a repository admin see afterwards."""

from __future__ import annotations

import pytest
from flask import Flask

from brokerage.platform.models import Service
from brokerage.platform.runtime import Runtime
from tests.platform.web.conftest import Submissions, WebClient
from tests.support import Seeder, snapshot

SERVICES = "/repos/marcus/project-x/services"


@pytest.fixture
def waiting(people: Seeder, submissions: Submissions) -> int:
    """vera's acme-hook 1.0.0, verified and awaiting review."""
    version_id = submissions.upload("vera")
    submissions.verify()
    assert submissions.state(version_id) == "awaiting_review"
    return version_id


def test_a_vendor_sees_their_brokers_and_nobody_elses(
    web: WebClient, waiting: int, submissions: Submissions
) -> None:
    web.sign_in("vera")
    page = web.get("/vendor").text
    assert "Acme Hook" in page and "awaiting_review" in page and "passed" in page
    detail = web.get(f"/vendor/submissions/{waiting}").text
    assert "every check passed" in detail  # the audit trail
    assert "one_commit" in detail  # the sandbox transcript
    assert "restricted_python" in detail  # the report's checks
    assert web.get("/review").status_code == 403
    web.post("/logout")
    web.sign_in("otto")
    assert "Acme Hook" not in web.get("/vendor").text
    assert web.get(f"/vendor/submissions/{waiting}").status_code == 404
    web.post("/logout")
    web.sign_in("marcus")
    assert web.get("/vendor").status_code == 403


def test_a_reviewer_sees_the_queue_and_the_submission(web: WebClient, waiting: int) -> None:
    web.sign_in("rita")
    queue = web.get("/review").text
    assert f'href="/review/{waiting}"' in queue and "vera" in queue
    page = web.get(f"/review/{waiting}").text
    assert 'class="highlight"' in page  # Pygments
    assert "HookBroker" in page and "manifest.json" in page
    assert "nothing decided before" in page
    assert "+class" in page.replace('<span class="gi">', "").replace("</span>", "")
    assert "every check passed" in page and "one_commit" in page
    for control in ("decision-approve", "decision-reject", "decision-request_changes", "comment"):
        assert f'for="{control}"' in page


def test_approving_shows_the_vendor_the_new_state(
    app: Flask, web: WebClient, waiting: int, submissions: Submissions
) -> None:
    web.sign_in("rita")
    response = web.post(f"/review/{waiting}/decision", {"decision": "approve", "comment": "Neat."})
    assert response.status_code == 303
    assert submissions.state(waiting) == "approved"
    assert "Nothing awaits review." in web.get("/review").text
    web.post("/logout")
    web.sign_in("vera")
    page = web.get(f"/vendor/submissions/{waiting}").text
    assert '<span class="badge approved">approved</span>' in page
    assert "Neat." in page and "by rita" in page
    web.post("/logout")
    web.sign_in("marcus")
    assert '<option value="Acme Hook">' in web.get(SERVICES).text


def test_rejecting_needs_a_comment_and_the_vendor_reads_it(
    app: Flask, web: WebClient, waiting: int, submissions: Submissions
) -> None:
    web.sign_in("rita")
    before = snapshot(app)
    response = web.post(f"/review/{waiting}/decision", {"decision": "reject", "comment": " "})
    assert response.status_code == 403
    assert "needs a comment for the vendor" in response.text
    assert snapshot(app) == before
    assert web.post(f"/review/{waiting}/decision", {"comment": "?"}).status_code == 400
    web.post(f"/review/{waiting}/decision",
             {"decision": "request_changes", "comment": "Declare api.acme.test too."})  # fmt: skip
    assert submissions.state(waiting) == "changes_requested"
    web.post("/logout")
    web.sign_in("vera")
    assert "Declare api.acme.test too." in web.get(f"/vendor/submissions/{waiting}").text


def test_nobody_reviews_their_own_submission(
    app: Flask, web: WebClient, people: Seeder, submissions: Submissions
) -> None:
    version_id = submissions.upload("vic")
    submissions.verify()
    web.sign_in("vic")
    before = snapshot(app)
    response = web.post(f"/review/{version_id}/decision", {"decision": "approve"})
    assert response.status_code == 403
    assert "nobody reviews their own submission" in response.text
    assert snapshot(app) == before


def test_a_forged_decision_is_refused(app: Flask, web: WebClient, waiting: int) -> None:
    web.sign_in("rita")
    before = snapshot(app)
    response = web.client.post(f"/review/{waiting}/decision",
                               data={"decision": "approve", "csrf_token": "forged"})  # fmt: skip
    assert response.status_code == 400
    assert snapshot(app) == before


def test_a_vendor_withdraws_a_version(
    web: WebClient, waiting: int, submissions: Submissions
) -> None:
    web.sign_in("vera")
    response = web.post(f"/vendor/submissions/{waiting}/withdraw", {"reason": "found a bug"})
    assert response.status_code == 303
    assert submissions.state(waiting) == "withdrawn"
    page = web.get(f"/vendor/submissions/{waiting}").text
    assert "found a bug" in page and "Withdraw</button>" not in page
    again = web.post(f"/vendor/submissions/{waiting}/withdraw")
    assert again.status_code == 409 and "cannot become withdrawn" in again.text


def service_version(runtime: Runtime, service_id: int = 1) -> str:
    with runtime.sessions() as session:
        found = session.get(Service, service_id)
        assert found is not None
        return found.broker_version.version


@pytest.mark.parametrize("action", ["accept", "decline"])
def test_a_pending_permission_upgrade_is_answered_on_the_service_page(
    web: WebClient, waiting: int, submissions: Submissions, runtime: Runtime, action: str
) -> None:
    submissions.decide(waiting, "approve")
    web.sign_in("marcus")
    added = {"type": "Acme Hook", "f:URL": "https://hooks.acme.test/in", "consent": str(waiting)}
    web.post(SERVICES, added)  # consented to the vendor's broker
    wider = submissions.upload("vera", version="1.1.0", egress=["hooks.acme.test", "api.acme.test"])
    submissions.verify()
    web.post("/logout")
    web.sign_in("rita")
    review = web.get(f"/review/{wider}").text
    assert "since 1.0.0 (last decided: approved)" in review
    assert "<strong>api.acme.test</strong>" in review  # the risk summary's new host
    web.post(f"/review/{wider}/decision", {"decision": "approve"})
    web.post("/logout")
    web.sign_in("marcus")
    assert "A new version wants more permissions" in web.get(SERVICES).text
    page = web.get(f"{SERVICES}/1").text
    assert "Version 1.1.0 of this broker wants more than version 1.0.0" in page
    assert "egress to api.acme.test" in page
    assert service_version(runtime) == "1.0.0"
    response = web.post(f"{SERVICES}/1/upgrade", {"action": action})
    assert response.status_code == 303
    assert service_version(runtime) == ("1.1.0" if action == "accept" else "1.0.0")
    assert "wants more than" not in web.get(f"{SERVICES}/1").text
    assert web.post(f"{SERVICES}/1/upgrade", {"action": action}).status_code == 404
