"""Issues: commit messages change the repository's issues
(the Issues grammar, docs/design.md).

Each changeset's message is scanned (``grammar.parse_commands``); each command
goes to the platform's tracker through the repository-scoped API. The platform
applies a (changeset, issue, command) once, so the same commits pushed again on
another branch change nothing. An issue number the tracker does not have is
reported in the result, not an error: commit messages outlive trackers.

Runs under the sandbox's RestrictedPython policy: no names starting with ``_``.
"""

from brokerage_sdk import BaseBroker, RepositoryApi
from grammar import parse_commands


class IssuesBroker(BaseBroker):
    def handle(self, payload):
        api = RepositoryApi(payload)
        applied, repeated, unknown = [], [], []
        for commit in payload.get("commits") or []:
            for command, number in parse_commands(commit.get("message", "")):
                answer = api.apply_command(number, command, commit)
                entry = f"{command} #{number} ({commit.get('node', '')})"
                if answer is None:
                    unknown.append(number)
                    self.log.warning(
                        "%s: no issue #%d in this tracker", commit.get("node", ""), number
                    )
                elif answer.get("applied"):
                    applied.append(entry)
                    self.log.info("applied %s", entry)
                else:
                    repeated.append(entry)
        message = f"{len(applied)} command(s) applied, {len(repeated)} already applied"
        if unknown:
            message += ", unknown issue(s): " + ", ".join(f"#{n}" for n in unknown)
        return {
            "message": message,
            "applied": applied,
            "already_applied": repeated,
            "unknown_issues": unknown,
        }
