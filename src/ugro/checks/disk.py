"""The `disk` check: every path in `disk_paths` has at least `min_disk_gb` free."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ugro.checks import RemoteCheck
from ugro.model import CommandResult, Evaluation, Status

if TYPE_CHECKING:
    from ugro.config import Worker

GB = 1_000_000_000
SECTION = "@@ugro-path "

# POSIX `df -P -k` line: filesystem (may hold spaces), 1024-blocks, used, available,
# capacity%, mount point (may hold spaces).
_DF_LINE = re.compile(
    r"^(?P<fs>.+?)\s+(?P<blocks>\d+)\s+(?P<used>\d+)\s+(?P<avail>\d+)\s+\d+%\s+(?P<mount>/.*)$"
)


@dataclass(frozen=True, slots=True)
class PathSpace:
    """df's answer for one configured path: free bytes and mount point, or df's error."""

    path: str
    free_bytes: int | None
    mount: str | None
    error: str | None


class Disk(RemoteCheck):
    """Each configured path has room for checkpoints."""

    name = "disk"
    weight = 15
    hang_hint = "df hung: a network filesystem (NFS) under one of disk_paths is not responding"

    def command(self, node: Worker) -> str:
        """One `df -P -k` per path, each preceded by a marker line naming the path."""
        parts = []
        for path in node.disk_paths:
            quoted = shlex.quote(path)
            parts.append(f"printf '%s\\n' {shlex.quote(SECTION + path)}; df -P -k -- {quoted} 2>&1")
        return "; ".join(parts)

    def evaluate(self, result: CommandResult, node: Worker) -> Evaluation:
        """FAIL naming each path that is missing or short of space; value = least free GB."""
        spaces = parse(result.stdout)
        missing = [p for p in node.disk_paths if p not in spaces]
        if missing:
            return Evaluation(Status.UNKNOWN, f"df gave no answer for {', '.join(missing)}")
        problems = []
        free: list[float] = []
        for path in node.disk_paths:
            space = spaces[path]
            if space.free_bytes is None:
                problems.append(f"{path}: {space.error} (is it mounted?)")
                continue
            gb = space.free_bytes / GB
            free.append(gb)
            if gb < node.min_disk_gb:
                problems.append(f"{path}: {_gb(gb)} GB free, below {node.min_disk_gb:g} GB")
        least = min(free) if free else None
        if problems:
            return Evaluation(
                Status.FAIL,
                "; ".join(problems) + "; free space (old checkpoints, caches) or mount the volume",
                value=least,
                unit="GB",
            )
        shown = ", ".join(f"{p} {_gb(spaces[p].free_bytes / GB)} GB" for p in node.disk_paths)  # type: ignore[operator]
        return Evaluation(Status.OK, f"free: {shown}", value=least, unit="GB")


def _gb(value: float) -> str:
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def parse(stdout: str) -> dict[str, PathSpace]:
    """The answer of df for each path, from the command's marker-separated output."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in stdout.splitlines():
        if line.startswith(SECTION):
            current = sections.setdefault(line.removeprefix(SECTION), [])
        elif current is not None:
            current.append(line)
    result = {}
    for path, lines in sections.items():
        match = next((m for m in map(_DF_LINE.match, lines[1:]) if m), None)
        if match:
            result[path] = PathSpace(path, int(match["avail"]) * 1024, match["mount"], None)
        else:
            said = next((ln for ln in lines if ln.strip()), "df printed nothing")
            result[path] = PathSpace(path, None, None, said.removeprefix("df: ").strip())
    return result


CHECK = Disk()
