"""``brokerage broker ...``: the vendor's command line.

- ``new NAME``: scaffold a package folder (manifest, broker, a fixture, a README);
- ``test PATH``: the static checks, then every fixture run in the real sandbox through
  the real gateway with a recording receiver, a recording SMTP server for mail and a
  stand-in for the platform API (the issue tracker), each outcome printed (exit 1 on a
  failure);
- ``submit PATH``: upload through the API (``--url``/``--token``);
- ``list``, ``report ID``, ``withdraw ID``: follow submissions through the API.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import click

from brokerage.submissions.client import ApiClient
from brokerage.submissions.errors import SubmissionError

NAME = re.compile(r"^[a-z][a-z0-9_-]{1,39}$")

BROKER_PY = '''"""{title}: POSTs each push (less the service's secrets) to the URL you set."""

import requests
from brokerage_sdk import BaseBroker, forward_payload


class {cls}(BaseBroker):
    def handle(self, payload):
        url = self.get_local("URL")
        response = requests.post(url, json=forward_payload(payload), timeout=10)
        response.raise_for_status()
        return {{"message": "sent %d commit(s)" % len(payload["commits"])}}
'''

FIXTURE: dict[str, Any] = {
    "canon_url": "https://bitbucket.org",
    "commits": [
        {
            "author": "marcus",
            "branch": "master",
            "files": [{"file": "somefile.py", "type": "modified"}],
            "message": "Added some more things to somefile.py\n",
            "node": "620ade18607a",
            "parents": ["702c70160afc"],
            "raw_author": "Marcus Bertrand <marcus@somedomain.com>",
            "raw_node": "620ade18607ac42d872b568bb92acaa9a28620e9",
            "revision": None,
            "size": -1,
            "timestamp": "2012-05-30 05:58:56",
            "utctimestamp": "2012-05-30 03:58:56+00:00",
        }
    ],
    "repository": {
        "absolute_url": "/marcus/project-x/",
        "fork": False,
        "is_private": True,
        "name": "Project X",
        "owner": "marcus",
        "scm": "git",
        "slug": "project-x",
        "website": "",
    },
    "user": "marcus",
    "service": {"URL": "${receiver}/hook"},
}

README = """# {title}

{description}

## Fields

- **URL** (required): where each push is POSTed as JSON.

## Testing

    brokerage broker test {name}

runs `fixtures/push__*.json` in the sandbox; `${{receiver}}` in a fixture's `service`
values is the recording receiver the test starts. Mail the broker sends goes to a
recording SMTP server, and calls to the platform API (the issue tracker) to a stand-in
that answers for the fixture's repository: a fixture's `tracker` lists the issues it
holds, and `expect` may say `"mails": 1`, `"api_calls": 2` or
`"issues": {{"1": "resolved"}}`.
"""


def _client(url: str, token: str) -> ApiClient:
    if not url or not token:
        raise click.UsageError("give --url and --token (or BROKERAGE_URL and BROKERAGE_TOKEN)")
    return ApiClient(url, token)


def _fail(exc: SubmissionError) -> click.ClickException:
    return click.ClickException(str(exc))


url_option = click.option(
    "--url", envvar="BROKERAGE_URL", default="", help="The platform's base URL."
)
token_option = click.option("--token", envvar="BROKERAGE_TOKEN", default="", help="Your API token.")


@click.group("broker")
def broker_cli() -> None:
    """Write, test and submit brokers (vendors)."""


@broker_cli.command("new")
@click.argument("name")
@click.option(
    "--dir",
    "parent",
    type=click.Path(path_type=Path),
    default=Path("."),
    show_default=True,
    help="Where to create the package folder.",
)
@click.option("--title", default=None, help="The type name admins see (default: from NAME).")
@click.option("--vendor", "vendor_name", default="Example Vendor", show_default=True)
@click.option("--email", default="support@example.com", show_default=True, help="Support contact.")
def new(name: str, parent: Path, title: str | None, vendor_name: str, email: str) -> None:
    """Scaffold a broker package NAME/ that POSTs pushes to a URL."""
    if not NAME.match(name):
        raise click.BadParameter(
            "2 to 40 of a-z 0-9 _ -, starting with a letter", param_hint="NAME"
        )
    folder = parent / name
    if folder.exists():
        raise click.ClickException(f"{folder} already exists")
    title = title or name.replace("-", " ").replace("_", " ").title()
    cls = "".join(part.title() for part in re.split(r"[-_]", name)) + "Broker"
    description = f"POSTs every push to a URL of your choice ({title})."
    manifest = {
        "name": name,
        "version": "0.1.0",
        "title": title,
        "description": description,
        "vendor": {"name": vendor_name, "email": email},
        "events": ["push"],
        "fields": [
            {
                "label": "URL",
                "type": "url",
                "required": True,
                "help": "Where each push is POSTed as JSON.",
            }
        ],
        "egress": ["*"],
        "entry_point": f"broker.py:{cls}",
    }
    (folder / "fixtures").mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    (folder / "broker.py").write_text(BROKER_PY.format(title=title, cls=cls))
    (folder / "fixtures" / "push__one_commit.json").write_text(json.dumps(FIXTURE, indent=2) + "\n")
    (folder / "README.md").write_text(
        README.format(title=title, description=description, name=name)
    )
    click.echo(f"created {folder}/ (manifest.json, broker.py, fixtures/, README.md)")
    click.echo(f"next: brokerage broker test {folder}")


@broker_cli.command("test")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--backend",
    default=None,
    type=click.Choice(["auto", "docker", "bubblewrap", "fake"]),
    help="Sandbox backend (default: SANDBOX_BACKEND, else auto).",
)
def test(path: Path, backend: str | None) -> None:
    """Check the package at PATH and run its fixtures in the sandbox; exit 1 on any failure."""
    from brokerage.core.config import load_config
    from brokerage.submissions.dynamic import backend_factory
    from brokerage.submissions.package import read_package
    from brokerage.submissions.verification import verify_package

    config = load_config()
    if backend:
        config["SANDBOX_BACKEND"] = backend
    try:
        pkg = read_package(path)
        outcome = verify_package(pkg, backend_factory(config))
    except SubmissionError as exc:
        raise _fail(exc) from exc
    for check in outcome.checks:
        click.echo(f"{_mark(check.as_dict())} {check.name}: {check.summary}")
        for f in check.findings:
            where = f"{f.file}:{f.line}" if f.line else (f.file or "")
            click.echo(
                f"       {f.severity} {where} {f.message}"
                + (f"  |  {f.source}" if f.source else "")
            )
    for run in outcome.runs:
        _print_run(run.as_dict())
    if not outcome.passed:
        raise click.ClickException(outcome.summary())
    click.echo(f"all checks passed ({outcome.backend} sandbox)")


def _mark(check: dict[str, Any]) -> str:
    return "skip" if check.get("skipped") else ("ok  " if check["passed"] else "FAIL")


def _print_run(run: dict[str, Any]) -> None:
    mark = "ok  " if run["passed"] else "FAIL"
    click.echo(
        f"{mark} fixture {run['variant']}: {run['status']} (expected {run['expected']}) "
        f"in {run['duration_seconds']:.2f}s"
    )
    for entry in run["egress"]:
        declared = (
            "receiver" if entry["receiver"] else ("declared" if entry["declared"] else "UNDECLARED")
        )
        refused = f" refused: {entry['refused']}" if entry["refused"] else ""
        click.echo(
            f"       egress {entry['method']} {entry['url']} -> {entry['status']} "
            f"[{declared}]{refused}"
        )
    for got in run["received"]:
        click.echo(f"       receiver got {got['method']} {got['path']} ({len(got['body'])} chars)")
    for mail in run.get("mails", []):
        click.echo(f"       mail to {', '.join(mail['to'])}: {mail['subject']}")
    for call in run.get("api_calls", []):
        refused = f" refused ({call['refused']}): {call['detail']}" if call["refused"] else ""
        click.echo(f"       api {call['method']} {call['path']} -> {call['status']}{refused}")
    for line in run["logs"]:
        click.echo(f"       log: {line}")
    for problem in run["problems"]:
        click.echo(f"       problem: {problem}")
    if not run["passed"] and run["stderr"]:
        click.echo(
            "       stderr: " + run["stderr"].strip()[-500:].replace("\n", "\n               ")
        )


@broker_cli.command("submit")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@url_option
@token_option
@click.option("--draft", is_flag=True, help="Upload without sending it to verification.")
def submit(path: Path, url: str, token: str, draft: bool) -> None:
    """Upload the package at PATH (a folder or an archive) for verification and review."""
    from brokerage.submissions.package import pack_folder

    try:
        data = pack_folder(path) if path.is_dir() else path.read_bytes()
        body = _client(url, token).post(
            "/1.0/submissions",
            data=data,
            params={"draft": "true"} if draft else None,
            headers={"Content-Type": "application/gzip"},
        )
    except SubmissionError as exc:
        raise _fail(exc) from exc
    click.echo(
        f"submission {body['id']}: {body['name']} {body['version']} is {body['state']}"
        + ("" if body.get("queued") or draft else " (verification not queued yet)")
    )


@broker_cli.command("list")
@url_option
@token_option
def list_submissions(url: str, token: str) -> None:
    """Your submissions and their states."""
    try:
        found = _client(url, token).get("/1.0/submissions")
    except SubmissionError as exc:
        raise _fail(exc) from exc
    for item in found:
        report = item["report"]
        verdict = "-" if report is None else ("passed" if report["passed"] else "failed")
        click.echo(
            f"{item['id']:>5}  {item['name']} {item['version']}  {item['state']}  report: {verdict}"
        )


@broker_cli.command("report")
@click.argument("submission_id", type=int)
@url_option
@token_option
def report(submission_id: int, url: str, token: str) -> None:
    """The verification report of a submission."""
    try:
        found = _client(url, token).get(f"/1.0/submissions/{submission_id}/report")
    except SubmissionError as exc:
        raise _fail(exc) from exc
    echo_report(found)


def echo_report(found: dict[str, Any]) -> None:
    click.echo(
        f"verification {'PASSED' if found['passed'] else 'FAILED'} "
        f"({found['backend'] or 'static only'})"
    )
    for check in found["checks"]:
        click.echo(f"{_mark(check)} {check['name']}: {check['summary']}")
        for f in check["findings"]:
            where = f"{f['file']}:{f['line']}" if f["line"] else (f["file"] or "")
            source = f"  |  {f['source']}" if f["source"] else ""
            click.echo(f"       {f['severity']} {where} {f['message']}{source}")
    for run in found["transcript"]:
        _print_run(run)


@broker_cli.command("withdraw")
@click.argument("submission_id", type=int)
@click.option("--reason", default="", help="Why (kept in the audit trail).")
@url_option
@token_option
def withdraw(submission_id: int, reason: str, url: str, token: str) -> None:
    """Withdraw a submission (it leaves the queue, or the catalogue)."""
    try:
        body = _client(url, token).post(
            f"/1.0/submissions/{submission_id}/withdraw", json={"reason": reason}
        )
    except SubmissionError as exc:
        raise _fail(exc) from exc
    click.echo(f"submission {body['id']}: {body['name']} {body['version']} is {body['state']}")
