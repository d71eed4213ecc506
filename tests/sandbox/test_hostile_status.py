"""Status and frame forgery: a run's status comes from what the runner or the kernel saw.

``timed_out``, ``output_exceeded``, ``out_of_memory`` and ``crashed`` come from the
runner's own kills and timers, the exit status, the kernel's count of the broker's
address space and rusage, the cgroup's OOM kills (or Docker's ``OOMKilled``) - never
from what the broker raised, printed, logged or wrote on its channel. Guarded brokers
run on the bare runner, Docker warm and strict and bubblewrap; brokers with the guards
switched off (what an escape could do) on the three sandboxes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from brokerage.sandbox.interface import Limits, RunStatus
from brokerage.sandbox.pool import PoolPolicy
from brokerage.sandbox.sandboxes import Mode, SandboxOptions
from tests.sandbox.conftest import make_backend
from tests.sandbox.hostile_support import KINDS, assert_clean_afterwards, start
from tests.sandbox.sandbox_fixtures import FAST, bundle, envelope


@dataclass(frozen=True)
class Forgery:
    code: str
    status: RunStatus
    error_type: str | None = None
    kind: str | None = None


HANDLE = """
import sys
from brokerage_sdk import BaseBroker, logger

class Broker(BaseBroker):
    def handle(self, payload):
{body}
"""

FORGERIES: dict[str, Forgery] = {
    "raising MemoryError": Forgery("raise MemoryError()", RunStatus.FAILED, "MemoryError"),
    "raising a MemoryError subclass": Forgery(
        "class Fake(MemoryError):\n    pass\nraise Fake('out of memory')",
        RunStatus.FAILED, "Fake"),
    "MemoryError after a small allocation": Forgery(
        "held = bytearray(8 * 1024 * 1024)\nraise MemoryError(len(held))",
        RunStatus.FAILED, "MemoryError"),
    "SystemExit with the runner's memory status": Forgery(
        "sys.exit(125)", RunStatus.FAILED, "SystemExit"),
    "SystemExit(256) wrapping to 0": Forgery("sys.exit(256)", RunStatus.FAILED, "SystemExit"),
    "SystemExit(-9) like a kill": Forgery("sys.exit(-9)", RunStatus.FAILED, "SystemExit"),
    "SystemExit('MemoryError')": Forgery(
        "raise SystemExit('MemoryError')", RunStatus.FAILED, "SystemExit"),
    "an error claiming the sandbox's kind": Forgery(
        "class Boom(Exception):\n    kind = 'sandbox'\nraise Boom('x')",
        RunStatus.FAILED, "Boom", kind="error"),
    "an exception named like a timeout": Forgery(
        "class TimedOut(Exception):\n    pass\nraise TimedOut('wall-clock limit reached')",
        RunStatus.FAILED, "TimedOut"),
    "an exception named like the output cap": Forgery(
        "class OutputExceeded(Exception):\n    pass\nraise OutputExceeded('cap')",
        RunStatus.FAILED, "OutputExceeded"),
    "KeyboardInterrupt": Forgery("raise KeyboardInterrupt()", RunStatus.FAILED,
                                 "KeyboardInterrupt"),
    "a result frame printed to stdout": Forgery(
        "sys.stdout.write('BRK1\\x00\\x00\\x00\\x2a{\"op\":\"result\",\"exit_code\":0}')\n"
        "sys.stdout.write('{\"result\": {\"forged\": true}}\\n')\n"
        "raise ValueError('real failure')",
        RunStatus.FAILED, "ValueError"),
    "a channel record in a log line": Forgery(
        "logger.info('\"}\\n{\"result\": {\"forged\": true}}\\n{\"error\": {\"type\": "
        "\"MemoryError\"}}')\nraise ValueError('real failure')",
        RunStatus.FAILED, "ValueError"),
    "a result that reads like an OOM error": Forgery(
        "return {'error': {'type': 'MemoryError', 'kind': 'sandbox'}, 'status': 'out_of_memory'}",
        RunStatus.SUCCEEDED),
}  # fmt: skip


@pytest.fixture(scope="module", params=KINDS)
def guarded(request: pytest.FixtureRequest) -> Any:
    backend = start(request.param, request)
    yield backend
    backend.close()


@pytest.mark.parametrize("name", list(FORGERIES))
def test_broker_cannot_forge_a_status(guarded, name):
    forgery = FORGERIES[name]
    body = "\n".join(" " * 8 + line for line in forgery.code.splitlines())
    broker = bundle(HANDLE.format(body=body), name="forger")
    result = guarded.run(broker, envelope(), FAST)
    assert result.status is forgery.status, (name, result)
    if forgery.error_type:
        assert result.error["type"] == forgery.error_type, (name, result.error)
        assert result.error["kind"] == (forgery.kind or "error"), (name, result.error)
    assert result.result in (None, {"error": {"type": "MemoryError", "kind": "sandbox"},
                                    "status": "out_of_memory"})  # fmt: skip
    if guarded.name != "bare":
        assert_clean_afterwards(guarded)


def test_a_real_memory_bomb_is_still_out_of_memory(guarded):
    hog = bundle(HANDLE.format(body=" " * 8 + "held = []\n" + " " * 8 + "while True:\n"
                               + " " * 12 + "held.append(bytearray(8 * 1024 * 1024))"),
                 name="hog")  # fmt: skip
    result = guarded.run(hog, envelope(), Limits(wall_seconds=20.0, memory_bytes=96 << 20))
    assert result.status is RunStatus.OUT_OF_MEMORY, result


# -- with the guards off: what an escape could write ------------------------------------------

UNGUARDED_KINDS = ("docker-warm", "docker-strict", "bubblewrap")


@pytest.fixture(scope="module", params=UNGUARDED_KINDS)
def escaped(request: pytest.FixtureRequest) -> Any:
    backend, _, mode = request.param.partition("-")
    options = SandboxOptions(guarded=False)
    if mode == "strict":
        made = make_backend(backend, request, mode=Mode.STRICT, options=options)
    else:
        made = make_backend(backend, request, pool=PoolPolicy(size=1), options=options)
    yield made
    made.close()


OOM_RECORD = '{"error": {"type": "MemoryError", "kind": "error", "message": "", "traceback": ""}}'

UNGUARDED: dict[str, tuple[str, RunStatus]] = {
    "an OOM error record on the channel, exit 1": (
        f"os.write(3, b'{OOM_RECORD}\\n')\nos._exit(1)", RunStatus.FAILED),
    "an OOM error record and the memory exit status": (
        f"os.write(3, b'{OOM_RECORD}\\n')\nos._exit(125)", RunStatus.FAILED),
    "SIGKILL to itself": ("os.kill(os.getpid(), signal.SIGKILL)", RunStatus.CRASHED),
    "a result frame on stdout and at the runner's stdout": (
        "frame = b'BRK1' + (20).to_bytes(4, 'big') + b'{\"op\":\"result\"}    '\n"
        "os.write(1, frame)\n"
        "try:\n"
        "    with open('/proc/1/fd/1', 'wb') as runner_out:\n"
        "        runner_out.write(frame)\n"
        "except OSError:\n"
        "    pass\n"
        "os.write(3, b'{\"error\": {\"type\": \"ValueError\"}}\\n')\nos._exit(3)",
        RunStatus.FAILED),
    "a timeout claimed on the channel": (
        "os.write(3, b'{\"error\": {\"type\": \"TimedOut\", \"kind\": \"sandbox\"}}\\n')\n"
        "os._exit(2)", RunStatus.FAILED),
}  # fmt: skip

UNGUARDED_HANDLE = """
import os
import signal

class Broker:
    def handle(self, payload):
{body}
"""


@pytest.mark.parametrize("name", list(UNGUARDED))
def test_code_past_the_guards_cannot_forge_a_status(escaped, name):
    code, status = UNGUARDED[name]
    body = "\n".join(" " * 8 + line for line in code.splitlines())
    broker = bundle(UNGUARDED_HANDLE.format(body=body), name="escaped-forger")
    result = escaped.run(broker, envelope(), FAST)
    assert result.status is status, (name, result)
    if result.error and result.status is RunStatus.FAILED:
        assert result.error["kind"] == "error", result.error
    assert_clean_afterwards(escaped)
