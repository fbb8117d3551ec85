"""The `disk` check: every path in `disk_paths` has at least `min_disk_gb` free."""

from __future__ import annotations

import re
import shlex
from typing import TYPE_CHECKING

from ugro.checks import RemoteCheck, cut_short
from ugro.checks.readings import BYTES, Range, name, whole
from ugro.model import CommandResult, DiskSpace, Evaluation, Status

if TYPE_CHECKING:
    from ugro.config import Worker

GB = 1_000_000_000
SECTION = "@@ugro-path "
# df counts 1024-byte blocks; in bytes, a count must stay within readings.BYTES.
KIB = Range(0, BYTES.hi // 1024, "KiB")
# Linux's PATH_MAX.
PATH_CHARS = 4096

# POSIX `df -P -k` line: filesystem (may hold spaces), 1024-blocks, used, available,
# capacity%, mount point (may hold spaces). Searched for, after the filesystem's name, rather
# than matched with a lazy `^.+?\s+`: that backtracks quadratically over a line of spaces, and
# a node's line may be a megabyte long.
_DF_NUMBERS = re.compile(
    r"\s(?P<blocks>[0-9]+)\s+(?P<used>[0-9]+)\s+(?P<avail>[0-9]+)\s+[0-9]+%\s+(?P<mount>/.*)$"
)


class Disk(RemoteCheck):
    """Each configured path has room for checkpoints."""

    name = "disk"
    weight = 15
    default_timeout_s = 10
    core = True
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
        if (short := cut_short(result, "df")) is not None:
            return short
        answers = parse(result.stdout)
        missing = [p for p in node.disk_paths if p not in answers]
        if missing:
            return Evaluation(Status.UNKNOWN, f"df gave no answer for {', '.join(missing)}")
        problems = []
        disks = []
        for path in node.disk_paths:
            answer = answers[path]
            if isinstance(answer, str):
                problems.append(f"{path}: {answer} (is it mounted?)")
                continue
            disks.append(answer)
            gb = answer.free_bytes / GB
            if gb < node.min_disk_gb:
                problems.append(f"{path}: {_gb(gb)} GB free, below {node.min_disk_gb:g} GB")
        least = min(d.free_bytes for d in disks) / GB if disks else None
        if problems:
            return Evaluation(
                Status.FAIL,
                "; ".join(problems) + "; free space (old checkpoints, caches) or mount the volume",
                value=least,
                unit="GB",
                disks=tuple(disks),
            )
        shown = ", ".join(f"{d.path} {_gb(d.free_bytes / GB)} GB" for d in disks)
        return Evaluation(Status.OK, f"free: {shown}", value=least, unit="GB", disks=tuple(disks))


def _gb(value: float) -> str:
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _df_line(line: str) -> re.Match[str] | None:
    """The numbers and mount point of a df line that has a filesystem name before them."""
    match = _DF_NUMBERS.search(line)
    return match if match and match.start() > 0 else None


def parse(stdout: str) -> dict[str, DiskSpace | str]:
    """The answer of df for each path (its error, when it gave one), from the marked output."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in stdout.splitlines():
        if line.startswith(SECTION):
            current = sections.setdefault(line.removeprefix(SECTION), [])
        elif current is not None:
            current.append(line)
    result: dict[str, DiskSpace | str] = {}
    for path, lines in sections.items():
        match = next((m for m in map(_df_line, lines[1:]) if m), None)
        if match:
            size = whole(match["blocks"], f"size of {path}", KIB)
            whole(match["used"], f"used space of {path}", KIB)
            avail = whole(match["avail"], f"available space of {path}", KIB)
            mount = name(match["mount"], f"mount point of {path}", PATH_CHARS)
            result[path] = DiskSpace(path, mount, avail * 1024, size * 1024)
        elif lines and lines[0].startswith("Filesystem"):
            result[path] = "df's answer was cut short"
        else:
            said = next((ln for ln in lines if ln.strip()), "df printed nothing")
            result[path] = said.removeprefix("df: ").strip()
    return result


CHECK = Disk()
