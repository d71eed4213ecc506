"""Unified diffs per pushed commit (git and hg), capped per commit and per push."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO

MAX_PATCH_BYTES = 64 * 1024
"""bytes of unified diff kept per commit (cut at a line boundary, with a marker line)."""

MAX_PATCH_BYTES_PER_PUSH = 1024 * 1024
"""bytes of unified diff per push; commits after the budget is spent get no patch."""

PATCH_TRUNCATED_LINE = "[brokerage: patch truncated]\n"


def collect_patches(
    command: list[str],
    stdin: bytes | None,
    nodes: list[str],
    cwd: Path,
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Split a ``<node>\\n<diff>`` stream into capped patches; stops reading at the push cap."""
    # stdin from a file, not a pipe: writing a big pipe while the child fills stdout deadlocks
    with tempfile.TemporaryFile() as source:
        source.write(stdin or b"")
        source.seek(0)
        with subprocess.Popen(
            command,
            cwd=cwd,
            stdin=source,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=environ,
        ) as proc:
            assert proc.stdout is not None
            patches = _within_budget(_split_patch_stream(proc.stdout, nodes))
            proc.kill()
    return {node: patch.decode("utf-8", "replace") for node, patch in patches.items()}


def _within_budget(split: Iterable[tuple[str, list[bytes]]]) -> dict[str, bytes]:
    """Capped patches in stream order until the next one would overrun the push's budget."""
    patches: dict[str, bytes] = {}
    budget = MAX_PATCH_BYTES_PER_PUSH
    for node, lines in split:
        patch = _cap_patch(lines)
        if len(patch) > budget:
            break
        budget -= len(patch)
        patches[node] = patch
    return patches


def _split_patch_stream(stream: IO[bytes], nodes: list[str]) -> Iterator[tuple[str, list[bytes]]]:
    """(node, its diff lines, at most MAX_PATCH_BYTES + one line) in stream order."""
    expected = iter(nodes)
    upcoming = next(expected, None)
    current: str | None = None
    lines: list[bytes] = []
    size = 0
    for line in stream:
        if upcoming is not None and line.rstrip(b"\n").decode("ascii", "replace") == upcoming:
            if current is not None:
                yield current, lines
            current, lines, size, upcoming = upcoming, [], 0, next(expected, None)
        elif current is not None and size <= MAX_PATCH_BYTES:
            lines.append(line)
            size += len(line)
    if current is not None:
        yield current, lines


def _cap_patch(lines: list[bytes]) -> bytes:
    marker = PATCH_TRUNCATED_LINE.encode()
    kept: list[bytes] = []
    size = 0
    for line in lines:
        if size + len(line) > MAX_PATCH_BYTES - len(marker):
            return b"".join(kept) + marker
        kept.append(line)
        size += len(line)
    return b"".join(kept)
