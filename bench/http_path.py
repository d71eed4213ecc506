"""CPU of the sandbox's HTTP path alone, without Docker, RQ or the database.

    .venv/bin/python bench/http_path.py [--runs N]

One process plays the worker (a real ``Gateway`` and channel), one the runner (the egress
bridge, ``requests`` preloaded, one forked child per run that POSTs one form-encoded payload
with the SDK's ``gateway_session``, as the POST broker does), and a keep-alive receiver
(``bench/receiver.py``) its own process. Three set-ups, one after the other:

- ``before``: no upstream pool (``Connection: close``), the SDK through the bridge;
- ``pool``: the gateway's upstream pool, the SDK through the bridge;
- ``pool + direct``: the pool, and the runner prepared the SDK (plain HTTP straight to
  the gateway's Unix socket, nothing read from the environment per request).

It prints the CPU milliseconds per request of the worker side (gateway threads) and of
the runner side (runner with its bridge thread, plus the forked children), and runs/s.
A shared machine's other load shows in the wall clock more than in these CPU figures.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNNER_DIR = ROOT / "sandbox" / "runner"

PAYLOAD = {"delivery": {"id": "5b0c3c1e-0000-4000-8000-000000000001", "attempt": 1}}
BODY = b"payload=" + b"%7B%22commits%22%3A+%5B%5D%7D" * 30


def cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def runner_side(socket_path: str, url: str, runs: int, direct: bool, out: int) -> None:
    """The runner: bridge, preload, optionally prepare the SDK, then one fork per run."""
    sys.path[:0] = [str(RUNNER_DIR)]
    from egress_bridge import start_bridge

    proxy = f"http://127.0.0.1:{start_bridge(socket_path)}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        os.environ[name] = proxy
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = ""
    import brokerage_sdk
    import sdk_http

    if direct:
        sdk_http.prepare(socket_path)
    started_cpu, started = cpu(resource.RUSAGE_SELF), time.monotonic()
    for _ in range(runs):
        pid = os.fork()
        if pid == 0:
            status = 0
            try:
                headers = {"Content-Type": "application/x-www-form-urlencoded"}
                brokerage_sdk.gateway_session(PAYLOAD).checked(
                    "POST", url, data=BODY, headers=headers
                )
            except BaseException:  # noqa: BLE001 - reported through the exit status
                status = 1
            os._exit(status)
        _, status = os.waitpid(pid, 0)
        if status:
            raise SystemExit("a run failed")
    seconds = time.monotonic() - started
    total = cpu(resource.RUSAGE_SELF) - started_cpu + cpu(resource.RUSAGE_CHILDREN)
    os.write(out, f"{total} {seconds}".encode())
    os._exit(0)


def measure(runs: int, pool: bool, direct: bool, receiver_port: int) -> tuple[float, float, float]:
    from brokerage.sandbox.egress.config import GatewayConfig
    from brokerage.sandbox.egress.gateway import Gateway
    from brokerage.sandbox.interface import BrokerBundle

    config = GatewayConfig(
        allowed_ports=frozenset({receiver_port}),
        extra_ranges=("127.0.0.1/32",),
        resolver=lambda host, port: ["127.0.0.1"],
        pool_idle_seconds=4.0 if pool else 0.0,
        max_requests_per_run=10**9,
        max_bytes_per_run=10**12,
        max_run_seconds=10**9,
        destination_rate=0,
        service_rate=0,
        repository_rate=0,
    )
    manifest = {"name": "probe", "version": "1.0.0", "entry_point": "broker.py",
                "egress": ["receiver.test"]}  # fmt: skip
    with Gateway(config) as gateway:
        channel = gateway.open_channel(BrokerBundle("probe", "1.0.0", manifest, {}))
        channel.begin_run("bench")
        read_end, write_end = os.pipe()
        url = f"http://receiver.test:{receiver_port}/hook"
        before = cpu(resource.RUSAGE_SELF)
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            runner_side(channel.socket_path, url, runs, direct, write_end)
        os.close(write_end)
        report = os.read(read_end, 200).decode().split()
        os.waitpid(pid, 0)
        worker = cpu(resource.RUSAGE_SELF) - before
        log = channel.end_run()
        assert len(log) == runs and all(e["status"] == 200 for e in log), log[-1:]
        channel.close()
    runner_cpu, seconds = float(report[0]), float(report[1])
    return worker / runs * 1000, runner_cpu / runs * 1000, runs / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    receiver = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "receiver.py"), str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(1.0)
        print(
            f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {args.runs} runs each"
        )
        print("| set-up | worker ms/request | runner+children ms/request | runs/s |")
        print("|---|---|---|---|")
        for name, pool, direct in (("before", False, False), ("pool", True, False),
                                   ("pool + direct", True, True)):  # fmt: skip
            worker, runner, rate = measure(args.runs, pool, direct, port)
            print(f"| {name} | {worker:.2f} | {runner:.2f} | {rate:.0f} |")
        print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        receiver.terminate()
        receiver.wait(10)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
