"""The child side of one run: load the broker from its compiled files and run it.

Runs in the process the runner forks per run, after its stdin/stdout/stderr
became the run's pipes and the channel became a separate file. The channel
carries NDJSON records: ``{"log": ...}`` lines, then ``{"result": ...}`` or
``{"error": ...}``. Nothing the broker prints reaches it.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import json
import os
import resource
import sys
import traceback
import types
from collections.abc import Callable, Mapping
from typing import Any, TextIO

import brokerage_sdk
import policy

MESSAGE_CHARS = 4000
"""longest exception message kept"""
EXIT_MEMORY = 125
"""the child's exit status when it ran out of its address space (checked against the
kernel's count, see :func:`memory_exhausted`); broker code cannot choose it"""
BROKER_EXIT_CODES = range(1, 101)
"""exit statuses ``sys.exit(n)`` keeps; any other becomes 1"""
ERROR_KINDS = ("configuration", "transient", "error")
"""what an exception's ``kind`` may say; anything else is reported as ``error``"""
memory_budget = 0
"""bytes the run may map beyond the forked runner (set by the runner with the rlimit)"""


class Program:
    """One broker version, compiled once per sandbox, run once per forked child."""

    def __init__(
        self,
        files: Mapping[str, bytes],
        entry_point: str,
        allowed_imports: tuple[str, ...],
        guarded: bool = True,
    ) -> None:
        self.files = dict(files)
        self.entry_file, _, self.entry_class = entry_point.partition(":")
        self.allowed_imports = allowed_imports
        self.guarded = guarded
        self.codes: dict[str, types.CodeType] = {}
        self.compile_error: dict[str, str] | None = None
        self._compile_all()

    def _compile_all(self) -> None:
        if self.entry_file not in self.files:
            self.compile_error = error_record("EntryPointError", f"no file {self.entry_file!r}")
            return
        judge = policy.Policy(self.allowed_imports, dict.fromkeys(local_names(self.files)),
                              {"sys": policy.sys_stand_in()})  # fmt: skip
        for path, data in self.files.items():
            if not path.endswith(".py"):
                continue
            try:
                self.codes[path] = self._compile(data, path, judge)
            except policy.PolicyError as exc:
                self.compile_error = error_record("PolicyError", str(exc))
                return
            except (SyntaxError, UnicodeDecodeError) as exc:
                self.compile_error = error_record(type(exc).__name__, str(exc))
                return

    def _compile(self, data: bytes, path: str, judge: policy.Policy) -> types.CodeType:
        """What the static checks judge, judged the same way: source, RestrictedPython,
        then every import statement (refused at load, before anything runs)."""
        if not self.guarded:
            return compile(data.decode("utf-8"), path, "exec")
        source = policy.decode_source(data, path)
        code = policy.compile_broker(source, path)
        problems = judge.import_problems(policy.parse_source(source, path))
        if problems:
            line, why = problems[0]
            raise policy.PolicyError(f"{path}:{line}: {why}")
        return code


def local_names(files: Mapping[str, bytes]) -> list[str]:
    """The module names of a bundle's own .py files."""
    return [module_name(path) for path in files if path.endswith(".py")]


def module_name(path: str) -> str:
    return path[: -len(".py")].replace("/", ".")


def error_record(kind: str, message: str, tb: str = "") -> dict[str, str]:
    return {"type": kind, "kind": "error", "message": message[:MESSAGE_CHARS], "traceback": tb}


