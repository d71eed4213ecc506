"""The Docker backend's containers carry every hardening setting the design lists."""

from __future__ import annotations

from brokerage.sandbox import seccomp
from brokerage.sandbox.interface import Limits
from tests.sandbox.conftest import make_backend
from tests.sandbox.sandbox_fixtures import FAST, TRIVIAL, envelope


def test_warm_container_is_hardened(request, docker_client):
    limits = Limits(memory_bytes=128 * 1024 * 1024, pids=40, cpus=0.5, nofile=100,
                    tmpfs_bytes=8 * 1024 * 1024)  # fmt: skip
    backend = make_backend("docker", request)
    try:
        assert backend.run(TRIVIAL, envelope(), limits).ok
        [sandbox] = [s for pool in backend.pool.pools.values() for s in pool.idle]
        container = docker_client.containers.get(sandbox.container_id)
        config, host = container.attrs["Config"], container.attrs["HostConfig"]
    finally:
        backend.close()
    assert config["User"] == "65534:65534"
    assert not config["OpenStdin"] and not config["Tty"]  # frames go over the control socket
    assert host["NetworkMode"] == "none"
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"] and not host["CapAdd"]
    assert "no-new-privileges" in host["SecurityOpt"]
    # the project's own profile, exactly sandbox/seccomp.json (test_isolation_kernel.py)
    assert seccomp.docker_security_opt() in host["SecurityOpt"]
    assert host["IpcMode"] == "private"
    assert host["Tmpfs"]["/dev/mqueue"].startswith("ro,")  # no mqueue filesystem
    assert host["Privileged"] is False
    assert host["PidsLimit"] == 40
    assert host["Memory"] == host["MemorySwap"] > limits.memory_bytes
    assert host["NanoCpus"] == 500_000_000
    assert "size=8388608" in host["Tmpfs"]["/tmp"] and "noexec" in host["Tmpfs"]["/tmp"]
    assert host["Ulimits"] == [{"Name": "nofile", "Soft": 100, "Hard": 100}]
    [control] = host["Binds"]  # only the control socket's directory, read-only
    assert control.endswith(":/run/brokerage-runner:ro")


def test_sandbox_is_replaced_after_a_limit_breach(request):
    from tests.sandbox.sandbox_fixtures import bundle

    backend = make_backend("docker", request)
    spin = bundle(
        """
        from brokerage_sdk import BaseBroker

        class Broker(BaseBroker):
            def handle(self, payload):
                while payload["spin"]:
                    pass
                return {}
    """,
        name="spinner",
    )
    try:
        backend.run(spin, envelope(spin=False), FAST)
        backend.run(spin, envelope(spin=True), Limits(wall_seconds=0.5))
        backend.run(spin, envelope(spin=False), FAST)
        assert backend.pool.started_for(spin) == 2
    finally:
        backend.close()


def test_container_goes_away_when_its_host_side_vanishes(request, docker_client):
    import time

    backend = make_backend("docker", request)
    try:
        backend.run(TRIVIAL, envelope(), FAST)
        [sandbox] = [s for pool in backend.pool.pools.values() for s in pool.idle]
        container_id = sandbox.container_id
        sandbox.stream.close()  # as if the worker process died: its control socket closes
        for _ in range(100):
            if not docker_client.containers.list(all=True, filters={"id": container_id}):
                break
            time.sleep(0.1)
        assert not docker_client.containers.list(all=True, filters={"id": container_id})
    finally:
        backend.close()


def test_the_control_socket_accepts_its_runner_and_nobody_else():
    import os
    import socket

    import pytest

    from brokerage.sandbox.docker_backend import ControlSocket
    from brokerage.sandbox.errors import SandboxError

    control = ControlSocket()
    try:
        stranger = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stranger.connect(control.path)
        with pytest.raises(SandboxError, match="did not connect"):
            control.accept(runner_pid=1, timeout=0.5)  # a live process that is not us
        assert stranger.recv(1) == b""  # dropped
        runner = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        runner.connect(control.path)
        with control.accept(runner_pid=os.getpid(), timeout=5) as conn:
            runner.sendall(b"ready")
            assert conn.recv(5) == b"ready"
        stranger.close()
        runner.close()
    finally:
        control.close()
    assert not os.path.exists(control.directory)


def test_a_runner_that_dies_before_connecting_fails_the_start_at_once(request):
    import time

    import pytest

    from brokerage.sandbox.docker_backend import ControlSocket
    from brokerage.sandbox.errors import SandboxError

    control = ControlSocket()
    try:
        began = time.monotonic()
        with pytest.raises(SandboxError, match="exited before it connected"):
            control.accept(runner_pid=0, timeout=30)  # inspect's Pid once a container exited
        assert time.monotonic() - began < 1
    finally:
        control.close()
