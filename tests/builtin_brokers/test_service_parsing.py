"""The pure parts of the Geocommit, Pivotal Tracker, Jenkins, Bamboo and chat brokers, on
the host: message grammars, URL and key handling, escaping."""

from __future__ import annotations

from typing import Any

import pytest

from tests.builtin_brokers.harness import broker_module
from tests.builtin_brokers.sdk_path import sdk_module

geocommit = broker_module("geocommit")
tracker = broker_module("pivotaltracker")
jenkins = broker_module("jenkins")
bamboo = broker_module("bamboo")
slack = broker_module("slack")
discord = broker_module("discord")
ConfigurationError = sdk_module("brokerage_sdk").ConfigurationError


@pytest.mark.parametrize(("message", "place"), [
    ("x geocommit(1.0): lat 52.5, long 13.4, hacc 30, src nmea; y",
     {"lat": 52.5, "long": 13.4, "hacc": 30.0, "src": "nmea"}),
    ("Fix\n\ngeocommit (1.0)\nlat: -33.5\nlong: 151.25\nalt: 12\n\nmore text",
     {"lat": -33.5, "long": 151.25, "alt": 12.0}),
    ("geocommit (1.0)\nlat: 1\nlong: 2", {"lat": 1.0, "long": 2.0}),
    ("geocommit(1.0): lat 52.5;", None),  # no longitude
    ("geocommit(1.0): lat north, long 13.4;", None),
    ("geocommit(1.0): lat 91, long 13.4;", None),  # out of range
    ("geocommit(1.0): lat 52.5, long 13.4", None),  # the short form ends with ';'
    ("geocommit 1.0: lat 52.5, long 13.4;", None),
    ("no tag at all", None),
    ("", None),
])  # fmt: skip
def test_geocommit_location(message: str, place: dict[str, Any] | None) -> None:
    assert geocommit.location(message) == place


@pytest.mark.parametrize(("message", "stories"), [
    ("[#12345] Added the frobnicator", ["12345"]),
    ("[#12345677 #12345678] Diverting power", ["12345677", "12345678"]),
    ("[Fixes #12345] x", ["12345"]),
    ("Shipped [Delivers #7] and [finishes #8 #7]", ["7", "8"]),
    ("[Finished #1,#2]", ["1", "2"]),
    ("fixes #12345 without brackets", []),
    ("[no story here] #12", []),
    ("", []),
])  # fmt: skip
def test_tracker_story_ids(message: str, stories: list[str]) -> None:
    assert tracker.story_ids(message) == stories


def test_tracker_author_is_the_name_of_raw_author() -> None:
    assert tracker.author_name({"raw_author": "Marcus Bertrand <m@x.org>"}) == "Marcus Bertrand"
    assert tracker.author_name({"raw_author": "<m@x.org>", "author": "marcus"}) == "marcus"


@pytest.mark.parametrize(("endpoint", "base", "auth"), [
    ("https://ci.example.com/", "https://ci.example.com", None),
    ("https://ci.example.com/jenkins/", "https://ci.example.com/jenkins", None),
    ("https://bob:t%40ken@ci.example.com:8443/", "https://ci.example.com:8443", ("bob", "t@ken")),
])  # fmt: skip
def test_jenkins_endpoint(endpoint: str, base: str, auth: tuple[str, str] | None) -> None:
    assert jenkins.split_endpoint(endpoint) == (base, auth)


@pytest.mark.parametrize("endpoint", ["", "ci.example.com", "ftp://ci.example.com/"])
def test_jenkins_endpoint_refused(endpoint: str) -> None:
    with pytest.raises(ConfigurationError, match="Endpoint"):
        jenkins.split_endpoint(endpoint)


def test_jenkins_job_path() -> None:
    assert jenkins.job_path("project-x") == "/job/project-x"
    assert jenkins.job_path("/team/my job/") == "/job/team/job/my%20job"
    with pytest.raises(ConfigurationError, match="Project Name"):
        jenkins.job_path(" / ")


def push(*files: str, truncated: bool = False) -> dict[str, Any]:
    return {"truncated": truncated, "commits": [{"files": [{"file": f} for f in files]}]}


@pytest.mark.parametrize(("module", "pushed", "changed"), [
    ("", push("a.py"), True),
    ("server", push("server/app.py"), True),
    ("server/", push("docs/x", "server"), True),
    ("server", push("serverless/app.py"), False),
    ("server/api", push("server/app.py"), False),
    ("server", push("docs/x", truncated=True), True),  # files not all known: build
])  # fmt: skip
def test_jenkins_module_filter(module: str, pushed: dict[str, Any], changed: bool) -> None:
    assert jenkins.module_changed(pushed, module) is changed


@pytest.mark.parametrize(("given", "key"), [
    ("PROJ-PLAN", "PROJ-PLAN"), (" proj-plan ", "PROJ-PLAN"), ("AB1-CD2-JOB1", "AB1-CD2-JOB1"),
])  # fmt: skip
def test_bamboo_plan_key(given: str, key: str) -> None:
    assert bamboo.plan_key(given) == key


@pytest.mark.parametrize("given", ["", "PROJ", "PROJ PLAN", "-PLAN", "PROJ-PLAN-X-Y", "1-2/x"])
def test_bamboo_plan_key_refused(given: str) -> None:
    with pytest.raises(ConfigurationError, match="Plan Key"):
        bamboo.plan_key(given)


def test_chat_escaping() -> None:
    assert slack.escape("a <b> & c") == "a &lt;b&gt; &amp; c"
    assert discord.escape("*bold* [x](y)") == "\\*bold\\* \\[x\\]\\(y\\)"


def test_discord_refuses_names_discord_refuses() -> None:
    assert discord.username(" CI ") == "CI"
    for name in ("my discord bot", "Clyde", "a@b", "x" * 81):
        with pytest.raises(ConfigurationError, match="Username"):
            discord.username(name)
