"""The Docker backend: one hardened container per sandbox, via the docker SDK.

Each container: no network, read-only root, uid 65534, every capability
dropped, no-new-privileges, the project's own seccomp profile (:mod:`seccomp`: Docker's
default minus SysV IPC, POSIX message queues, keyrings and more), a private IPC
namespace with no ``/dev/mqueue`` (a read-only empty tmpfs covers it), pids / memory
(= memory+swap, counting /tmp and /dev/shm pages) / CPU limits, a small noexec tmpfs on
/tmp, a nofile ulimit. ``runtime="runsc"`` runs it under gVisor instead of runc.
Its runner talks to the host over a Unix socket the host listens on in a directory
mounted into the container (:class:`ControlSocket`): Docker's daemons copy nothing
per run, only the runner's stderr comes through Docker's attach stream. The host
kills and removes the container when a run passes its deadline. Each container is
labelled with the process that started it, so a later backend on this host can remove
it if that process died without closing it (:mod:`reaper`).
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import socket
import struct
import tempfile
import time
from collections.abc import Mapping
from typing import Any

from brokerage.sandbox import image, reaper, seccomp
from brokerage.sandbox.errors import BackendUnavailableError, ImageError, SandboxError
from brokerage.sandbox.interface import BrokerBundle, EgressProvider, Limits, RunResult, RunStatus
from brokerage.sandbox.pool import PoolPolicy, WarmPool, with_idle_exit
from brokerage.sandbox.sandboxes import Mode, Sandbox, SandboxOptions, run_strict
from brokerage.sandbox.session import DIAGNOSTIC_BYTES, keep_out_of_forks

RUNNER_OVERHEAD_BYTES = 96 * 1024 * 1024
"""memory the runner itself and the next pre-forked child need beyond a run's limit"""
SHM_BYTES = 1024 * 1024
"""size of the container's /dev/shm (wiped after each run like /tmp)"""
CONNECT_TIMEOUT_SECONDS = 30.0
"""seconds a started container's runner may take to connect to its control socket"""
ACCEPT_POLL_SECONDS = 0.2
"""seconds between checks, while waiting for the runner to connect, that it still runs"""
CONTROL_SOCKET = "runner.sock"
IN_SANDBOX_CONTROL_DIR = "/run/brokerage-runner"
"""where the control socket's directory is mounted (read-only) in the container"""
LABEL = reaper.LABEL
MQUEUE_MASK = "ro,nosuid,nodev,noexec,size=4k,mode=0555"
"""mounted over /dev/mqueue: Docker mounts the IPC namespace's mqueue filesystem there"""
RUNTIMES = ("runc", "runsc")
"""OCI runtimes the backend offers: Docker's default (runc) or gVisor (``runsc``)"""
_HEADER = struct.Struct(">BxxxL")


class AttachedStderr:
    """The runner's stderr through Docker's attach stream (multiplexed), read on demand."""

    def __init__(self, attach: Any) -> None:
        self._attach = attach  # keep the SDK's wrapper alive: it owns the response
        self.sock: socket.socket = getattr(attach, "_sock", attach)
        self._raw = bytearray()
        self._err = bytearray()

    def text(self) -> str:
        """What the runner wrote to stderr so far (read without waiting long)."""
        with contextlib.suppress(OSError, ValueError):
            while select.select([self.sock], [], [], 0.05)[0]:
                chunk = self.sock.recv(1 << 16)
                if not chunk:
                    break
                self._raw += chunk
        while len(self._raw) >= _HEADER.size:
            _, size = _HEADER.unpack_from(self._raw)
            if len(self._raw) < _HEADER.size + size:
                break
            self._err = (self._err + self._raw[_HEADER.size : _HEADER.size + size])[
                -DIAGNOSTIC_BYTES:
            ]
            del self._raw[: _HEADER.size + size]
        return bytes(self._err).decode(errors="replace")

    def forget(self) -> None:
        # detach: the SDK's file wrapper keeps socket.close() from closing the descriptor
        with contextlib.suppress(OSError):
            os.close(self.sock.detach())

    def close(self) -> None:
        try:
            self.sock.close()
        finally:
            close = getattr(self._attach, "close", None)
            if close is not None:
                close()


