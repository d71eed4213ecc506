"""The vendor's development loop on the command line: ``broker test -v``, ``--fixture``,
``--watch``, a local receiver (``--receiver``) and IP literals in egress, ``brokerage
login`` (a 0600 file the other commands use), and ``broker logs`` (redacted runs)."""

from __future__ import annotations

import json
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from flask import Flask
from werkzeug.datastructures import MultiDict

from brokerage.platform.cli import main
from brokerage.platform.db import session_scope
from brokerage.platform.models import Delivery, DeliveryAttempt, Push, Service
from brokerage.submissions.cli import watch_package
from brokerage.submissions.models import BrokerVersion
from tests.submissions.conftest import (
    FIXTURE,
    archive,
    docker_image,
    package_files,
    upload,
    write_folder,
)
from tests.support import Seeder


def cli(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def two_fixture_package(tmp_path: Path) -> Path:
    quiet = {**FIXTURE, "expect": {"status": "failed", "mails": 1}}
    files = package_files(extra={"fixtures/push__quiet.json": json.dumps(quiet).encode()})
    return write_folder(tmp_path / "acme-hook", files)


def test_verbose_says_why_an_expectation_failed_and_fixture_runs_one(tmp_path: Path) -> None:
    folder = two_fixture_package(tmp_path)
    env = {"BROKERAGE_DATA_DIR": str(tmp_path / "v")}
    # the fake sandbox answers every run "succeeded" without sending anything
    quiet = cli("broker", "test", str(folder), "--backend", "fake", "--fixture", "quiet", env=env)
    assert quiet.exit_code == 1
    assert "FAIL fixture quiet: succeeded (expected failed)" in quiet.output
    assert "fixture one_commit" not in quiet.output  # --fixture runs that one only
    assert "       expected: status failed, 1 mails" in quiet.output
    assert "       got:      status succeeded, 0 request(s), 0 mails, 0 api calls" in quiet.output
    assert "problem: sent 0 mail(s), expected 1" in quiet.output

    verbose = cli("broker", "test", str(folder), "--backend", "fake", "-v", env=env)
    assert "FAIL fixture one_commit" in verbose.output and "FAIL fixture quiet" in verbose.output
    assert "expected: status succeeded\n" in verbose.output  # said for every run under -v
    assert "Error: failed: dynamic" in verbose.output

    unknown = cli("broker", "test", str(folder), "--backend", "fake", "--fixture", "nope", env=env)
    assert unknown.exit_code == 2
    assert "--fixture: no fixture 'nope' (fixtures: one_commit, quiet)" in unknown.output


def test_watch_runs_again_when_a_file_changes(tmp_path: Path) -> None:
    folder = two_fixture_package(tmp_path)
    runs: list[int] = []

    def run() -> None:
        runs.append(1)
        if len(runs) == 1:  # the vendor edits the broker after the first run
            code = folder / "broker.py"
            code.write_text(code.read_text() + "\n# edited\n")

    watch_package(folder, run, interval=0.01, max_runs=2)
    assert len(runs) == 2

    watched = cli(
        "broker", "test", str(folder), "--backend", "fake", "--fixture", "quiet",
        "--watch", "--runs", "1", "--interval", "0.01",
        env={"BROKERAGE_DATA_DIR": str(tmp_path / "v")},
    )  # fmt: skip
    assert watched.exit_code == 0  # watching never ends in an error
    assert "FAILED: failed: dynamic" in watched.output
    assert f"watching {folder} for changes" in watched.output


@pytest.fixture
def local_receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """The vendor's own receiver on 127.0.0.1: records each POST, answers 201."""
    got: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            got.append({"path": self.path, "body": body.decode()})
            answer = b'{"accepted": "by the local receiver"}'
            self.send_response(201)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", got
    server.shutdown()


def test_a_broker_is_tested_against_a_local_receiver(
    tmp_path: Path, local_receiver: tuple[str, list[dict[str, Any]]]
) -> None:
    url, got = local_receiver
    made = cli("broker", "new", "acme-hook", "--dir", str(tmp_path))
    assert made.exit_code == 0, made.output
    folder = tmp_path / "acme-hook"  # egress ["*"]: any public host, never 127.0.0.1 alone
    env = {
        "BROKERAGE_SANDBOX_BACKEND": "docker",
        "BROKERAGE_SANDBOX_IMAGE": docker_image(),
        "BROKERAGE_DATA_DIR": str(tmp_path / "v"),
    }
    tested = cli("broker", "test", str(folder), "--receiver", url, "-v", env=env)
    assert tested.exit_code == 0, tested.output
    assert f"egress POST {url}/hook -> 201 [receiver]" in tested.output
    assert '"message": "sent 1 commit(s)"' in tested.output  # -v: the result
    assert "127.0.0.1 answered 201:" in tested.output  # -v: what the receiver answered
    assert '{"accepted": "by the local receiver"}' in tested.output
    [request] = got
    assert request["path"] == "/hook"
    assert json.loads(request["body"])["commits"][0]["node"] == "620ade18607a"

    # without --receiver the same address stays closed: the run is refused by the gateway
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["egress"] = ["127.0.0.1"]  # an IP literal is valid egress now
    (folder / "manifest.json").write_text(json.dumps(manifest))
    fixture_path = folder / "fixtures" / "push__one_commit.json"
    fixture = json.loads(fixture_path.read_text())
    fixture["service"]["URL"] = f"{url}/hook"
    fixture_path.write_text(json.dumps(fixture))
    closed = cli("broker", "test", str(folder), env=env)
    assert closed.exit_code == 1
    assert "refused: port_not_allowed" in closed.output or "refused: address" in closed.output
    assert len(got) == 1
    opened = cli("broker", "test", str(folder), "--allow-host", url.split("//")[1], env=env)
    assert opened.exit_code == 0, opened.output
    assert "[declared]" in opened.output and len(got) == 2


def test_login_stores_a_private_file_the_other_commands_use(
    tmp_path: Path, client, people, seed: Seeder, live_server, monkeypatch
) -> None:
    path = tmp_path / "conf" / "cli.json"
    monkeypatch.setenv("BROKERAGE_CLI_CONFIG", str(path))
    monkeypatch.delenv("BROKERAGE_URL", raising=False)
    monkeypatch.delenv("BROKERAGE_TOKEN", raising=False)
    token = seed.token("acme")
    refused = cli("login", "--url", live_server.url, "--token", "wrong")
    assert refused.exit_code == 1 and "HTTP 401" in refused.output and not path.exists()
    missing = cli("broker", "list")
    assert missing.exit_code == 2 and "run brokerage login" in missing.output

    done = cli("login", "--url", live_server.url + "/", "--token", token)
    assert done.exit_code == 0, done.output
    assert done.output.startswith(f"logged in to {live_server.url} as acme (vendor)")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"url": live_server.url, "token": token}

    upload(client, people.vendor, archive(package_files()))
    listed = cli("broker", "list")
    assert listed.exit_code == 0 and "acme-hook 1.0.0  submitted" in listed.output
    queue = cli("review", "queue")  # the reviewer commands read it too (acme is no reviewer)
    assert "HTTP 403" in queue.output

    path.chmod(0o644)  # logging in again tightens an older file
    assert cli("login", "--url", live_server.url, "--token", token).exit_code == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


