"""The in-sandbox runner: reads frames on stdin, forks one child per run.

Usage inside the sandbox::

    python3 -I -B /opt/brokerage/runner/runner.py [--kill-all] [--rlimit-nproc] [--wipe DIR ...]
                                                  [--idle-exit SECONDS] [--control SOCKET]

The runner is the only writer of the real stdout: each run's child gets fresh
pipes for stdin (the envelope), stdout, stderr and the result channel, and the
runner relays what they carry, capped, in one ``result`` frame. The runner
never decodes the envelope or the broker's output (the host does), so no run's
secrets stay behind as objects in the process the next run is forked from; the
buffers that held them are zeroed after each run.

``--kill-all`` says the runner is PID 1 of a private PID namespace: after each
run it kills every other process there (strays a broker left behind). Without
it only the child's process group is killed.

``--control`` makes the runner connect to that Unix socket at start and read and
write its frames there instead of on stdin/stdout (the Docker backend: the host
listens on it, so no daemon copies the frames).

``--idle-exit`` makes the runner exit when no request arrived for that many
seconds: a sandbox whose host process died without closing it (and whose stdin
never reaches EOF because something else still holds it) ends by itself.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import resource
import select
import signal
import socket
import sys
import time
from collections.abc import Iterator
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(os.path.dirname(HERE), "lib")]

import execute  # noqa: E402
import frames  # noqa: E402
import policy  # noqa: E402

EGRESS_SOCKET = "/run/brokerage/egress.sock"
"""where the host mounts the gateway's Unix socket, when the broker has egress"""
CHANNEL_FD = 3
"""the child's result channel"""
CHILD_NICENESS = 10
"""the broker runs below the runner's priority, so a busy broker cannot starve its deadline"""
READ_CHUNK = 65536
"""bytes per read from a child pipe"""
FIRST_BUFFER = 4096
"""bytes a child pipe's buffer starts with (most runs print little; fresh pages cost faults)"""
CHANNEL_SLACK = 64 * 1024
"""bytes the result channel may carry beyond the output cap (log records, JSON)"""
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
PRELOAD = (
    "json", "re", "datetime", "hashlib", "hmac", "base64", "urllib.parse", "urllib.request",
    "email.mime.text", "email.utils", "string", "collections", "math", "itertools",
    "functools", "html", "textwrap", "uuid", "requests",
)  # fmt: skip
"""modules imported once before any fork so each run starts warm"""