class DockerStream:
    """The runner's control socket, plus its stderr through Docker's attach stream.

    Frames travel over a Unix socket the host listens on in a directory mounted into the
    container (the runner connects at start), so Docker's daemons copy nothing per run;
    the attach stream carries only the runner's own diagnostics.
    """

    def __init__(self, sock: socket.socket, stderr: AttachedStderr) -> None:
        self.sock = sock
        self.sock.setblocking(True)
        self.stderr = stderr
        keep_out_of_forks(self)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close_stdin(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)

    def recv(self, timeout: float) -> bytes:
        ready, _, _ = select.select([self.sock], [], [], max(timeout, 0))
        if not ready:
            raise TimeoutError
        return self.sock.recv(1 << 20)

    def diagnostics(self) -> str:
        return self.stderr.text()

    def forget(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.sock.detach())
        self.stderr.forget()

    def close(self) -> None:
        try:
            self.sock.close()
        finally:
            self.stderr.close()


class ControlSocket:
    """The host end of a runner's control socket: a listener in a directory of its own,
    mounted into the container, that accepts the container's runner and nobody else."""

    def __init__(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="brokerage-runner-")
        os.chmod(self.directory, 0o711)  # the sandbox's unprivileged user must reach it
        self.path = os.path.join(self.directory, CONTROL_SOCKET)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        os.chmod(self.path, 0o666)
        self.listener.listen(4)

    def accept(self, runner_pid: int, timeout: float, container_id: str = "") -> socket.socket:
        """The runner's connection; a connection from any other process is dropped.

        Under gVisor the connection comes from the container's gofer (the process that
        does its host file and socket operations), not from its PID 1: with
        ``container_id`` a peer in that container's own cgroup is the container's.
        """
        deadline = time.monotonic() + timeout
        while True:
            if not runner_pid or not os.path.exists(f"/proc/{runner_pid}"):
                raise SandboxError("the runner exited before it connected to its control socket")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SandboxError("the runner did not connect to its control socket")
            self.listener.settimeout(min(ACCEPT_POLL_SECONDS, remaining))
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            peer = peer_pid(conn)
            if peer == runner_pid or (container_id and in_container(peer, container_id)):
                return conn
            conn.close()

    def close(self) -> None:
        self.listener.close()
        shutil.rmtree(self.directory, ignore_errors=True)


def in_container(pid: int, container_id: str) -> bool:
    """Whether host process ``pid`` belongs to the container (its cgroup, which only
    root can move a process into, names the container's id)."""
    try:
        with open(f"/proc/{pid}/cgroup") as handle:
            paths = [line.rstrip("\n").split(":", 2)[2] for line in handle]
    except (OSError, IndexError):
        return False
    return any(path.rstrip("/").rsplit("/", 1)[-1] in (container_id, f"docker-{container_id}.scope")
               for path in paths)  # fmt: skip


def peer_pid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, _, _ = struct.unpack("3i", creds)
    return int(pid)


def security_options(runtime: str | None = None) -> list[str]:
    """no-new-privileges and the project's seccomp profile (``sandbox/seccomp.json``;
    under gVisor ``sandbox/seccomp-gvisor.json``, see :mod:`seccomp`)."""
    return ["no-new-privileges", seccomp.docker_security_opt(gvisor=runtime == "runsc")]


