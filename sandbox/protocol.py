"""The host side of the runner protocol (see ``runner/frames.py``).

Every backend speaks it the same way: one ``load`` frame per sandbox, one
``run`` frame per run, one ``result`` frame back. :func:`decode_result` turns
the runner's facts and the child's channel into a :class:`RunResult`; the
status is decided here, on the host, from what the runner (not the broker)
observed.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from typing import Any

from brokerage.sandbox.errors import ProtocolError
from brokerage.sandbox.interface import BrokerBundle, Limits, RunResult, RunStatus
from brokerage.sandbox.runner import frames
from brokerage.sandbox.runner.policy import DEFAULT_IMPORTS

__all__ = ["DEFAULT_IMPORTS", "decode_result", "encode_load", "encode_run"]


def encode_load(
    bundle: BrokerBundle, allowed_imports: Iterable[str] = DEFAULT_IMPORTS, guarded: bool = True
) -> bytes:
    """The frame that turns a fresh runner into a sandbox for ``bundle``.

    ``guarded=False`` drops the RestrictedPython layer; only tests use it, to show
    the sandbox itself holds when that layer is gone.
    """
    header = {
        "op": "load",
        "entry_point": bundle.entry_point,
        "allowed_imports": list(allowed_imports),
        "guarded": guarded,
    }
    files = {path: bytes(data) for path, data in bundle.files.items() if path != "manifest.json"}
    return frames.encode(header, files)


def encode_run(envelope: Mapping[str, Any], limits: Limits) -> bytes:
    body = json.dumps(envelope, separators=(",", ":")).encode()
    return frames.encode({"op": "run", "limits": asdict(limits)}, {"envelope": body})


def decode_result(
    header: Mapping[str, Any], sections: Mapping[str, bytes], backend: str
) -> RunResult:
    """The RunResult for one ``result`` frame."""
    if header.get("op") != "result":
        raise ProtocolError(f"expected a result frame, got {header.get('op')!r}")
    if header.get("sandbox_error"):
        return sandbox_error(str(header["sandbox_error"]), backend)
    records = channel_records(sections.get("channel", b""))
    result = RunResult(
        status=RunStatus.SUCCEEDED,
        exit_code=header.get("exit_code"),
        duration_seconds=float(header.get("duration_seconds") or 0.0),
        peak_memory_bytes=header.get("peak_memory_bytes"),
        stdout=text(sections.get("stdout", b"")),
        stderr=text(sections.get("stderr", b"")),
        logs=[str(r["log"]) for r in records if "log" in r],
        backend=backend,
    )
    final = next((r for r in reversed(records) if "result" in r or "error" in r), None)
    result.status, result.error = judge(header, final)
    if result.status is RunStatus.SUCCEEDED and final is not None:
        value = final.get("result")
        result.result = value if isinstance(value, dict) else None
    return result


ERROR_KINDS = ("configuration", "transient", "error")
"""the kinds a broker's error may claim (``sandbox`` is the platform's own)"""


def judge(
    header: Mapping[str, Any], final: Mapping[str, Any] | None
) -> tuple[RunStatus, dict[str, str] | None]:
    """Status and error from the runner's facts; the broker's own record comes last.

    Every status but ``succeeded``/``failed`` comes from what the runner or the kernel
    saw: the runner's own kills (``killed``: its wall clock, its output caps, the child's
    exhausted address space as the kernel counts it), the exit status, the sandbox's
    cgroup OOM-kill count. Nothing the broker wrote or raised (an error record saying
    ``MemoryError``, an exit status of its choosing) decides one.
    """
    killed, code = header.get("killed"), header.get("exit_code")
    if killed == "timeout":
        return RunStatus.TIMED_OUT, reason("TimedOut", "wall-clock limit reached; killed")
    if killed == "output" or any(header.get("truncated") or ()):
        return RunStatus.OUTPUT_EXCEEDED, reason("OutputExceeded", "output cap reached; killed")
    if killed == "memory":
        return RunStatus.OUT_OF_MEMORY, reason("OutOfMemory", "the broker's address space "
                                               "reached its limit (MemoryError)")  # fmt: skip
    if code == -signal.SIGKILL and header.get("oom_kills"):
        return RunStatus.OUT_OF_MEMORY, reason("OutOfMemory", "killed by the memory limit")
    error = final.get("error") if final else None
    if isinstance(error, dict) and isinstance(code, int) and code > 0:
        return RunStatus.FAILED, broker_error(error)
    if code == 0 and final is not None and "result" in final:
        return RunStatus.SUCCEEDED, None
    return RunStatus.CRASHED, reason("Crashed", crash_message(code))


def broker_error(error: Mapping[str, Any]) -> dict[str, str]:
    """The broker's error record as strings, its ``kind`` one a broker may claim."""
    record = {str(k): str(v) for k, v in error.items()}
    if record.get("kind") not in ERROR_KINDS:
        record["kind"] = "error"
    return record


def crash_message(code: Any) -> str:
    if isinstance(code, int) and code < 0:
        return f"broker process killed by signal {signal.Signals(-code).name}"
    return f"broker process exited with status {code} without a result"


def reason(kind: str, message: str) -> dict[str, str]:
    return {"type": kind, "kind": "sandbox", "message": message, "traceback": ""}


def sandbox_error(message: str, backend: str) -> RunResult:
    return RunResult(
        status=RunStatus.SANDBOX_ERROR, error=reason("SandboxError", message), backend=backend
    )


def channel_records(data: bytes) -> list[dict[str, Any]]:
    records = []
    for line in data.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")
