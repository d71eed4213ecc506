"""``brokerage broker ...``: the vendor's command line.

- ``new NAME``: scaffold a package folder (manifest, broker, a fixture, a README);
- ``test PATH``: the static checks, then every fixture run in the real sandbox through
  the real gateway with a recording receiver, a recording SMTP server for mail and a
  stand-in for the platform API (the issue tracker), each outcome printed (exit 1 on a
  failure). ``-v`` prints each run whole (log lines, result, error, what the receiver
  got and answered, expected against got); ``--fixture NAME`` runs one; ``--watch``
  runs again whenever a file of the package changes; ``--receiver URL`` points
  ``${receiver}`` at your own receiver (opened for that run only, loopback included);
  ``--allow-host HOST[:PORT]`` opens one more host for the run;
- ``submit PATH``: upload through the API (``--url``/``--token``, ``--notes`` for the
  reviewer);
- ``list``, ``report ID``, ``withdraw ID``: follow submissions (and the reviewer's
  decisions and comments) through the API;
- ``logs NAME``: your broker's runs on the platform, redacted;
- ``brokerage login``: store the URL and token for these commands (a 0600 file).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from brokerage.submissions.client import ApiClient, config_path, resolve_login, save_login
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


LOGIN_HINT = "give --url and --token (or BROKERAGE_URL and BROKERAGE_TOKEN, or run brokerage login)"


def api_client(url: str, token: str) -> ApiClient:
    """A client for ``--url``/``--token``, else the environment, else what login stored."""
    url, token = resolve_login(url, token)
    if not url or not token:
        raise click.UsageError(LOGIN_HINT)
    return ApiClient(url, token)


_client = api_client


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
@click.option("-v", "--verbose", is_flag=True, help="Print every run whole, passed or not.")
@click.option("--fixture", "only", default=None, metavar="NAME", help="Run this fixture only.")
@click.option("--watch", is_flag=True, help="Run again whenever a file of the package changes.")
@click.option(
    "--receiver",
    default=None,
    metavar="URL",
    help="Your own receiver (http://127.0.0.1:8000): ${receiver} in fixtures becomes it, "
    "and its host and port are opened for this run only.",
)
@click.option(
    "--allow-host",
    "allow_hosts",
    multiple=True,
    metavar="HOST[:PORT]",
    help="Open one more host for this run (resolved for real; may repeat).",
)
@click.option("--interval", default=1.0, hidden=True, help="Seconds between --watch polls.")
@click.option("--runs", "max_runs", default=0, hidden=True, help="--watch: stop after N runs.")
def test(
    path: Path,
    backend: str | None,
    verbose: bool,
    only: str | None,
    watch: bool,
    receiver: str | None,
    allow_hosts: tuple[str, ...],
    interval: float,
    max_runs: int,
) -> None:
    """Check the package at PATH and run its fixtures in the sandbox; exit 1 on any failure."""
    from brokerage.core.config import load_config
    from brokerage.submissions.dynamic import LocalRun

    config = load_config()
    if backend:
        config["SANDBOX_BACKEND"] = backend
    local = LocalRun(only=only, receiver=receiver, extra_hosts=allow_hosts)
    if not watch:
        failed = _test_once(path, config, local, verbose)
        if failed:
            raise click.ClickException(failed)
        return

    def again() -> None:
        failed = _test_once(path, config, local, verbose)
        if failed:
            click.echo(f"FAILED: {failed}")

    watch_package(path, again, interval, max_runs)


def watch_package(
    path: Path, run: Callable[[], None], interval: float = 1.0, max_runs: int = 0
) -> None:
    """Run, then run again each time a file under ``path`` changes (modification times are
    polled, no extra dependency), until interrupted (or ``max_runs`` runs)."""
    runs, seen = 0, None
    try:
        while not max_runs or runs < max_runs:
            stamp = _stamps(path)
            if stamp != seen:
                if seen is not None:
                    click.echo(f"\n--- {time.strftime('%H:%M:%S')} changed, running again")
                seen = stamp
                run()
                runs += 1
                click.echo(f"watching {path} for changes (Ctrl-C stops)")
            time.sleep(interval)
    except KeyboardInterrupt:
        click.echo("stopped watching")


def _stamps(path: Path) -> tuple[tuple[str, int, int], ...]:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    found = []
    for item in files:
        if "__pycache__" in item.parts:
            continue
        try:
            info = item.stat()
        except OSError:
            continue
        found.append((str(item), info.st_mtime_ns, info.st_size))
    return tuple(found)


def _test_once(path: Path, config: dict[str, Any], local: Any, verbose: bool) -> str | None:
    """One ``broker test`` run, printed; None when everything passed, else what failed. A
    package that cannot be read is a failure too, so ``--watch`` keeps watching."""
    from brokerage.submissions.dynamic import backend_factory
    from brokerage.submissions.package import read_package
    from brokerage.submissions.verification import verify_package

    try:
        pkg = read_package(path)
        outcome = verify_package(pkg, backend_factory(config), local=local)
    except SubmissionError as exc:
        return str(exc)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    for check in outcome.checks:
        click.echo(f"{_mark(check.as_dict())} {check.name}: {check.summary}")
        for f in check.findings:
            where = f"{f.file}:{f.line}" if f.line else (f.file or "")
            click.echo(
                f"       {f.severity} {where} {f.message}"
                + (f"  |  {f.source}" if f.source else "")
            )
    for run in outcome.runs:
        _print_run(run.as_dict(), verbose)
    if not outcome.passed:
        return outcome.summary()
    click.echo(f"all checks passed ({outcome.backend} sandbox)")
    return None


def _mark(check: dict[str, Any]) -> str:
    return "skip" if check.get("skipped") else ("ok  " if check["passed"] else "FAIL")


def _print_run(run: dict[str, Any], verbose: bool = False) -> None:
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
    if not run["passed"] or verbose:
        _print_why(run)
    if verbose:
        _print_detail(run)
    elif not run["passed"] and run["stderr"]:
        click.echo(
            "       stderr: " + run["stderr"].strip()[-500:].replace("\n", "\n               ")
        )


def _print_why(run: dict[str, Any]) -> None:
    """Expected against got, side by side: why an expectation failed (or held)."""
    expect = run.get("expect") or {}
    wanted = [f"status {run['expected']}"]
    wanted += ["sends nothing"] if expect.get("noop") else []
    wanted += [f"{expect[k]} {k.replace('_', ' ')}" for k in ("mails", "api_calls") if k in expect]
    wanted += [f"issue #{n} {s}" for n, s in (expect.get("issues") or {}).items()]
    sent = len(run["egress"]) + (0 if run["egress"] else len(run["received"]))
    got = [f"status {run['status']}", f"{sent} request(s)"]
    got += [f"{len(run.get(k, []))} {k.replace('_', ' ')}" for k in ("mails", "api_calls")]
    got += [f"issue #{n} {s}" for n, s in (run.get("issues") or {}).items()]
    if run.get("error"):
        error = run["error"]
        got.append(f"error {error.get('type', '')}: {error.get('message', '')}".strip())
    click.echo(f"       expected: {', '.join(wanted)}")
    click.echo(f"       got:      {', '.join(got)}")


def _indent(text: str, width: int = 12) -> str:
    return text.rstrip("\n").replace("\n", "\n" + " " * width)


def _print_detail(run: dict[str, Any]) -> None:
    """Everything a run left: result, error, what the receiver got and answered, output."""
    if run.get("result") is not None:
        click.echo("       result: " + _indent(json.dumps(run["result"], indent=2), 15))
    if run.get("error"):
        click.echo("       error: " + _indent(json.dumps(run["error"], indent=2), 14))
    for got in run["received"]:
        click.echo(f"       receiver got {got['method']} {got['path']}:")
        click.echo("            " + _indent(got["body"][:2000] or "(empty body)"))
    for entry in run["egress"]:
        answer = entry.get("response")
        if isinstance(answer, dict):
            status = answer.get("status", entry["status"])
            click.echo(f"       {entry['host']} answered {status}:")
            click.echo("            " + _indent(str(answer.get("body", ""))[:2000] or "(empty)"))
    for name in ("stdout", "stderr"):
        if run.get(name, "").strip():
            click.echo(f"       {name}: " + _indent(run[name].strip()[-2000:], 15))


@broker_cli.command("submit")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@url_option
@token_option
@click.option("--draft", is_flag=True, help="Upload without sending it to verification.")
@click.option("--notes", default="", help="Notes to the reviewer (what changed, and why).")
@click.option(
    "--notes-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Read the notes to the reviewer from this file.",
)
def submit(
    path: Path, url: str, token: str, draft: bool, notes: str, notes_file: Path | None
) -> None:
    """Upload the package at PATH (a folder or an archive) for verification and review."""
    from brokerage.submissions.package import pack_folder

    if notes_file is not None:
        notes = notes_file.read_text()
    try:
        data = pack_folder(path) if path.is_dir() else path.read_bytes()
        client = _client(url, token)
        params = {"draft": "true"} if draft else None
        if notes.strip():
            body = client.post(
                "/1.0/submissions",
                files={"package": ("package.tar.gz", data, "application/gzip")},
                data={"notes": notes},
                params=params,
            )
        else:
            body = client.post(
                "/1.0/submissions",
                data=data,
                params=params,
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
        echo_decision(item.get("decision"), indent="       ")


def echo_decision(decision: dict[str, Any] | None, indent: str = "") -> None:
    """The reviewer's decision and comment, when there is one."""
    if not decision:
        return
    click.echo(f"{indent}review: {decision['decision']} by {decision['by']}, {decision['at'][:19]}")
    for line in (decision.get("comment") or "").splitlines():
        click.echo(f"{indent}  > {line}")


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
    echo_decision(found.get("decision"))
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