class DockerSandbox(Sandbox):
    backend = "docker"

    def __init__(self, client: Any, image_tag: str, bundle: BrokerBundle, limits: Limits,
                 egress: EgressProvider | None, options: SandboxOptions,
                 runtime: str | None = None) -> None:  # fmt: skip
        super().__init__(bundle, limits, egress, options)
        self.client, self.image_tag = client, image_tag
        self.runtime = None if runtime in (None, "", "runc") else runtime
        """the OCI runtime; None: the daemon's default (runc)"""
        self.container_id: str | None = None
        self.control: ControlSocket | None = None
        self.stream: DockerStream | None = None
        self.start_seconds = 0.0
        """seconds from create to the runner's ready frame"""

    def start(self) -> None:
        began = time.monotonic()
        super().start()
        self.start_seconds = time.monotonic() - began

    def _launch(self) -> DockerStream:
        api = self.client.api
        self.control = ControlSocket()
        created = api.create_container(**self.container_spec())
        self.container_id = created["Id"]
        stderr = AttachedStderr(
            api.attach_socket(self.container_id, params={"stderr": 1, "stream": 1})
        )
        try:
            api.start(self.container_id)
            runner_pid = int(api.inspect_container(self.container_id)["State"]["Pid"])
            gofer = self.container_id if self.runtime == "runsc" else ""
            conn = self.control.accept(runner_pid, CONNECT_TIMEOUT_SECONDS, gofer)
        except SandboxError as exc:
            said = stderr.text()[-2000:]
            stderr.close()
            raise SandboxError(f"{exc}: {said}" if said else str(exc)) from exc
        except BaseException:
            stderr.close()
            raise
        finally:
            self.control.close()  # the runner is connected (or failed): nobody else may be
            self.control = None
        self.stream = DockerStream(conn, stderr)
        return self.stream

    def container_spec(self) -> dict[str, Any]:
        limits, api = self.limits, self.client.api
        memory = limits.memory_bytes + RUNNER_OVERHEAD_BYTES
        binds = {}
        if self.control is not None:
            binds[self.control.directory] = {"bind": IN_SANDBOX_CONTROL_DIR, "mode": "ro"}
        if self.egress_dir is not None:
            binds[self.egress_dir] = {"bind": "/run/brokerage", "mode": "rw"}
        import docker.types

        host_config = api.create_host_config(
            network_mode="none",
            read_only=True,
            cap_drop=["ALL"],
            security_opt=security_options(self.runtime),
            pids_limit=limits.pids,
            mem_limit=memory,
            memswap_limit=memory,
            nano_cpus=int(limits.cpus * 1e9),
            tmpfs={
                "/tmp": f"rw,nosuid,nodev,noexec,size={limits.tmpfs_bytes},mode=1777",
                # no POSIX message queue filesystem: an empty read-only tmpfs covers it
                "/dev/mqueue": MQUEUE_MASK,
            },
            shm_size=SHM_BYTES,
            ulimits=[docker.types.Ulimit(name="nofile", soft=limits.nofile, hard=limits.nofile)],
            binds=binds,
            ipc_mode="private",
            runtime=self.runtime,
            # if this process dies, the runner sees EOF on its control socket, exits, and
            # the container goes
            auto_remove=True,
        )
        return {
            "image": self.image_tag,
            "command": [
                "python3",
                "-I",
                "-B",
                image.IN_IMAGE_RUNNER,
                "--kill-all",
                "--wipe",
                "/tmp",
                "--wipe",
                "/dev/shm",
                "--control",
                f"{IN_SANDBOX_CONTROL_DIR}/{CONTROL_SOCKET}",
                *self.runner_flags(),
            ],  # fmt: skip
            "user": image.SANDBOX_USER,
            "tty": False,
            "network_disabled": True,
            "working_dir": "/tmp",
            "labels": {
                LABEL: "1",
                "brokerage.broker": self.bundle.key,
                **reaper.owner_labels(),
            },  # fmt: skip
            "host_config": host_config,
        }

    def lost_status(self) -> tuple[RunStatus, str]:
        if self.container_id is None:
            return super().lost_status()
        try:
            state = self.client.api.inspect_container(self.container_id)["State"]
        except Exception:  # noqa: BLE001 - gone already: nothing more to learn
            return super().lost_status()
        if state.get("OOMKilled"):
            return RunStatus.OUT_OF_MEMORY, "the sandbox hit its memory limit"
        return RunStatus.CRASHED, f"the sandbox exited with status {state.get('ExitCode')}"

    def _kill(self) -> None:
        if self.control is not None:
            self.control.close()
            self.control = None
        if self.stream is not None:
            self.stream.close()
            self.stream = None
        if self.container_id is not None:
            with contextlib.suppress(Exception):  # already gone is fine
                self.client.api.remove_container(self.container_id, force=True)
            self.container_id = None

    def memory_usage(self) -> int:
        """Bytes the container uses now (for the benchmark; slow: ~1 s)."""
        stats = self.client.api.stats(self.container_id, stream=False)
        return int(stats["memory_stats"].get("usage", 0))


