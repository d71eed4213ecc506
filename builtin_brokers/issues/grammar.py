"""The commit-message grammar of the Issues broker (docs/design.md, "The Issues
grammar": the classic words, plus hold, wontfix and invalid).

``<command> <issue id>[ and|,|& <issue id> ...]`` anywhere in a message, any case:

==========  ==========================================================================
command     words
==========  ==========================================================================
resolve     close closed closes closing fix fixed fixes fixing resolve resolved
            resolves resolving
reopen      reopen reopens reopening
link        addresses re references ref refs see   (a comment, the status stays)
hold        hold holds holding
wontfix     wontfix won't fix wont fix
invalid     invalid invalidate invalidates invalidated
==========  ==========================================================================

An issue id is ``#4711``, ``issue 4711``, ``bug 4711`` or ``ticket 4711``, the
word forms with or without ``#``. :func:`parse_commands` returns each
(command, issue) once, in the order they appear.

Runs under the sandbox's RestrictedPython policy: no names starting with ``_``.
"""

import re

WORDS = {
    "resolve": [
        "close",
        "closed",
        "closes",
        "closing",
        "fix",
        "fixed",
        "fixes",
        "fixing",
        "resolve",
        "resolved",
        "resolves",
        "resolving",
    ],
    "reopen": ["reopen", "reopens", "reopening"],
    "link": ["addresses", "re", "references", "ref", "refs", "see"],
    "hold": ["hold", "holds", "holding"],
    "wontfix": ["wontfix", "won't fix", "wont fix"],
    "invalid": ["invalid", "invalidate", "invalidates", "invalidated"],
}

COMMAND_OF = {}
for command, words in WORDS.items():
    for word in words:
        COMMAND_OF[word] = command

ISSUE_ID = r"(?:(?:issue|bug|ticket)\s*#?\s*|#)(\d+)\b"
ISSUE_ID_TEXT = ISSUE_ID.replace("(\\d+)", "\\d+")
SEPARATOR = r"(?:\s*(?:,|&|\band\b)\s*|\s+)"
WORD_ALTERNATIVES = "|".join(
    re.escape(word).replace(r"\ ", r"\s+") for word in sorted(COMMAND_OF, key=len, reverse=True)
)
COMMAND_PATTERN = re.compile(
    r"(?<![\w'])(" + WORD_ALTERNATIVES + r")\s*:?\s*"
    r"(" + ISSUE_ID_TEXT + "(?:" + SEPARATOR + ISSUE_ID_TEXT + ")*)",
    re.IGNORECASE,
)
ID_PATTERN = re.compile(ISSUE_ID, re.IGNORECASE)


def command_for(word):
    """The command a matched word stands for (``Won't  Fix`` -> ``wontfix``)."""
    return COMMAND_OF[" ".join(word.lower().split())]


def parse_commands(message):
    """``[(command, issue_number), ...]`` found in ``message``, each pair once, in order."""
    found = []
    for match in COMMAND_PATTERN.finditer(message or ""):
        command = command_for(match.group(1))
        for issue in ID_PATTERN.finditer(match.group(2)):
            pair = (command, int(issue.group(1)))
            if pair not in found:
                found.append(pair)
    return found
