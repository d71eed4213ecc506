"""The review loop on the command line and over the API: notes to the reviewer at submit,
the decision mailed to the vendor (a real SMTP server) and printed by ``broker list`` and
``broker report``, the diff and risk summary against the version last decided on, and a
version number a failed verification does not use up."""

from __future__ import annotations

from click.testing import CliRunner, Result

from brokerage.platform.cli import main
from brokerage.platform.runtime import Runtime
from brokerage.sandbox.fake import FakeBackend
from brokerage.sandbox.interface import RunResult, RunStatus
from tests.submissions.conftest import archive, package_files, upload, write_folder
from tests.support import Seeder, SmtpSink


def _cli(live_server, token: str, *args: str) -> Result:
    return CliRunner().invoke(main, [*args, "--url", live_server.url, "--token", token])


def test_notes_decision_mail_and_comments_where_the_vendor_works(
    tmp_path,
    client,
    people,
    seed: Seeder,
    verify_with,
    live_server,
    runtime: Runtime,
    smtp: SmtpSink,
) -> None:
    runtime.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=smtp.port, MAIL_DOMAIN="brokerage.test")
    acme, rita = seed.token("acme"), seed.token("rita")
    folder = write_folder(tmp_path / "one", package_files())
    sent = _cli(live_server, acme, "broker", "submit", str(folder),
                "--notes", "First version.\nIt only POSTs.")  # fmt: skip
    assert sent.exit_code == 0, sent.output
    first = int(sent.output.split()[1].rstrip(":"))
    verify_with()
    shown = _cli(live_server, rita, "review", "show", str(first), "--no-code").output
    assert "## notes to the reviewer\nFirst version.\nIt only POSTs.\n" in shown
    assert client.get(f"/1.0/submissions/{first}", headers=people.vendor).json["notes"] == (
        "First version.\nIt only POSTs."
    )

    asked = _cli(live_server, rita, "review", "request-changes", str(first),
                 "-m", "Sign the requests.\nUse webhook_headers().")  # fmt: skip
    assert asked.exit_code == 0, asked.output
    [mail] = smtp.messages
    assert mail["to"] == ["acme@example.org"]
    message = mail["message"]
    assert message["Subject"] == "[Brokerage] acme-hook 1.0.0 sent back with changes requested"
    body = message.get_content().replace("\r\n", "\n")
    assert body.startswith("acme-hook 1.0.0 was sent back with changes requested in review.\n")
    assert "  Sign the requests.\n  Use webhook_headers().\n" in body
    assert f"/vendor/submissions/{first}" in body and "/1.0/" not in body

    listed = _cli(live_server, acme, "broker", "list").output.splitlines()
    at = next(i for i, line in enumerate(listed) if line.startswith(f"{first:>5}  acme-hook"))
    assert listed[at + 1].startswith("       review: changes_requested by rita, ")
    assert listed[at + 2 : at + 4] == [
        "         > Sign the requests.",
        "         > Use webhook_headers().",
    ]
    report = _cli(live_server, acme, "broker", "report", str(first)).output
    assert report.startswith("review: changes_requested by rita, ")
    assert "  > Sign the requests.\n" in report

    # the answer: a new version with a new host and a password field
    fields = [{"label": "URL", "type": "url", "required": True},
              {"label": "Secret", "type": "password", "required": False}]  # fmt: skip
    code = package_files()["broker.py"].decode().replace("timeout=10", "timeout=5")
    second = upload(client, people.vendor, archive(package_files(
        code=code, version="1.1.0", fields=fields, egress=["hooks.acme.test", "api.acme.test"]
    ))).json["id"]  # fmt: skip
    verify_with()
    diff = _cli(live_server, rita, "review", "diff", str(second)).output.splitlines()
    assert diff[0] == "against: 1.0.0 (changes_requested)"  # not "nothing approved yet"
    assert diff[1].startswith("  review: changes_requested by rita, ")
    assert diff[2] == "    > Sign the requests."
    assert "risk: new hosts api.acme.test" in diff
    assert "risk: password fields Secret" in diff
    assert "risk: history 1.0.0 changes_requested" in diff
    assert "-        response = requests.post(" in "\n".join(diff)

    approved = client.post(f"/1.0/submissions/{second}/decision", headers=people.reviewer,
                           json={"decision": "approve", "comment": "Thanks!"})  # fmt: skip
    assert approved.status_code == 200 and approved.json["mailed"] is True
    assert approved.json["decision"]["comment"] == "Thanks!"
    assert smtp.messages[-1]["message"]["Subject"] == "[Brokerage] acme-hook 1.1.0 approved"


def test_a_mail_server_that_is_down_does_not_undo_the_decision(
    client, people, verify_with, runtime: Runtime
) -> None:
    runtime.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=1)  # nothing listens there
    submission = upload(client, people.vendor, archive(package_files())).json["id"]
    verify_with()
    decided = client.post(f"/1.0/submissions/{submission}/decision", headers=people.reviewer,
                          json={"decision": "reject", "comment": "No."})  # fmt: skip
    assert decided.status_code == 200
    assert (decided.json["state"], decided.json["mailed"]) == ("rejected", False)


def _failing(*_args: object) -> RunResult:
    return RunResult(RunStatus.FAILED, exit_code=1, error={"type": "RuntimeError",
                     "message": "boom"}, backend="fake")  # fmt: skip


def test_a_failed_verification_does_not_use_up_the_version_number(
    tmp_path, client, people, seed: Seeder, verify_with, live_server
) -> None:
    first = upload(client, people.vendor, archive(package_files())).json
    verify_with(lambda _egress: FakeBackend(handler=_failing))
    failed = client.get(f"/1.0/submissions/{first['id']}", headers=people.vendor).json
    assert failed["state"] == "verification_failed"

    folder = write_folder(tmp_path / "fixed", package_files())
    again = _cli(live_server, seed.token("acme"), "broker", "submit", str(folder),
                 "--notes", "fixed the crash")  # fmt: skip
    assert again.exit_code == 0, again.output
    assert again.output.startswith(f"submission {first['id']}: acme-hook 1.0.0 is submitted")
    verify_with()
    shown = client.get(f"/1.0/submissions/{first['id']}", headers=people.vendor).json
    assert shown["state"] == "awaiting_review" and shown["notes"] == "fixed the crash"
    moves = [(e["from"], e["to"]) for e in shown["events"]]
    assert ("verification_failed", "submitted") in moves  # the failed try stays audited

    # a version that passed verification keeps its number
    taken = upload(client, people.vendor, archive(package_files()))
    assert taken.status_code == 409 and "already submitted" in taken.json["error"]["message"]
    # notes are bounded
    long = client.post("/1.0/submissions?notes=" + "x" * 4001, headers={**people.vendor,
                       "Content-Type": "application/gzip"}, data=archive(package_files(
                       version="2.0.0")))  # fmt: skip
    assert long.status_code == 400 and "notes: at most 4000" in long.json["error"]["message"]