def prctl(option: int, value: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(option, value, 0, 0, 0)


def harden_self() -> None:
    # children run as our uid; non-dumpable keeps them out of our /proc fds and ptrace
    prctl(PR_SET_DUMPABLE, 0)
    prctl(PR_SET_CHILD_SUBREAPER, 1)


def start_egress() -> str:
    """Loopback proxy to the gateway when a socket is mounted; a note for stderr."""
    if not os.path.exists(EGRESS_SOCKET):
        return "no egress socket; the sandbox has no network"
    try:
        from egress_bridge import start_bridge
    except ImportError:
        return "egress socket present but no egress_bridge module"
    port = start_bridge(EGRESS_SOCKET)
    proxy = f"http://127.0.0.1:{port}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        os.environ[name] = proxy
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = ""
    try:  # the SDK's sessions: built once here, not per run or request; plain HTTP direct
        import sdk_http
    except ImportError:
        return f"egress through {proxy}"
    sdk_http.prepare(EGRESS_SOCKET)
    return f"egress through {proxy} (the SDK's plain HTTP: {EGRESS_SOCKET} directly)"


def preload() -> None:
    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            __import__(name)


# -- reading frames from stdin ---------------------------------------------------------


def read_exact(fd: int, size: int, into: bytearray | None = None) -> bytearray | None:
    """``size`` bytes from ``fd`` (into a reusable buffer), None at a clean EOF."""
    buf = into if into is not None else bytearray(size)
    view, got = memoryview(buf), 0
    while got < size:
        n = os.readv(fd, [view[got:size]])
        if n == 0:
            if got == 0:
                return None
            raise frames.FrameError("stdin ended inside a frame")
        got += n
    return buf


def read_frame_header(fd: int) -> dict[str, Any] | None:
    prefix = read_exact(fd, frames.HEAD_SIZE)
    if prefix is None:
        return None
    body = read_exact(fd, frames.parse_head(bytes(prefix)))
    if body is None:
        raise frames.FrameError("stdin ended inside a frame")
    return frames.parse_header(bytes(body))


def write_frame(header: dict[str, Any], sections: dict[str, memoryview]) -> None:
    head = dict(header, sections=[[name, len(view)] for name, view in sections.items()])
    body = json.dumps(head, separators=(",", ":")).encode()
    write_all(1, frames.MAGIC + len(body).to_bytes(4, "big") + body)
    for view in sections.values():
        write_all(1, view)


def write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


# -- one run -----------------------------------------------------------------------------


class Capture:
    """One pipe from the child, read into a buffer that grows up to one byte past the cap."""

    def __init__(self, fd: int, cap: int) -> None:
        self.fd, self.cap = fd, cap
        self.buf = bytearray(min(FIRST_BUFFER, cap + 1))
        self.size = 0
        self.open = True

    def read(self) -> None:
        if self.size == len(self.buf):
            if self.exceeded:
                return  # the run is being stopped
            self.buf.extend(bytes(min(len(self.buf), self.cap + 1 - len(self.buf))))
        n = os.readv(self.fd, [memoryview(self.buf)[self.size :]])
        self.size += n
        if n == 0:
            self.close()

    @property
    def exceeded(self) -> bool:
        return self.size > self.cap

    def view(self) -> memoryview:
        return memoryview(self.buf)[: min(self.size, self.cap)]

    def close(self) -> None:
        if self.open:
            os.close(self.fd)
            self.open = False

    def wipe(self) -> None:
        self.buf[: self.size] = bytes(self.size)


class Envelope:
    """The run frame's envelope section, moved from our stdin to the child's stdin.

    ``splice`` moves the bytes inside the kernel, so the envelope (and the
    secrets in it) never enters this process's memory; where splice is not
    available the bytes pass through a buffer that is zeroed afterwards.
    """

    def __init__(self, length: int) -> None:
        self.remaining = length
        self.buffer: bytearray | None = None
        self.offset = 0

    def feed(self, out_fd: int) -> bool:
        """Move what ``out_fd`` takes now; True once every byte is out."""
        while self.remaining:
            try:
                moved = self._move(out_fd)
            except BlockingIOError:
                return False
            if moved == 0:
                raise frames.FrameError("stdin ended inside a frame")
            self.remaining -= moved
        return True

    def _move(self, out_fd: int) -> int:
        if self.buffer is None:
            try:
                return os.splice(0, out_fd, self.remaining)
            except OSError as exc:
                if exc.errno not in (errno.EINVAL, errno.ENOSYS):
                    raise
                self.buffer = read_exact(0, self.remaining) or bytearray()
        return self._write_buffered(out_fd)

    def _write_buffered(self, out_fd: int) -> int:
        assert self.buffer is not None
        moved = os.write(out_fd, memoryview(self.buffer)[self.offset :])
        self.offset += moved
        return moved

    def discard_rest(self) -> None:
        """Consume what the child did not take, keeping our stdin in step with the frames."""
        if self.buffer is not None:
            self.buffer[:] = bytes(len(self.buffer))
            self.remaining = 0
        while self.remaining:
            chunk = read_exact(0, min(self.remaining, READ_CHUNK))
            if chunk is None:
                raise frames.FrameError("stdin ended inside a frame")
            self.remaining -= len(chunk)
            chunk[:] = bytes(len(chunk))


class Run:
    """One child, forked ahead of its run: it waits on a control pipe for its limits.

    Forking before the request arrives takes the fork off the run's latency and
    means the child is a copy of a runner that has not yet seen this run's envelope.
    """

    CONTROL_FD = 4
    """the child's control pipe: the run's limits as JSON, then EOF"""

    def __init__(self, program: execute.Program) -> None:
        self.program = program
        self.killed: str | None = None
        fds = [os.pipe() for _ in range(5)]  # stdin, stdout, stderr, channel, control
        self.pid = os.fork()
        if self.pid == 0:
            self._become_child(fds)
        os.close(fds[0][0])
        os.close(fds[4][0])
        for _, write_end in fds[1:4]:
            os.close(write_end)
        self.stdin_fd, self.control_fd = fds[0][1], fds[4][1]
        self.out_fds = [fds[i][0] for i in (1, 2, 3)]
        self.pidfd, self.own_pidfd = exit_fd(self.pid)

    def _become_child(self, fds: list[tuple[int, int]]) -> None:
        try:
            os.setpgid(0, 0)
            for target, (read_end, write_end) in enumerate(fds):
                os.dup2(read_end if target in (0, self.CONTROL_FD) else write_end, target)
            os.closerange(self.CONTROL_FD + 1, os.sysconf("SC_OPEN_MAX"))
            signal.signal(signal.SIGPIPE, signal.SIG_DFL)
            with open(self.CONTROL_FD, "rb") as control:
                limits = json.loads(control.read() or b"null")
            if not isinstance(limits, dict):
                os._exit(0)  # the runner discarded this child unused
            apply_rlimits(limits)
            os.nice(CHILD_NICENESS)
            sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
            sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
            sys.stderr = open(2, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
            channel = open(CHANNEL_FD, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
            status = execute.child_main(self.program, channel)
            flush_quietly(sys.stdout, sys.stderr, channel)
        except BaseException:  # noqa: BLE001 - the child must never return into the runner
            status = 70
        os._exit(status)

    def go(self, limits: dict[str, Any], envelope: Envelope) -> None:
        """Release the child with this run's limits; its envelope follows on stdin."""
        self.limits, self.envelope = limits, envelope
        cap = int(limits_get(limits, "output_bytes"))
        self.captures = [Capture(self.out_fds[0], cap), Capture(self.out_fds[1], cap)]
        self.captures.append(Capture(self.out_fds[2], cap + CHANNEL_SLACK))
        self.started = time.monotonic()
        self.deadline = self.started + float(limits_get(limits, "wall_seconds"))
        with contextlib.suppress(BrokenPipeError):  # a dead child shows in collect()
            write_all(self.control_fd, json.dumps(limits).encode())
        os.close(self.control_fd)
        os.set_blocking(self.stdin_fd, False)

    def healthy(self) -> bool:
        """Still waiting for its run: a previous broker may have killed or stopped it."""
        if self.has_exited():
            return False
        try:
            with open(f"/proc/{self.pid}/stat") as stat:
                state = stat.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        return state in ("S", "R", "D")

    def discard(self) -> None:
        """Let an unused child go (EOF on its control pipe), kill it if it lingers, reap it."""
        os.close(self.control_fd)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)
        for fd in (self.stdin_fd, *self.out_fds):
            os.close(fd)
        if self.own_pidfd:
            os.close(self.pidfd)

    def collect(self) -> None:
        """Pump pipes until the child is gone and its pipes drained, or a limit hits."""
        exited = False
        while True:
            readers = [c.fd for c in self.captures if c.open]
            writers = [self.stdin_fd] if self.stdin_fd >= 0 else []
            waits = readers + ([self.pidfd] if self.own_pidfd and not exited else [])
            timeout = self.deadline - time.monotonic()
            if timeout <= 0:
                self.kill("timeout")
                return
            if exited and not readers:
                return
            if not (exited or self.own_pidfd):
                timeout = min(timeout, EXIT_POLL_SECONDS)
            ready_r, ready_w, _ = select.select(waits, writers, [], 0.05 if exited else timeout)
            if self.stdin_fd in ready_w:
                self._feed()
            for capture in self.captures:
                if capture.open and capture.fd in ready_r:
                    capture.read()
            if any(c.exceeded for c in self.captures):
                self.kill("output")
                return
            if (self.pidfd in ready_r if self.own_pidfd else self.has_exited()) and not exited:
                exited = True
                self._stop_feeding()
            elif exited and not ready_r:
                return  # child gone; a stray still holds a pipe open

    def _feed(self) -> None:
        if self.stdin_fd < 0:
            return
        try:
            done = self.envelope.feed(self.stdin_fd)
        except BrokenPipeError:
            done = True
        if done:
            self._stop_feeding()

    def _stop_feeding(self) -> None:
        if self.stdin_fd >= 0:
            os.close(self.stdin_fd)
            self.stdin_fd = -1

    def has_exited(self) -> bool:
        """The child exited (not reaped: ``finish`` does that)."""
        flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
        try:
            return os.waitid(os.P_PID, self.pid, flags) is not None
        except ChildProcessError:
            return True

    def kill(self, reason: str) -> None:
        self.killed = reason
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)

    def finish(self) -> dict[str, Any]:
        _, status, usage = os.wait4(self.pid, 0)
        duration = time.monotonic() - self.started
        exit_code = os.waitstatus_to_exitcode(status)
        peak_rss = usage.ru_maxrss * 1024
        budget = int(limits_get(self.limits, "memory_bytes"))
        if exit_code == execute.EXIT_MEMORY and self.killed is None and peak_rss >= budget // 2:
            # the child checked VmPeak against its rlimit (execute.memory_exhausted); the
            # kernel's rusage confirms it really held that much: an exit status alone is no proof
            self.killed = "memory"
        if self.own_pidfd:
            os.close(self.pidfd)
        self._stop_feeding()
        self.envelope.discard_rest()
        for capture in self.captures:
            if capture.open:
                drain(capture)
                capture.close()
        return {
            "op": "result",
            "exit_code": exit_code,
            "killed": self.killed,
            "duration_seconds": duration,
            "peak_memory_bytes": usage.ru_maxrss * 1024,
            "truncated": [c.exceeded for c in self.captures],
        }


EXIT_POLL_SECONDS = 0.005
"""where the kernel has no pidfd_open (gVisor): how often the runner asks whether its
child exited (``waitid`` with WNOWAIT; no SIGCHLD handler, whose interruptions gVisor's
host sockets did not survive)"""


def exit_fd(pid: int) -> tuple[int, bool]:
    """Child ``pid``'s pidfd and True; (-1, False) where the kernel has no pidfd_open."""
    try:
        return os.pidfd_open(pid), True
    except OSError as exc:
        if exc.errno != errno.ENOSYS:
            raise
    return -1, False


def drain(capture: Capture) -> None:
    os.set_blocking(capture.fd, False)
    try:
        while capture.open and not capture.exceeded:
            capture.read()
    except BlockingIOError:
        pass


def flush_quietly(*streams: Any) -> None:
    for stream in streams:
        with contextlib.suppress(Exception):  # a closed pipe at exit changes nothing
            stream.flush()


LIMIT_DEFAULTS = {"wall_seconds": 10.0, "memory_bytes": 256 << 20, "output_bytes": 1 << 20,
                  "nofile": 256}  # fmt: skip
"""what a run frame without limits gets"""


def limits_get(limits: dict[str, Any], name: str) -> Any:
    return limits.get(name, LIMIT_DEFAULTS[name])


def apply_rlimits(limits: dict[str, Any]) -> None:
    if limits.get("nproc"):
        # counted per user namespace: only where the backend gives each sandbox its own
        resource.setrlimit(resource.RLIMIT_NPROC, (limits["nproc"], limits["nproc"]))
    nofile = int(limits_get(limits, "nofile"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # address space beyond what the forked runner already maps: a memory bomb
    # meets MemoryError here before the sandbox's own memory limit
    mapped = current_vm_bytes()
    execute.memory_budget = int(limits_get(limits, "memory_bytes"))
    budget = mapped + execute.memory_budget
    resource.setrlimit(resource.RLIMIT_AS, (budget, budget))


def current_vm_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


# -- after a run -------------------------------------------------------------------------


def kill_strays(kill_all: bool, pgid: int) -> int:
    """Kill what the run left behind; how many leftover processes were reaped.

    Only as PID 1 of a private PID namespace, and never as root, is "every other
    process" (``kill(-1)``, atomic against a stray that keeps forking) safe to
    kill; otherwise only the run's process group goes.
    """
    everything = kill_all and os.getpid() == 1 and os.getuid() != 0
    with contextlib.suppress(ProcessLookupError):
        if everything:
            os.kill(-1, signal.SIGKILL)
        else:
            os.killpg(pgid, signal.SIGKILL)
    return sum(1 for _ in reap_all(block=everything))


def reap_all(block: bool) -> Iterator[int]:
    """Reap exited children; blocking only when every other process was just killed."""
    while True:
        try:
            pid, _ = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        yield pid


DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def wipe(directories: list[str]) -> None:
    """Empty each scratch directory, whatever the run left there.

    Called after every process but the runner is gone, so nothing moves under us.
    Every step is relative to an open directory descriptor (``openat``, ``unlinkat``,
    ``fchmod``), so depth is unbounded (a tree deeper than PATH_MAX included), symlinks
    are never followed, and permission bits are no obstacle: the runner has the
    broker's uid and makes each directory ``0700`` before it looks inside. Only two
    descriptors are open at any time, whatever the depth.
    """
    for directory in directories:
        try:
            top = os.open(directory, DIR_FLAGS)
        except OSError:
            continue
        try:
            empty_tree(top)
            reset_root(top)
        finally:
            os.close(top)


def reset_root(fd: int) -> None:
    """Clear what a run could leave on the scratch directory itself: its extended
    attributes and, where the sandbox's user owns it (bubblewrap), its mode and times."""
    with contextlib.suppress(OSError):
        for name in os.listxattr(fd):
            with contextlib.suppress(OSError):
                os.removexattr(fd, name)
    if os.fstat(fd).st_uid == os.getuid():
        with contextlib.suppress(OSError):
            os.fchmod(fd, 0o1777)
            os.utime(fd, ns=(0, 0))


def empty_tree(top: int) -> None:
    """Remove everything below the directory open as ``top`` (depth first, iteratively)."""
    fd = os.dup(top)
    names: list[str] = []  # the path from top down to fd
    skips: list[set[str]] = [set()]  # per level: subdirectories that cannot be emptied
    try:
        while True:
            child = _clear_files(fd, skips[-1])
            if child is not None:
                try:
                    inner = _open_dir(fd, child)
                except OSError:
                    skips[-1].add(child)
                    continue
                os.close(fd)
                fd = inner
                names.append(child)
                skips.append(set())
                continue
            if not names:
                return
            parent = os.open("..", DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = parent
            name = names.pop()
            skips.pop()
            try:
                os.rmdir(name, dir_fd=fd)
            except OSError:
                skips[-1].add(name)
    finally:
        os.close(fd)


def _clear_files(fd: int, skip: set[str]) -> str | None:
    """Unlink every non-directory in ``fd``; the name of a subdirectory to empty next."""
    removed = True
    while removed:  # again after removals: a listing need not show entries added meanwhile
        removed = False
        with os.scandir(fd) as entries:
            for entry in entries:
                try:
                    is_dir = entry.is_dir(follow_symlinks=False)
                except OSError:
                    is_dir = False
                if is_dir and entry.name not in skip:
                    return entry.name
                if not is_dir:
                    with contextlib.suppress(OSError):
                        os.unlink(entry.name, dir_fd=fd)
                        removed = True
    return None


def _open_dir(parent: int, name: str) -> int:
    try:
        fd = os.open(name, DIR_FLAGS, dir_fd=parent)
    except PermissionError:
        # chmod 000: it is ours, so make it readable (a directory: O_NOFOLLOW refused
        # nothing else, and no other process is left to swap it for a symlink)
        os.chmod(name, 0o700, dir_fd=parent)
        fd = os.open(name, DIR_FLAGS, dir_fd=parent)
    os.fchmod(fd, 0o700)  # writable and searchable, so its entries can go
    return fd


def oom_kills() -> int:
    """The sandbox cgroup's OOM-kill count (cgroup v1 or v2), -1 when unknown."""
    for path in ("/sys/fs/cgroup/memory/memory.oom_control", "/sys/fs/cgroup/memory.events"):
        try:
            with open(path) as handle:
                for line in handle:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        except OSError:
            continue
    return -1


# -- the loop ----------------------------------------------------------------------------


class Runner:
    def __init__(self, kill_all: bool, wipe_dirs: list[str], rlimit_nproc: bool,
                 idle_exit: float | None = None, control: str | None = None) -> None:  # fmt: skip
        self.kill_all, self.wipe_dirs, self.rlimit_nproc = kill_all, wipe_dirs, rlimit_nproc
        self.idle_exit, self.control = idle_exit, control
        self.program: execute.Program | None = None
        self.next_run: Run | None = None
        self.runs = 0

    def serve(self) -> int:
        while True:
            if not self.request_comes():
                print(f"runner: idle for {self.idle_exit:g} s, exiting", file=sys.stderr)
                if self.next_run is not None:
                    self.next_run.discard()
                return 0
            header = read_frame_header(0)
            if header is None:
                return 0
            if header.get("op") == "load":
                self.load(header)
            elif header.get("op") == "run":
                self.run(header)
            else:
                raise frames.FrameError(f"unknown op {header.get('op')!r}")

    def request_comes(self) -> bool:
        """False when stdin stays silent past the idle limit."""
        if not self.idle_exit:
            return True
        ready, _, _ = select.select([0], [], [], self.idle_exit)
        return bool(ready)

    def load(self, header: dict[str, Any]) -> None:
        files = {}
        for name, size in frames.section_sizes(header):
            data = read_exact(0, size) if size else bytearray()
            files[name] = bytes(data or b"")
        self.program = execute.Program(
            files,
            str(header["entry_point"]),
            tuple(header.get("allowed_imports") or policy.DEFAULT_IMPORTS),
            guarded=bool(header.get("guarded", True)),
        )
        note = start_egress()
        preload()
        if self.next_run is not None:
            self.next_run.discard()
        self.next_run = Run(self.program)
        write_frame({"op": "ready", "note": note, "pid": os.getpid()}, {})

    def run(self, header: dict[str, Any]) -> None:
        sizes = frames.section_sizes(header)
        envelope = Envelope(sizes[0][1] if sizes else 0)
        if self.program is None:
            envelope.discard_rest()
            write_frame({"op": "result", "sandbox_error": "run before load"}, {})
            return
        oom_before = oom_kills()
        run = self.take_child()
        limits = dict(header.get("limits") or {})
        if self.rlimit_nproc:
            limits["nproc"] = limits.get("pids", 64)
        run.go(limits, envelope)
        run.collect()
        result = run.finish()
        result["strays"] = kill_strays(self.kill_all, run.pid)
        result["oom_kills"] = max(0, oom_kills() - oom_before) if oom_before >= 0 else None
        wipe(self.wipe_dirs)
        self.runs += 1
        result["runs"] = self.runs
        channel, stdout, stderr = run.captures[2], run.captures[0], run.captures[1]
        write_frame(result, {"channel": channel.view(), "stdout": stdout.view(),
                             "stderr": stderr.view()})  # fmt: skip
        for capture in run.captures:
            capture.wipe()
        # forked after the run, not during it: the sandbox's CPU quota is shared, and
        # overlapping the fork with the broker only slowed the broker down
        self.next_run = Run(self.program)

    def take_child(self) -> Run:
        """The pre-forked child if it is still sound, else a fresh one."""
        run, self.next_run = self.next_run, None
        if run is not None and not run.healthy():
            run.discard()
            run = None
        assert self.program is not None
        return run or Run(self.program)


def use_control_socket(path: str) -> None:
    """Frames go over the socket at ``path``: it becomes our stdin and stdout."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    os.dup2(sock.fileno(), 0)
    os.dup2(sock.fileno(), 1)
    sock.close()


def parse_args(argv: list[str]) -> Runner:
    kill_all, rlimit_nproc, wipe_dirs, args = False, False, [], list(argv)
    idle_exit: float | None = None
    control: str | None = None
    while args:
        arg = args.pop(0)
        if arg == "--kill-all":
            kill_all = True
        elif arg == "--rlimit-nproc":
            rlimit_nproc = True
        elif arg == "--wipe" and args:
            wipe_dirs.append(args.pop(0))
        elif arg == "--idle-exit" and args:
            idle_exit = float(args.pop(0))
        elif arg == "--control" and args:
            control = args.pop(0)
    return Runner(kill_all, wipe_dirs, rlimit_nproc, idle_exit, control)


def main(argv: list[str]) -> int:
    harden_self()
    # SIGPIPE stays ignored here: a child that exits without reading its envelope
    # must give the runner BrokenPipeError, not kill it
    runner = parse_args(argv)
    try:
        if runner.control:
            use_control_socket(runner.control)
        return runner.serve()
    except frames.FrameError as exc:
        print(f"runner: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno == errno.EPIPE:
            return 0
        raise


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
