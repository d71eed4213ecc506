"""``brokerage review ...``: the reviewer's command line, over the REST API.

``queue``; ``show ID`` (notes to the reviewer, manifest, code, verification report, sandbox
transcript, audit); ``diff ID`` (a risk summary, then the diff against the version a
reviewer last decided on — approved, rejected or changes requested — with its comment);
``approve ID``, ``reject ID -m``, ``request-changes ID -m``. The platform enforces who may
decide: reviewers only, never on their own submission.
"""

from __future__ import annotations

import json
from typing import Any

import click

from brokerage.submissions.cli import (
    api_client,
    echo_decision,
    echo_report,
    token_option,
    url_option,
)
from brokerage.submissions.client import ApiClient
from brokerage.submissions.errors import ApiCallError, SubmissionError


def _client(url: str, token: str) -> ApiClient:
    return api_client(url, token)


@click.group("review")
def review_cli() -> None:
    """Review submitted brokers (reviewers)."""


@review_cli.command("queue")
@url_option
@token_option
def queue(url: str, token: str) -> None:
    """Versions awaiting review, oldest first."""
    try:
        found = _client(url, token).get("/1.0/reviews")
    except SubmissionError as exc:
        raise click.ClickException(str(exc)) from exc
    if not found:
        click.echo("the queue is empty")
    for item in found:
        click.echo(
            f"{item['id']:>5}  {item['name']} {item['version']}  by {item['submitted_by']}"
            f"  submitted {item['created_at'][:19]}"
        )


@review_cli.command("show")
@click.argument("submission_id", type=int)
@click.option("--no-code", is_flag=True, help="Leave the files out.")
@url_option
@token_option
def show(submission_id: int, no_code: bool, url: str, token: str) -> None:
    """Manifest, code, verification report, sandbox transcript and audit trail."""
    client = _client(url, token)
    try:
        item = client.get(f"/1.0/submissions/{submission_id}")
        files = {} if no_code else client.get(f"/1.0/submissions/{submission_id}/files")
        report = _report(client, submission_id)
    except SubmissionError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"# {item['name']} {item['version']} ({item['title']}) "
        f"by {item['submitted_by']}: {item['state']}"
    )
    echo_decision(item.get("decision"))
    if item.get("notes"):
        click.echo("\n## notes to the reviewer\n" + item["notes"].rstrip("\n"))
    click.echo("\n## manifest\n" + json.dumps(item["manifest"], indent=2))
    for path, text in files.items():
        click.echo(f"\n## {path}\n{text}")
    click.echo("\n## verification")
    if report is None:
        click.echo("no report yet")
    else:
        echo_report(report)
    click.echo("\n## audit")
    for event in item["events"]:
        click.echo(
            f"{event['at'][:19]}  {event['from'] or '-'} -> {event['to']}  by {event['by']}"
            + (f": {event['reason']}" if event["reason"] else "")
        )


def _report(client: ApiClient, submission_id: int) -> dict[str, object] | None:
    try:
        found: dict[str, object] = client.get(f"/1.0/submissions/{submission_id}/report")
    except ApiCallError as exc:
        if exc.status == 404:
            return None
        raise
    return found


@review_cli.command("diff")
@click.argument("submission_id", type=int)
@url_option
@token_option
def diff(submission_id: int, url: str, token: str) -> None:
    """Risk summary, then the unified diff against the version last decided on."""
    try:
        found = _client(url, token).get(f"/1.0/submissions/{submission_id}/diff")
    except SubmissionError as exc:
        raise click.ClickException(str(exc)) from exc
    if found["against"]:
        click.echo(f"against: {found['against']} ({found['against_state']})")
        echo_decision(found.get("against_decision"), indent="  ")
    else:
        click.echo("against: nothing decided yet (every file is new)")
    echo_risk(found.get("risk"))
    click.echo(found["diff"], nl=False)


def echo_risk(risk: dict[str, Any] | None) -> None:
    """The risk summary as ``risk:`` lines."""
    if not risk:
        return
    egress = ", ".join(risk["egress"]) or "none"
    star = "  (* = ANY PUBLIC HOST)" if risk["any_public_host"] else ""
    click.echo(f"risk: egress {egress}{star}")
    click.echo(f"risk: new hosts {', '.join(risk['new_egress']) or 'none'}")
    click.echo(f"risk: new permissions {', '.join(risk['new_permissions']) or 'none'}")
    click.echo(f"risk: password fields {', '.join(risk['password_fields']) or 'none'}")
    history = ", ".join(
        f"{h['version']} {h['decision']['decision'] if h['decision'] else h['state']}"
        for h in risk["history"]
    )
    click.echo(f"risk: history {history or 'first version of this broker'}")


def _decide(submission_id: int, decision: str, comment: str, url: str, token: str) -> None:
    try:
        body = _client(url, token).post(
            f"/1.0/submissions/{submission_id}/decision",
            json={"decision": decision, "comment": comment},
        )
    except SubmissionError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"submission {body['id']}: {body['name']} {body['version']} is {body['state']}")


comment_option = click.option("-m", "--comment", default="", help="Your comment to the vendor.")
required_comment = click.option(
    "-m", "--comment", required=True, help="Your comment to the vendor."
)


@review_cli.command("approve")
@click.argument("submission_id", type=int)
@comment_option
@url_option
@token_option
def approve(submission_id: int, comment: str, url: str, token: str) -> None:
    """Approve: the version enters the catalogue."""
    _decide(submission_id, "approve", comment, url, token)


@review_cli.command("reject")
@click.argument("submission_id", type=int)
@required_comment
@url_option
@token_option
def reject(submission_id: int, comment: str, url: str, token: str) -> None:
    """Reject, saying why."""
    _decide(submission_id, "reject", comment, url, token)


@review_cli.command("request-changes")
@click.argument("submission_id", type=int)
@required_comment
@url_option
@token_option
def request_changes(submission_id: int, comment: str, url: str, token: str) -> None:
    """Ask the vendor for changes (they submit a new version)."""
    _decide(submission_id, "request_changes", comment, url, token)
