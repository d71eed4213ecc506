"""Slack, Discord, Microsoft Teams and Mattermost through the real sandbox and gateway to
local fakes of their incoming webhooks: one line per case — broker, fixture, service
fields, the fake, the expected outcome."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.builtin_brokers.fakes.modern import DiscordFake, MattermostFake, SlackFake, TeamsFake
from tests.builtin_brokers.fakes.wire import Fake
from tests.builtin_brokers.fixtures import fixture
from tests.builtin_brokers.harness import BrokerRig

SLACK = "hooks.slack.com"
DISCORD = "discord.com"
WORKFLOWS = "prod-27.westus.logic.azure.com"
CONNECTOR = "contoso.webhook.office.com"
MATTERMOST = "chat.example.test"

SLACK_HOOK = "/services/T0001/B0001/s3cretXXXXXXXXXXXXXXXXXX"
DISCORD_HOOK = "/api/webhooks/1234567890/s3cret-token"
TEAMS_HOOK = (
    "/workflows/abc123/triggers/manual/paths/invoke"
    "?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=s3cretSIG"
)
MATTERMOST_HOOK = "/hooks/xxxs3cretkeyxxx"
SECRETS = ("s3cret",)
"""every webhook's secret part contains this; no error message may"""


@dataclass
class Case:
    broker: str
    variant: str
    url: str  # "{fake}" / "{down}" + path: the fake's or a closed port's base URL
    fake: Callable[[], Fake]
    outcome: str = "succeeded"  # or the error kind: configuration / transient
    message: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    sent: int = 1  # requests the fake should have received
    check: Callable[[dict[str, Any]], None] | None = None
    id: str = ""


