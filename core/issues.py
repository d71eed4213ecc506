"""The Issues rules, pure: statuses, the commands a changeset may carry, their effect,
and the limits on what people write. The platform's tracker (``brokerage.platform.issues``)
and the verification stand-in (``brokerage.submissions.standins``) both apply these, so
the stand-in answers as the platform does.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from brokerage.core.errors import BadRequestError

TITLE_MAX_CHARS = 255
CONTENT_MAX_CHARS = 64 * 1024
"""characters of an issue's description or a comment"""


class IssueStatus(StrEnum):
    NEW = "new"
    OPEN = "open"
    RESOLVED = "resolved"
    ON_HOLD = "on hold"
    INVALID = "invalid"
    WONTFIX = "wontfix"
    DUPLICATE = "duplicate"


class Command(StrEnum):
    """What a changeset may do to an issue (the Issues broker's grammar names them)."""

    RESOLVE = "resolve"
    REOPEN = "reopen"
    LINK = "link"  # a comment linking the changeset; the status stays
    HOLD = "hold"
    WONTFIX = "wontfix"
    INVALID = "invalid"


COMMAND_STATUS: dict[Command, IssueStatus | None] = {
    Command.RESOLVE: IssueStatus.RESOLVED,
    Command.REOPEN: IssueStatus.OPEN,
    Command.LINK: None,
    Command.HOLD: IssueStatus.ON_HOLD,
    Command.WONTFIX: IssueStatus.WONTFIX,
    Command.INVALID: IssueStatus.INVALID,
}
"""the status each command leaves the issue in (None: unchanged)"""

COMMAND_VERB = {
    Command.RESOLVE: "resolves", Command.REOPEN: "reopens", Command.LINK: "references",
    Command.HOLD: "puts on hold", Command.WONTFIX: "marks as won't fix",
    Command.INVALID: "marks as invalid",
}  # fmt: skip


def parse_status(text: str) -> IssueStatus:
    try:
        return IssueStatus(text.strip().lower())
    except ValueError:
        options = ", ".join(s.value for s in IssueStatus)
        raise BadRequestError(f"status: {text!r} is not one of {options}") from None


def parse_command(text: str) -> Command:
    try:
        return Command(text.strip().lower())
    except ValueError:
        options = ", ".join(c.value for c in Command)
        raise BadRequestError(f"command: {text!r} is not one of {options}") from None


def changeset_comment(command: Command, changeset: Mapping[str, Any]) -> str:
    node = str(changeset.get("node") or changeset.get("raw_node", ""))[:12]
    message = str(changeset.get("message") or "").strip()
    branch = changeset.get("branch")
    where = f" on branch {branch}" if branch else ""
    return f"Changeset {node}{where} {COMMAND_VERB[command]} this issue:\n\n{message}"


def check_length(name: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise BadRequestError(f"{name}: longer than {limit} characters")


def text_param(params: Mapping[str, Any], name: str, default: str | None = None) -> str:
    """The text parameter ``name`` of an Issues call (BadRequestError when missing or not
    text); the platform's API and the verification stand-in read their calls alike."""
    value = params.get(name, default)
    if value is None:
        raise BadRequestError(f"{name}: required")
    if not isinstance(value, str):
        raise BadRequestError(f"{name}: expected text")
    return value