SECRET_URL = "https://hooks.acme.test/in?key=s3cr3t-value"


def _a_run_of_acme_hook(app: Flask) -> str:
    """acme-hook 1.0.0, approved, enabled on marcus/project-x, with one recorded attempt whose
    log lines name the service's URL, the repository and the pusher."""
    from brokerage.platform import accounts, repositories, services
    from brokerage.submissions.states import SubmissionState

    maker = app.extensions["brokerage.sessionmaker"]
    cipher = app.extensions["brokerage.runtime"].cipher
    with session_scope(maker) as session:
        version = (
            session.query(BrokerVersion).filter(BrokerVersion.artifact_digest.is_not(None)).one()
        )
        version.state = str(SubmissionState.APPROVED)
        session.flush()
        marcus = accounts.get_user(session, "marcus")
        repo = repositories.get_administered(session, marcus, "marcus", "project-x")
        params = MultiDict({"type": "Acme Hook", "URL": SECRET_URL})
        service = services.add_service(session, repo, params, cipher)
        session.flush()
        push = Push(repository=repo, client_push_id="p1", user="marcus", payload={})
        delivery = Delivery(id="d-1", push=push, service=service, repository_id=repo.id,
                            broker_version=version, status="failed", attempts=1)  # fmt: skip
        delivery.attempt_log.append(
            DeliveryAttempt(
                number=1, outcome="failed", run_status="failed", duration_seconds=0.5,
                message=f"POST {SECRET_URL} answered 500",
                logs=[f"posting marcus/project-x to {SECRET_URL}", "pushed by marcus"],
                requests=[{"method": "POST", "url": SECRET_URL, "status": 500, "refused": None}],
                stderr="Traceback ...\nRuntimeError: project-x broke",
            )
        )  # fmt: skip
        session.add(delivery)
        assert isinstance(service, Service)
        return delivery.id


def test_broker_logs_shows_a_vendor_their_runs_redacted(
    app: Flask, client, people, seed: Seeder, live_server
) -> None:
    upload(client, people.vendor, archive(package_files()))
    _a_run_of_acme_hook(app)
    acme = seed.token("acme")
    shown = cli("broker", "logs", "acme-hook", "--url", live_server.url, "--token", acme)
    assert shown.exit_code == 0, shown.output
    assert "acme-hook 1.0.0" in shown.output and "attempt 1  failed  0.50s" in shown.output
    assert "POST hooks.acme.test -> 500" in shown.output  # the host, never path or query
    assert "log: posting ******** to ********" in shown.output
    assert "log: pushed by ********" in shown.output
    assert "RuntimeError: ******** broke" in shown.output
    for leaked in ("s3cr3t", "project-x", "marcus", "key="):
        assert leaked not in shown.output, leaked

    body = client.get("/1.0/vendor/brokers/acme-hook/runs", headers=people.vendor).json
    assert [run["delivery"] for run in body] == ["d-1"]
    assert "s3cr3t" not in json.dumps(body) and "marcus" not in json.dumps(body)
    # nobody else sees them: another vendor, a repository admin, a bad limit
    assert (
        client.get("/1.0/vendor/brokers/acme-hook/runs", headers=people.other_vendor).status_code
        == 404
    )
    assert client.get("/1.0/vendor/brokers/acme-hook/runs", headers=people.admin).status_code == 403
    bad = client.get("/1.0/vendor/brokers/acme-hook/runs?limit=0", headers=people.vendor)
    assert bad.status_code == 400 and "limit" in bad.json["error"]["message"]
    none = cli("broker", "logs", "globex-x", "--url", live_server.url, "--token", acme)
    assert none.exit_code == 1 and "you have no broker named 'globex-x'" in none.output