def describe(exc: BaseException, files: Mapping[str, bytes]) -> dict[str, str]:
    """The exception as the delivery shows it, traceback limited to the broker's files."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename in files]
    lines = traceback.format_list(frames)
    lines += traceback.format_exception_only(type(exc), exc)
    record = error_record(type(exc).__name__, str(exc), "".join(lines))
    kind = getattr(exc, "kind", "error")
    record["kind"] = kind if isinstance(kind, str) and kind in ERROR_KINDS else "error"
    return record


class Child:
    """Runs the program once in this (forked) process."""

    def __init__(self, program: Program, channel: TextIO) -> None:
        self.program = program
        self.channel = channel
        self.modules: dict[str, types.ModuleType] = {}
        self.policy = policy.Policy(
            program.allowed_imports, self._local_loaders(), {"sys": policy.sys_stand_in()}
        )

    def _local_loaders(self) -> dict[str, Callable[[], types.ModuleType]]:
        return {module_name(path): functools.partial(self._load, path, module_name(path))
                for path in self.program.codes}  # fmt: skip

    def _load(self, path: str, name: str) -> types.ModuleType:
        if name in self.modules:
            return self.modules[name]
        module = types.ModuleType(name)
        namespace = self._globals(name)
        module.__dict__.update(namespace)
        setattr(module, policy.LOCAL_MARK, True)
        self.modules[name] = module
        exec(self.program.codes[path], module.__dict__)
        return module

    def _globals(self, name: str) -> dict[str, Any]:
        if self.program.guarded:
            return self.policy.globals(name)
        return {"__builtins__": builtins, "__name__": name}

    def run(self) -> dict[str, Any]:
        """The record the channel ends with: ``{"result": ...}``."""
        if self.program.compile_error is not None:
            return {"error": self.program.compile_error}
        if not self.program.entry_class:
            self._load(self.program.entry_file, "__main__")
            return {"result": None}
        payload = json.load(sys.stdin)
        module = self._load(self.program.entry_file, module_name(self.program.entry_file))
        broker = getattr(module, self.program.entry_class)()
        broker.payload = payload
        value = broker.handle(payload)
        return {"result": value if isinstance(value, dict) else None}

    def emit(self, record: dict[str, Any]) -> None:
        self.channel.write(json.dumps(record, default=str) + "\n")
        self.channel.flush()


def child_main(program: Program, channel: TextIO) -> int:
    """Run once; the exit status the child process ends with."""
    brokerage_sdk.logger.attach(channel)
    child = Child(program, channel)
    try:
        record = child.run()
        child.emit(record)
        return 0 if "result" in record else 1
    except SystemExit as exc:
        return _exit_status(child, exc)
    except MemoryError as exc:
        # raising MemoryError proves nothing: only the kernel's count of this process's
        # address space decides whether the run ran out of memory
        exhausted = memory_exhausted()
        with contextlib.suppress(MemoryError):
            child.emit({"error": describe(exc, program.files)})
        return EXIT_MEMORY if exhausted else 1
    except BaseException as exc:  # noqa: BLE001 - every broker failure is reported
        child.emit({"error": describe(exc, program.files)})
        return 1


def memory_exhausted() -> bool:
    """Whether this process's peak address space (the kernel's VmPeak) came within a
    quarter of the budget (at least 32 MiB) of its RLIMIT_AS: a MemoryError the broker
    raised itself, or one allocation far beyond the limit, is not running out of memory."""
    limit, _ = resource.getrlimit(resource.RLIMIT_AS)
    if limit == resource.RLIM_INFINITY or memory_budget <= 0:
        return False
    try:
        fd = os.open("/proc/self/status", os.O_RDONLY)
        try:
            status = os.read(fd, 16384)
        finally:
            os.close(fd)
    except MemoryError:
        return True  # not even a page to read with: exhausted
    except OSError:
        return False
    for line in status.split(b"\n"):
        if line.startswith(b"VmPeak:"):
            peak = int(line.split()[1]) * 1024
            return peak >= limit - max(32 << 20, memory_budget // 4)
    return False


def _exit_status(child: Child, exc: SystemExit) -> int:
    code = exc.code
    if code is None or code == 0:
        child.emit({"result": None})
        return 0
    message = code if isinstance(code, str) else f"exit status {code}"
    child.emit({"error": error_record("SystemExit", str(message))})
    return code if isinstance(code, int) and code in BROKER_EXIT_CODES else 1
