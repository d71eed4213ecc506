"""The issue pages: a repository's issue list (filtered, paginated) and one issue with the
comments commits added through the tracker (what the Issues broker calls)."""

from __future__ import annotations

from tests.platform.web.conftest import WebClient

ISSUES = "/repos/marcus/project-x/issues"


def test_the_issue_list_is_paginated_and_filtered(web: WebClient, issues: None) -> None:
    web.sign_in("marcus")
    first = web.get(ISSUES)
    assert first.status_code == 200
    assert "Page 1 of 2 (30)" in first.text
    assert "Issue number 30" in first.text and "Issue number 1<" not in first.text
    assert "Issue number 1<" in web.get(f"{ISSUES}?page=2").text
    resolved = web.get(f"{ISSUES}?status=resolved").text
    assert "Issue number 2<" in resolved and "Issue number 3<" not in resolved


def test_an_issue_shows_the_comments_commits_added(web: WebClient, issues: None) -> None:
    web.sign_in("marcus")
    page = web.get(f"{ISSUES}/2").text
    assert "resolved" in page
    assert "Changeset 000000000001 on branch main" in page and "Fix the parser, fixes #2" in page
    referenced = web.get(f"{ISSUES}/3").text
    assert "Tidy up, refs #3 &lt;b&gt;" in referenced  # escaped, never markup
    assert web.get(f"{ISSUES}/99").status_code == 404


def test_a_private_repositorys_issues_are_hidden_from_others(web: WebClient, issues: None) -> None:
    web.sign_in("eve")
    assert web.get(ISSUES).status_code == 404
    assert web.get(f"{ISSUES}/2").status_code == 404
