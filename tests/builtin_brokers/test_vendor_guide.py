"""The vendor guide's worked example (docs/vendors.md, section 6) runs as written: its
broker.py, in the real sandbox, behind the real gateway, against a recording receiver."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

from brokerage.sandbox.interface import BrokerBundle
from tests.builtin_brokers.fixtures import fixture
from tests.builtin_brokers.harness import LIMITS, RECEIVER_HOST, BrokerRig
from tests.builtin_brokers.sdk_path import sdk_module

GUIDE = Path(__file__).parents[2] / "docs" / "vendors.md"
shortlinks = sdk_module("sdk_shortlinks")


def guide_code() -> tuple[str, dict[str, object]]:
    text = GUIDE.read_text()
    example = text[text.index("Worked example: TicketBot") :]
    code = re.search(r"```python\n(.*?)```", example, re.DOTALL)
    manifest = re.search(r"```json\n(.*?)```", text, re.DOTALL)
    assert code and manifest
    return code.group(1), json.loads(manifest.group(1))


def test_the_worked_example_runs(rig: BrokerRig) -> None:
    code, manifest = guide_code()
    manifest["egress"] = [RECEIVER_HOST]
    bundle = BrokerBundle("ticketbot", "1.0.0", manifest, {"broker.py": code.encode()})
    payload = fixture("post", "3_commits")
    service = {"Channel URL": rig.hook_url("/channel"), "API key": "k-123", "Template": ""}
    envelope = dict(payload, service=service, broker="ticketbot",
                    delivery={"id": str(uuid.uuid4()), "attempt": 1})  # fmt: skip
    result = rig.backend.run(bundle, envelope, LIMITS)
    assert result.status == "succeeded", result.error
    [request] = rig.hook.requests
    assert request.headers["x-api-key"] == "k-123"
    lines = json.loads(request.body)["lines"]
    first = payload["commits"][0]
    code_of_first = shortlinks.short_code("marcus", "project-x", first["raw_node"])
    assert lines[0] == (
        f"Project X: marcus - Added some more things to somefile.py "
        f"https://brokerage.example/c/{code_of_first}"
    )
    assert len(lines) == 3

    missing = dict(envelope, service={"Channel URL": rig.hook_url("/channel")})
    failed = rig.backend.run(bundle, missing, LIMITS)
    assert failed.error and failed.error["kind"] == "configuration"