class DockerBackend:
    """SandboxBackend on Docker; warm pools by default, ``mode=STRICT`` for a container per run."""

    name = "docker"

    def __init__(
        self,
        client: Any = None,
        image_tag: str | None = None,
        egress: EgressProvider | None = None,
        mode: Mode = Mode.WARM,
        pool: PoolPolicy | None = None,
        options: SandboxOptions | None = None,
        reap_interval: float = reaper.REAP_INTERVAL_SECONDS,
        runtime: str | None = None,
    ) -> None:
        self.client = client or docker_client()
        self.image_tag = image_tag or image.Recipe().image_tag
        _require_image(self.client, self.image_tag)
        self.runtime = require_runtime(self.client, runtime)
        self.egress, self.mode = egress, Mode(mode)
        self.pool = WarmPool(self.new_sandbox, pool, self.name)
        self.options = with_idle_exit(options or SandboxOptions(), self.pool.policy)
        self.reaper = reaper.Reaper(self.client, reap_interval).start()

    def new_sandbox(self, bundle: BrokerBundle, limits: Limits) -> DockerSandbox:
        return DockerSandbox(self.client, self.image_tag, bundle, limits, self.egress,
                             self.options, self.runtime)  # fmt: skip

    def run(self, bundle: BrokerBundle, envelope: Mapping[str, Any], limits: Limits,
            tenant: str | None = None) -> RunResult:  # fmt: skip
        if self.mode is Mode.STRICT:
            return run_strict(self.new_sandbox(bundle, limits), envelope, limits)
        return self.pool.run(bundle, envelope, limits, tenant)

    def close(self) -> None:
        self.reaper.stop()
        self.pool.close()


def docker_client() -> Any:
    """A client whose daemon answers, else BackendUnavailableError."""
    import docker
    import docker.errors

    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except (docker.errors.DockerException, OSError) as exc:
        raise BackendUnavailableError(f"no Docker daemon answers: {exc}") from exc
    return client


def require_runtime(client: Any, runtime: str | None) -> str:
    """``runtime`` (default runc) if the daemon has it registered, else BackendUnavailableError."""
    name = runtime or "runc"
    if name not in RUNTIMES:
        raise BackendUnavailableError(f"unknown sandbox runtime {name!r}; one of {RUNTIMES}")
    if name == "runc":
        return name
    registered = client.info().get("Runtimes") or {}
    if name not in registered:
        raise BackendUnavailableError(
            f"the Docker daemon has no {name!r} runtime (registered: {sorted(registered)}); "
            "scripts/setup-sandbox.sh registers gVisor's runsc in /etc/docker/daemon.json"
        )
    return name


def _require_image(client: Any, tag: str) -> None:
    import docker.errors

    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound as exc:
        raise ImageError(
            f"sandbox image {tag} is missing; run `brokerage sandbox build-image`"
        ) from exc
    except docker.errors.APIError as exc:
        raise SandboxError(f"docker: {exc}") from exc
