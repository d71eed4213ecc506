"""``sdk_chat``: the facts of a push for chat messages, and how a webhook's answer is
judged — against a real receiver on 127.0.0.1 for the answers."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.builtin_brokers.receiver import receiver
from tests.builtin_brokers.sdk_path import sdk_module

sdk = sdk_module("brokerage_sdk")
sdk_chat = sdk_module("sdk_chat")


def push(count: int, branches: tuple[str, ...] = ("main",)) -> dict[str, Any]:
    commits = [
        {"node": f"{n:012x}"[:12], "raw_node": f"{n:040x}", "author": f"dev{n}",
         "message": f"change {n}\n\nbody {n}", "branch": branches[(n - 1) % len(branches)]}
        for n in range(1, count + 1)
    ]  # fmt: skip
    return {
        "canon_url": "https://code.example/",
        "repository": {
            "name": "Widgets",
            "slug": "widgets",
            "owner": "acme",
            "absolute_url": "/acme/widgets/",
        },  # fmt: skip
        "user": "alice",
        "commits": commits,
    }


def test_summary_lists_the_last_commits_and_counts_the_rest() -> None:
    summary = sdk.push_summary(push(13), 10)
    assert summary.count == 13
    assert summary.earlier == 3
    assert summary.more == "\u2026 and 3 earlier commit(s)"
    assert [c.author for c in summary.commits] == [f"dev{n}" for n in range(4, 14)]
    last = summary.commits[-1]
    assert last.message == "change 13"
    assert last.url == f"https://code.example/acme/widgets/commits/{13:040x}"
    assert last.node == f"{13:012x}"


def test_summary_of_a_small_push() -> None:
    summary = sdk.push_summary(push(1))
    assert (summary.repository, summary.user, summary.noun) == ("Widgets", "alice", "commit")
    assert summary.repository_url == "https://code.example/acme/widgets/"
    assert summary.earlier == 0
    assert summary.more == ""
    assert sdk.push_summary(push(2)).noun == "commits"


def test_branches_keep_their_first_order() -> None:
    assert sdk.push_summary(push(5, ("b", "a", "b"))).branches == ("b", "a")


def test_missing_parts_have_defaults() -> None:
    summary = sdk.push_summary({"repository": {"slug": "w"}, "commits": []})
    assert (summary.repository, summary.user, summary.count) == ("w", "someone", 0)
    assert summary.repository_url == "/"
    assert summary.commits == ()


def answers(*paths: str) -> list[requests.Response]:
    """What a real receiver answers on ``paths`` (the environment's proxies ignored)."""
    with receiver() as hook:
        session = sdk.gateway_session()
        session.trust_env = False
        return [session.fetch("POST", hook.url(path), name="Chat") for path in paths]


def test_judge_passes_2xx() -> None:
    [response] = answers("/status/204")
    assert sdk.judge_chat_answer(response, "Chat answered 204", "hint") is response


WORDING = {
    "/status/404": (sdk.ConfigurationError, "^Chat answered 404: check the URL$"),
    "/moved": (sdk.ConfigurationError, "^Chat answered 301: check the URL$"),
    "/status/503": (sdk.TransientError, "^Chat answered 503$"),
    "/status/429": (sdk.TransientError, "^Chat answered 429$"),
}
"""what judge_chat_answer raises per receiver path: the detail and hint, never the URL"""


def test_judge_words_errors_without_the_url() -> None:
    for path, response in zip(WORDING, answers(*WORDING), strict=True):
        error, text = WORDING[path]
        with pytest.raises(error, match=text):
            sdk.judge_chat_answer(
                response, f"Chat answered {response.status_code}", "check the URL"
            )


def test_judge_knows_service_error_codes() -> None:
    [response] = answers("/status/500")
    hints = {"channel_is_archived": "the channel is archived"}
    with pytest.raises(sdk.ConfigurationError, match="answered 500: the channel is archived"):
        sdk.judge_chat_answer(response, "Chat answered 500", "h", "Chat", "channel_is_archived",
                              hints)  # fmt: skip
    with pytest.raises(sdk.TransientError):
        sdk.judge_chat_answer(response, "Chat answered 500", "h", "Chat", "other", hints)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("", "^Webhook URL: required; copy it from the app$"),
        (None, "required"),
        (
            "hooks.example/x",
            r"^Webhook URL: not an http\(s\) URL \(https://hooks\.example/\.\.\.\)$",
        ),
        ("ftp://hooks.example/x", "not an http"),
        ("https://", "not an http"),
    ],
)
def test_webhook_url_refuses_what_cannot_be_posted_to(value: str | None, text: str) -> None:
    with pytest.raises(sdk.ConfigurationError, match=text):
        sdk.chat_webhook_url(value, "the app", "https://hooks.example/...")


def test_webhook_url_is_stripped() -> None:
    assert sdk.chat_webhook_url("  https://hooks.example/k \n", "the app") == (
        "https://hooks.example/k"
    )


def test_markdown_characters_are_escaped() -> None:
    assert sdk.escape_markdown("a *b* [c](d) 1", "*[]()") == r"a \*b\* \[c\]\(d\) 1"
    assert sdk.escape_markdown(42, "*") == "42"