@broker_cli.command("logs")
@click.argument("name")
@click.option("-n", "--limit", default=20, show_default=True, help="How many runs (at most 100).")
@url_option
@token_option
def logs(name: str, limit: int, url: str, token: str) -> None:
    """Your broker NAME's runs on the platform, newest first, redacted: field values and
    repository names masked, requests by host only."""
    try:
        runs = _client(url, token).get(f"/1.0/vendor/brokers/{name}/runs", params={"limit": limit})
    except SubmissionError as exc:
        raise _fail(exc) from exc
    if not runs:
        click.echo(f"{name} has not run on the platform yet")
    for run in runs:
        took = f"{run['duration_seconds']:.2f}s" if run["duration_seconds"] is not None else "-"
        click.echo(
            f"{run['started_at'][:19]}  {name} {run['version']}  service {run['service']}  "
            f"attempt {run['attempt']}  {run['outcome']}  {took}"
            + (f"  {run['message']}" if run["message"] else "")
        )
        for request in run["requests"]:
            refused = f" refused: {request['refused']}" if request["refused"] else ""
            click.echo(
                f"       {request['method']} {request['host']} -> {request['status']}{refused}"
            )
        for line in run["logs"]:
            click.echo(f"       log: {line}")
        if run["outcome"] != "succeeded" and run["stderr"].strip():
            click.echo("       stderr: " + _indent(run["stderr"].strip()[-800:], 15))


@click.command("login")
@click.option("--url", prompt="Platform URL", help="The platform's base URL.")
@click.option("--token", prompt="API token", hide_input=True, help="Your API token.")
def login(url: str, token: str) -> None:
    """Store the platform URL and your API token for the broker and review commands (in a
    file only you can read); checks them first."""
    try:
        me = ApiClient(url, token).get("/1.0/user")
    except SubmissionError as exc:
        raise _fail(exc) from exc
    path = save_login(url, token)
    roles = ", ".join(me.get("roles") or []) or "no role"
    click.echo(f"logged in to {url.rstrip('/')} as {me['username']} ({roles}); saved in {path}")


__all__ = ["broker_cli", "login", "config_path"]