def has(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def check(body: dict[str, Any]) -> None:
        assert body.get(key) == value, body

    return check


def no_mentions(body: dict[str, Any]) -> None:
    assert body["allowed_mentions"] == {"parse": []}


HOSTS = {"slack": SLACK, "discord": DISCORD, "msteams": WORKFLOWS, "mattermost": MATTERMOST}

CASES = [
    Case("slack", "1_commit", "{fake}" + SLACK_HOOK, SlackFake, id="slack-1"),
    Case("slack", "3_commits", "{fake}" + SLACK_HOOK, SlackFake, id="slack-3"),
    Case("slack", "12_commits", "{fake}" + SLACK_HOOK, SlackFake, id="slack-12"),
    Case("slack", "1_commit", "{fake}" + SLACK_HOOK, SlackFake, fields={"Channel": "#ci",
         "Username": "brokerage"}, check=has("channel", "#ci"), id="slack-channel-username"),
    Case("slack", "1_commit", "{fake}/services/T0001/B0001/wrong", SlackFake, "configuration",
         "invalid_token", id="slack-bad-token"),
    Case("slack", "1_commit", "{fake}" + SLACK_HOOK, SlackFake, "configuration",
         "channel_not_found", fields={"Channel": "#nope"}, id="slack-unknown-channel"),
    Case("slack", "1_commit", "{down}" + SLACK_HOOK, SlackFake, "transient", "answered 502",
         sent=0, id="slack-down"),
    Case("slack", "1_commit", "", SlackFake, "configuration", "Webhook URL: required", sent=0,
         id="slack-no-url"),
    Case("slack", "1_commit", "http://hooks.example.org/services/x", SlackFake, "configuration",
         "host_not_allowed", sent=0, id="slack-host-outside-egress"),
    Case("discord", "1_commit", "{fake}" + DISCORD_HOOK, DiscordFake, check=no_mentions,
         id="discord-1"),
    Case("discord", "3_commits", "{fake}" + DISCORD_HOOK, DiscordFake, id="discord-3"),
    Case("discord", "12_commits", "{fake}" + DISCORD_HOOK, DiscordFake, id="discord-12"),
    Case("discord", "1_commit", "{fake}" + DISCORD_HOOK, DiscordFake, fields={"Username": "CI"},
         check=has("username", "CI"), id="discord-username"),
    Case("discord", "1_commit", "{fake}" + DISCORD_HOOK, DiscordFake, "configuration",
         "Username:", fields={"Username": "Discord bot"}, sent=0, id="discord-bad-username"),
    Case("discord", "1_commit", "{fake}/api/webhooks/1234567890/wrong", DiscordFake,
         "configuration", "Invalid Webhook Token", id="discord-bad-token"),
    Case("discord", "1_commit", "{fake}/api/webhooks/999/s3cret-token", DiscordFake,
         "configuration", "Unknown Webhook", id="discord-unknown-webhook"),
    Case("discord", "1_commit", "{down}" + DISCORD_HOOK, DiscordFake, "transient", "502",
         sent=0, id="discord-down"),
    Case("msteams", "1_commit", "{fake}" + TEAMS_HOOK, TeamsFake, id="teams-workflow-1"),
    Case("msteams", "3_commits", "{fake}" + TEAMS_HOOK, TeamsFake, id="teams-workflow-3"),
    Case("msteams", "12_commits", "{fake}" + TEAMS_HOOK, TeamsFake, id="teams-workflow-12"),
    Case("msteams", "3_commits", "{connector}" + TEAMS_HOOK,
         lambda: TeamsFake(connector=True), id="teams-connector"),
    Case("msteams", "1_commit", "{connector}" + TEAMS_HOOK,
         lambda: TeamsFake(connector=True, throttled=True), "transient", "delivery failed",
         id="teams-connector-throttled"),
    Case("msteams", "1_commit", "{fake}" + TEAMS_HOOK.replace("sig=s3cretSIG", "sig=wrong"),
         TeamsFake, "configuration", "DirectApiAuthorizationRequired", id="teams-bad-signature"),
    Case("msteams", "1_commit", "{down}" + TEAMS_HOOK, TeamsFake, "transient", "502", sent=0,
         id="teams-down"),
    Case("mattermost", "1_commit", "{fake}" + MATTERMOST_HOOK, MattermostFake,
         id="mattermost-1"),
    Case("mattermost", "3_commits", "{fake}" + MATTERMOST_HOOK, MattermostFake,
         id="mattermost-3"),
    Case("mattermost", "12_commits", "{fake}" + MATTERMOST_HOOK, MattermostFake,
         id="mattermost-12"),
    Case("mattermost", "1_commit", "{fake}" + MATTERMOST_HOOK, MattermostFake,
         fields={"Channel": "ci", "Username": "brokerage"}, check=has("username", "brokerage"),
         id="mattermost-channel-username"),
    Case("mattermost", "1_commit", "{fake}/hooks/wrongkey", MattermostFake, "configuration",
         "hook does not exist", id="mattermost-bad-key"),
    Case("mattermost", "1_commit", "{fake}" + MATTERMOST_HOOK, MattermostFake, "configuration",
         "Channel does not exist", fields={"Channel": "nope"}, id="mattermost-unknown-channel"),
    Case("mattermost", "1_commit", "{down}" + MATTERMOST_HOOK, MattermostFake, "transient",
         "502", sent=0, id="mattermost-down"),
]  # fmt: skip


def fill(case: Case, rig: BrokerRig) -> dict[str, str]:
    host = HOSTS[case.broker]
    url = (
        case.url.replace("{fake}", rig.url(host, "").rstrip("/"))
        .replace("{down}", rig.url(host, "", port=rig.dead_port).rstrip("/"))
        .replace("{connector}", rig.url(CONNECTOR, "").rstrip("/"))
    )
    return {"Webhook URL": url, **case.fields}


def flattened(document: Any) -> str:
    """Every string in a JSON document, one per line (what a reader of the message sees)."""
    if isinstance(document, dict):
        return "\n".join(flattened(v) for v in document.values())
    if isinstance(document, list):
        return "\n".join(flattened(v) for v in document)
    return str(document)


def unescaped(text: str) -> str:
    return text.replace("\\", "").replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")


def assert_summarises(broker: str, variant: str, text: str) -> None:
    """Repository, pusher, branch and, per shown commit: short node, author, first line, link."""
    push = fixture(broker, variant)
    commits = push["commits"]
    text = unescaped(text)
    assert push["repository"]["name"] in text
    assert push["user"] in text
    for commit in commits[-10:]:
        assert commit["node"] in text
        assert commit["author"] in text
        assert commit["message"].splitlines()[0] in text
        assert f"https://brokerage.example/marcus/project-x/commits/{commit['raw_node']}" in text
        assert commit["branch"] in text
    if len(commits) > 10:
        assert f"{len(commits) - 10} earlier commit" in text
        assert commits[0]["message"].splitlines()[0] not in text


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_chat_broker(rig: BrokerRig, case: Case) -> None:
    service = fill(case, rig)
    result = rig.dispatch(case.broker, case.variant, service, case.fake())
    assert len(rig.requests) == case.sent, (result.error, result.requests)
    if case.outcome == "succeeded":
        assert result.status == "succeeded", result.error
        request = rig.requests[0]
        assert request.method == "POST"
        assert request.headers["content-type"] == "application/json"
        body = json.loads(request.body)
        assert_summarises(case.broker, case.variant, flattened(body))
        if case.check:
            case.check(body)
    else:
        assert result.status == "failed", result
        assert result.error and result.error["kind"] == case.outcome, result.error
        assert case.message in result.error["message"]
        assert not any(secret in json.dumps(result.error) for secret in SECRETS)
        assert not any(secret in line for line in result.logs for secret in SECRETS)
