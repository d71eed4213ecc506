"""Where the CPU went during a measured phase: per component, from the kernel's counters.

On a 2-core machine a pipeline's rate is bounded by the CPU every process spends per
delivery, not by any one process's latency. :class:`CpuMeter` reads, before and after a
phase, the CPU time of named process groups (``/proc/<pid>/stat``, children included once
reaped) and of every Docker container together (the ``docker`` cgroup), and prints
milliseconds of CPU per unit of work for each.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
DOCKER_CGROUPS = (
    Path("/sys/fs/cgroup/cpuacct/docker/cpuacct.usage"),  # cgroup v1, cgroupfs driver
    Path("/sys/fs/cgroup/docker/cpu.stat"),  # cgroup v2, cgroupfs driver
    Path("/sys/fs/cgroup/system.slice/cpu.stat"),  # cgroup v2, systemd driver (approximate)
)
DAEMONS = ("dockerd", "containerd", "containerd-shim-runc-v2", "containerd-shim")


def process_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` and of its children it has reaped; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(v) for v in fields[11:15]) / TICKS  # utime stime cutime cstime


def descendants(pid: int) -> list[int]:
    """``pid`` and every live process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def pids_named(names: Iterable[str]) -> list[int]:
    wanted = set(names)
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in wanted:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def containers_seconds() -> float:
    """CPU seconds of every Docker container, past and present; 0 where unknown."""
    for path in DOCKER_CGROUPS:
        try:
            text = path.read_text()
        except OSError:
            continue
        if path.name == "cpuacct.usage":
            return int(text) / 1e9
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "usage_usec":
                return int(value) / 1e6
    return 0.0


def machine_seconds() -> float:
    """CPU seconds every core spent busy (not idle, not waiting on I/O) since boot."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in first]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / TICKS


Sample = dict[str, dict[int, float]]
"""CPU seconds per component, per process (pid 0: a component counted as a whole)"""


@dataclass
class CpuMeter:
    """CPU seconds per component over one phase; ``groups`` maps a name to a pid list.

    A process that exits during the phase keeps only what its parent reaped: its own share
    is lost unless the parent was counted (so the figures err low, never negative)."""

    groups: dict[str, Callable[[], list[int]]]
    before: Sample = field(default_factory=dict)
    after: Sample = field(default_factory=dict)

    def sample(self) -> Sample:
        seconds = {
            name: {pid: process_seconds(pid) for pid in pids()}
            for name, pids in self.groups.items()
        }
        seconds["docker daemons"] = {pid: process_seconds(pid) for pid in pids_named(DAEMONS)}
        seconds["containers (runners, brokers)"] = {0: containers_seconds()}
        seconds["whole machine"] = {0: machine_seconds()}
        return seconds

    def start(self) -> None:
        self.before = self.sample()

    def stop(self) -> None:
        self.after = self.sample()

    def spent(self, name: str) -> float:
        before, after = self.before.get(name, {}), self.after.get(name, {})
        return sum(max(0.0, value - before.get(pid, 0.0)) for pid, value in after.items())

    def table(self, units: int, unit_name: str) -> str:
        lines = [f"| CPU per {unit_name} | ms |", "|---|---|"]
        for name in self.before:
            lines.append(f"| {name} | {self.spent(name) * 1000 / max(units, 1):.2f} |")
        return "\n".join(lines)
