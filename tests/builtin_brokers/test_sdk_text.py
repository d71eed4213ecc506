"""Templates, short links and commit-mail text: the Email subject rules and
``${...}`` names, pure functions of the payload."""

from __future__ import annotations

from typing import Any

import pytest

from tests.builtin_brokers.fixtures import fixture
from tests.builtin_brokers.sdk_path import sdk_module

templates = sdk_module("sdk_templates")
shortlinks = sdk_module("sdk_shortlinks")
commitmail = sdk_module("sdk_commitmail")
sdk = sdk_module("brokerage_sdk")

ONE = fixture("email", "1_commit")
THREE = fixture("email", "3_commits")


def test_seed_default_templates() -> None:
    twitter = "${repository.name} - ${commit.author} - ${commit.message}"
    assert templates.render(twitter, ONE) == "Project X - marcus - Test bitbucket hook"
    friendfeed = "${repository.name} - ${commit.author}"
    assert templates.render(friendfeed, THREE, THREE["commits"][1]) == "Project X - anna"


def test_tinyurl_is_the_platforms_short_link() -> None:
    rendered = templates.render("${commit.tinyurl}", ONE)
    commit = ONE["commits"][0]
    code = shortlinks.short_code("marcus", "project-x", commit["raw_node"])
    assert rendered == f"https://brokerage.example/c/{code}"
    assert len(code) == shortlinks.CODE_CHARS


def test_unknown_names_stay_visible() -> None:
    assert templates.render("${commit.nope} ${user}", ONE) == "${commit.nope} marcus"


@pytest.mark.parametrize(
    "node", ["000000000000", "ffffffffffff", "d1403d93e9fb4d5e2f59db154b55d2609b628f28"]
)
def test_short_codes_round_trip(node: str) -> None:
    code = shortlinks.short_code("Marcus", "Project-X", node)
    assert shortlinks.parse_code(code) == (
        shortlinks.repository_tag("marcus", "project-x"),
        node[:12],
    )


@pytest.mark.parametrize("code", ["", "short", "!!!!!!!!!!!!", "zzzzzzzzzzzz"])
def test_malformed_codes(code: str) -> None:
    with pytest.raises(ValueError):
        shortlinks.parse_code(code)


# -- Email subject rules: "When a changegroup only contains one changeset ... two or more"


@pytest.mark.parametrize(
    ("payload", "subject"),
    [
        (ONE, "commit/project-x: marcus: Test bitbucket hook"),
        (THREE, "commit/project-x: 3 new changesets"),
        ({**THREE, "commits": THREE["commits"][:2]}, "commit/project-x: 2 new changesets"),
        ({**ONE, "commits": [{**ONE["commits"][0], "message": "First line\nsecond\r\nthird"}]},
         "commit/project-x: marcus: First line"),
    ],
)  # fmt: skip
def test_email_subject_rules(payload: dict[str, Any], subject: str) -> None:
    assert commitmail.subject(payload) == subject


def test_aggregate_body_lists_every_changeset() -> None:
    body = commitmail.body(THREE)
    assert body.startswith("3 new changesets in marcus/project-x:")
    for commit in THREE["commits"]:
        assert f"https://brokerage.example/marcus/project-x/commits/{commit['raw_node']}" in body
        assert commit["message"].strip() in body
    assert "diff --git" not in body


def test_diff_body_adds_patches_and_says_when_one_is_missing() -> None:
    payload = fixture("emaildiff", "3_commits_one_without_patch")
    body = commitmail.body(payload, diffs=True)
    assert body.count("diff --git a/somefile.py") == 2
    assert body.count("(no diff available for this changeset)") == 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [("a@x.org", ["a@x.org"]), ("a@x.org, b@y.org", ["a@x.org", "b@y.org"]),
     ("a@x.org;b@y.org", ["a@x.org", "b@y.org"])],
)  # fmt: skip
def test_recipients(value: str, expected: list[str]) -> None:
    assert commitmail.recipients(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [("", "Email: required"), ("not-an-address", "Email: not an email address: not-an-address"),
     ("a@x.org, Bob <b@y.org>", "not an email address")],
)  # fmt: skip
def test_bad_recipients_are_configuration_errors(value: str, message: str) -> None:
    with pytest.raises(sdk.ConfigurationError, match=message):
        commitmail.recipients(value)
