"""The bubblewrap backend: the same runner in namespaces, for hosts without Docker.

The root is the runtime image's Debian tree unpacked to a directory (see
:func:`image.build_rootfs`), bound read-only. Every namespace is unshared
(user, pid, net, ipc, uts, cgroup): no network at all, a private IPC namespace
with no ``/dev/mqueue``, the runner is PID 1 of its own PID namespace as uid 65534,
every capability dropped, no-new-privileges (bubblewrap always sets it), size-capped
tmpfs on /tmp and /dev/shm, and no further user namespaces. The project's seccomp
filter (:mod:`seccomp`, the same rules as the Docker profile, compiled to BPF by
libseccomp) is installed with ``--seccomp FD``: no SysV IPC, POSIX message queues or
keyrings (the worker's session keyring is otherwise shared by every sandbox). Memory,
processes and open files are capped with rlimits the runner sets on each run's
process (per user namespace on Linux >= 5.14). There is no cgroup here: Docker
remains the stronger backend.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from brokerage.sandbox import image, seccomp
from brokerage.sandbox.errors import BackendUnavailableError, ImageError
from brokerage.sandbox.interface import BrokerBundle, EgressProvider, Limits, RunResult
from brokerage.sandbox.pool import PoolPolicy, WarmPool, with_idle_exit
from brokerage.sandbox.sandboxes import Mode, Sandbox, SandboxOptions, run_strict
from brokerage.sandbox.session import PipeStream

SANDBOX_UID = 65534
"""uid (and gid) bwrap runs as when the platform runs as root: host nobody"""


class Spawner:
    """Starts processes from one long-lived thread.

    ``--die-with-parent`` ties a sandbox to the *thread* that started bwrap
    (PR_SET_PDEATHSIG), while a warm sandbox must outlive the thread whose run
    happened to start it.
    """

    def __init__(self) -> None:
        self.requests: queue.Queue[tuple[tuple[Any, ...], dict[str, Any], queue.Queue[Any]]]
        self.requests = queue.Queue()
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()

    def popen(self, *args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        with self.lock:
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._serve, name="bwrap-spawner",
                                               daemon=True)  # fmt: skip
                self.thread.start()
        answer: queue.Queue[Any] = queue.Queue(maxsize=1)
        self.requests.put((args, kwargs, answer))
        started, value = answer.get()
        if not started:
            raise value
        return value

    def _serve(self) -> None:
        while True:
            args, kwargs, answer = self.requests.get()
            try:
                answer.put((True, subprocess.Popen(*args, **kwargs)))
            except Exception as exc:  # noqa: BLE001 - handed to the caller, raised there
                answer.put((False, exc))


SPAWNER = Spawner()
"""the one thread every bwrap sandbox of this process is started from"""


class BubblewrapSandbox(Sandbox):
    backend = "bubblewrap"

    def __init__(self, rootfs: Path, bundle: BrokerBundle, limits: Limits,
                 egress: EgressProvider | None, options: SandboxOptions,
                 seccomp_bpf: Path | None = None) -> None:  # fmt: skip
        super().__init__(bundle, limits, egress, options)
        self.rootfs, self.seccomp_bpf = rootfs, seccomp_bpf
        self.process: subprocess.Popen[bytes] | None = None
        self.stream: PipeStream | None = None

    def command(self, seccomp_fd: int | None = None) -> list[str]:
        """The bwrap command line; ``seccomp_fd`` is an open descriptor of the BPF filter."""
        limits = self.limits
        command = ["bwrap", "--unshare-all", "--unshare-user", "--unshare-ipc",
                   "--disable-userns",
                   "--die-with-parent", "--new-session", "--as-pid-1",
                   "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
                   "--cap-drop", "ALL", "--hostname", "sandbox",
                   "--ro-bind", str(self.rootfs), "/", "--proc", "/proc", "--dev", "/dev",
                   "--size", str(limits.tmpfs_bytes), "--tmpfs", "/tmp",
                   "--size", str(1024 * 1024), "--tmpfs", "/dev/shm",
                   # bwrap's /dev belongs to the sandbox's user: read-only, or a run could
                   # leave files there for the next
                   "--remount-ro", "/dev"]  # fmt: skip
        if self.egress_dir is not None:
            command += ["--bind", self.egress_dir, "/run/brokerage"]
        if seccomp_fd is not None:
            command += ["--seccomp", str(seccomp_fd)]
        command += ["--chdir", "/tmp", "--clearenv", "--setenv", "PATH", "/usr/bin:/bin",
                    "--setenv", "LANG", "C.UTF-8", "--setenv", "PYTHONDONTWRITEBYTECODE", "1",
                    "python3", "-I", "-B", image.IN_IMAGE_RUNNER, "--kill-all", "--rlimit-nproc",
                    "--wipe", "/tmp", "--wipe", "/dev/shm", *self.runner_flags()]  # fmt: skip
        return command

    def _launch(self) -> PipeStream:
        as_nobody: dict[str, Any] = {}
        if os.geteuid() == 0:
            # bwrap started by root maps the sandbox's uid onto host root; started as
            # nobody, the sandbox's processes are nobody on the host too
            as_nobody = {"user": SANDBOX_UID, "group": SANDBOX_UID, "extra_groups": []}
        bpf = os.open(self.seccomp_bpf, os.O_RDONLY | os.O_CLOEXEC) if self.seccomp_bpf else None
        try:
            self.process = SPAWNER.popen(
                self.command(bpf), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, start_new_session=True, pass_fds=() if bpf is None
                else (bpf,), env={"PATH": os.environ.get("PATH", "")}, **as_nobody,
            )  # fmt: skip
        finally:
            if bpf is not None:
                os.close(bpf)
        self.stream = PipeStream(self.process)
        return self.stream

    def _kill(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        if self.stream is not None:
            self.stream.close()
        self.process = self.stream = None


class BubblewrapBackend:
    """SandboxBackend on bubblewrap; warm pools by default, ``mode=STRICT`` for one per run."""

    name = "bubblewrap"

    def __init__(
        self,
        rootfs: Path | None = None,
        egress: EgressProvider | None = None,
        mode: Mode = Mode.WARM,
        pool: PoolPolicy | None = None,
        options: SandboxOptions | None = None,
    ) -> None:
        require_bwrap()
        self.rootfs = rootfs or image.Recipe().rootfs
        if not (self.rootfs / "usr/bin/python3").exists():
            raise ImageError(
                f"no sandbox rootfs at {self.rootfs}; run `brokerage sandbox build-image --rootfs`"
            )
        self.seccomp_bpf = seccomp.build_bpf(self.rootfs.parent)
        """the compiled filter (built with the rootfs; compiled here when missing)"""
        self.egress, self.mode = egress, Mode(mode)
        self.pool = WarmPool(self.new_sandbox, pool, self.name)
        self.options = with_idle_exit(options or SandboxOptions(), self.pool.policy)

    def new_sandbox(self, bundle: BrokerBundle, limits: Limits) -> BubblewrapSandbox:
        return BubblewrapSandbox(self.rootfs, bundle, limits, self.egress, self.options,
                                 self.seccomp_bpf)  # fmt: skip

    def run(self, bundle: BrokerBundle, envelope: Mapping[str, Any], limits: Limits,
            tenant: str | None = None) -> RunResult:  # fmt: skip
        if self.mode is Mode.STRICT:
            return run_strict(self.new_sandbox(bundle, limits), envelope, limits)
        return self.pool.run(bundle, envelope, limits, tenant)

    def close(self) -> None:
        self.pool.close()


def require_bwrap() -> None:
    """BackendUnavailableError unless bwrap exists and can create namespaces here."""
    if shutil.which("bwrap") is None:
        raise BackendUnavailableError("bubblewrap (bwrap) is not installed")
    as_nobody: dict[str, Any] = {}
    if os.geteuid() == 0:
        as_nobody = {"user": SANDBOX_UID, "group": SANDBOX_UID, "extra_groups": []}
    probe = subprocess.run(
        ["bwrap", "--unshare-all", "--unshare-user", "--ro-bind", "/", "/", "--dev", "/dev",
         "true"], capture_output=True, timeout=30, **as_nobody,
    )  # fmt: skip
    if probe.returncode != 0:
        raise BackendUnavailableError(f"bwrap cannot create namespaces: {probe.stderr!r}")
