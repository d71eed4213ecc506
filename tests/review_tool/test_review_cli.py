"""``brokerage review``: queue, show, diff against the version last decided on, decisions."""

from __future__ import annotations

from click.testing import CliRunner

from brokerage.platform.cli import main
from tests.submissions.conftest import MANIFEST, archive, package_files, upload
from tests.support import Seeder


def _cli(live_server, token: str, *args: str):
    return CliRunner().invoke(main, ["review", *args, "--url", live_server.url, "--token", token])


def test_review_a_second_version_with_its_diff(
    client, people, seed: Seeder, verify_with, live_server
) -> None:
    rita = seed.token("rita")
    first = upload(client, people.vendor, archive(package_files())).json["id"]
    verify_with()
    assert _cli(live_server, rita, "approve", str(first)).exit_code == 0
    code = package_files()["broker.py"].decode().replace("timeout=10", "timeout=20")
    second = upload(client, people.vendor, archive(package_files(code=code, version="1.0.1"))).json[
        "id"
    ]
    verify_with()

    queue = _cli(live_server, rita, "queue")
    assert queue.output.splitlines() == [queue.output.splitlines()[0]]
    assert queue.output.startswith(f"{second:>5}  acme-hook 1.0.1  by acme")

    diff = _cli(live_server, rita, "diff", str(second)).output
    lines = diff.splitlines()
    assert lines[0] == "against: 1.0.0 (approved)"
    assert lines[1].startswith("  review: approved by rita, ")
    assert lines[2:7] == [
        "risk: egress hooks.acme.test",
        "risk: new hosts none",
        "risk: new permissions none",
        "risk: password fields none",
        "risk: history 1.0.0 approved",
    ]
    assert lines[7:9] == ["--- a/broker.py (1.0.0)", "+++ b/broker.py (1.0.1)"]
    call = '        response = requests.post(self.get_local("URL"), json=forward_payload(payload), '
    assert f"-{call}timeout=10)" in diff and f"+{call}timeout=20)" in diff
    assert '-  "version": "1.0.0",' in diff and '+  "version": "1.0.1",' in diff

    shown = _cli(live_server, rita, "show", str(second)).output
    assert shown.startswith("# acme-hook 1.0.1 (Acme Hook) by acme: awaiting_review")
    for part in (
        "## manifest",
        "## broker.py",
        "## fixtures/push__one_commit.json",
        "verification PASSED (fake)",
        "ok   fixture one_commit: succeeded",
        "## audit",
        "verifying -> awaiting_review  by platform",
    ):
        assert part in shown, part

    rejected = _cli(live_server, rita, "reject", str(second), "-m", "timeouts must stay at 10 s")
    assert rejected.output.strip() == f"submission {second}: acme-hook 1.0.1 is rejected"
    assert _cli(live_server, rita, "queue").output.strip() == "the queue is empty"
    assert MANIFEST["version"] == "1.0.0"


def test_decisions_need_a_reviewer_and_a_comment(
    client, people, seed: Seeder, verify_with, live_server, unchanged
) -> None:
    acme, rita = seed.token("acme"), seed.token("rita")
    submission = upload(client, people.vendor, archive(package_files())).json["id"]
    verify_with()
    with unchanged():
        assert "HTTP 403: this needs the reviewer role" in _cli(live_server, acme, "queue").output
        as_vendor = _cli(live_server, acme, "approve", str(submission))
        assert (
            as_vendor.exit_code == 1
            and "HTTP 403: only reviewers decide on submissions" in as_vendor.output
        )
        no_comment = client.post(
            f"/1.0/submissions/{submission}/decision",
            json={"decision": "reject"},
            headers=people.reviewer,
        )
        assert no_comment.status_code == 403
        assert (
            no_comment.json["error"]["message"]
            == "a rejected decision needs a comment for the vendor"
        )
        unknown = client.post(
            f"/1.0/submissions/{submission}/decision",
            json={"decision": "maybe"},
            headers=people.reviewer,
        )
        assert unknown.status_code == 400
    missing = CliRunner().invoke(
        main, ["review", "reject", str(submission), "--url", live_server.url, "--token", rita]
    )
    assert missing.exit_code == 2 and "Missing option '-m'" in missing.output
