"""The `ssh` check: the node accepts a session and its shell runs a command.

The same trivial command reads the host's load and memory, so the detailed host metrics
cost no extra round trip.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ugro.checks import RemoteCheck, cut_short
from ugro.checks.readings import CPUS, LOAD, MAX_CHARS, MEMORY_BYTES, Range, number, whole
from ugro.model import CommandResult, Evaluation, HostMetrics, Status

if TYPE_CHECKING:
    from ugro.config import Worker

MARKER = "ugro-ok"
# /proc/meminfo counts kB; in bytes, within readings.MEMORY_BYTES.
MEMORY_KB = Range(0, MEMORY_BYTES.hi // 1024, "kB")

COMMAND = (
    f"echo {MARKER}; cat /proc/loadavg 2>/dev/null; getconf _NPROCESSORS_ONLN 2>/dev/null; "
    "grep -E '^(MemTotal|MemAvailable):' /proc/meminfo 2>/dev/null; exit 0"
)


class Reachability(RemoteCheck):
    """SSH answers and the login shell runs commands."""

    name = "ssh"
    weight = 25
    default_timeout_s = 5
    core = True
    # A node that fails it has no session: a recovery action must run on the control node.
    session_when_failing = False
    hang_hint = (
        "the open SSH connection went silent: the network drops its traffic, or the node "
        "itself is hung (out of memory, swapping)"
    )

    def command(self, node: Worker) -> str:  # noqa: ARG002 - the same for every node
        """Print a marker, then /proc/loadavg, the CPU count and two /proc/meminfo lines."""
        return COMMAND

    def evaluate(self, result: CommandResult, node: Worker) -> Evaluation:
        """OK when the marker came back; host metrics when /proc was readable."""
        if (short := cut_short(result, "the shell")) is not None:
            return short
        lines = result.stdout.splitlines()
        if MARKER not in lines:
            return Evaluation(
                Status.FAIL,
                f"the node's shell did not run commands{result.said()}"
                "; check the account's login shell and ForceCommand",
            )
        where = "local machine, no SSH needed" if node.transport == "local" else "SSH session open"
        return Evaluation(Status.OK, f"{where}; shell answered", host=parse_host(lines))


def parse_host(lines: list[str]) -> HostMetrics | None:
    """Host metrics from the command's output lines; None when any part is missing.

    InvalidOutput when a part is there but implausible (`ugro.checks.readings`).
    """
    load: list[float] | None = None
    cpus: int | None = None
    memory: dict[str, int] = {}
    for line in lines:
        fields = line.split()
        if len(fields) == 5 and "/" in fields[3]:
            if not all(_looks_numeric(f) for f in fields[:3]):
                continue  # not /proc/loadavg: a login banner, say
            load = [number(f, "a load average", LOAD) for f in fields[:3]]
        elif len(fields) == 1 and _looks_numeric(fields[0]):
            cpus = whole(fields[0], "the CPU count", CPUS)
        elif len(fields) == 3 and fields[0] in ("MemTotal:", "MemAvailable:") and fields[2] == "kB":
            key = fields[0].rstrip(":")
            memory[key] = whole(fields[1], key, MEMORY_KB) * 1024
    if load is None or not cpus or len(memory) != 2:
        return None
    return HostMetrics(
        load_1m=load[0],
        load_5m=load[1],
        load_15m=load[2],
        cpus=cpus,
        memory_total_bytes=memory["MemTotal"],
        memory_available_bytes=memory["MemAvailable"],
    )


def _looks_numeric(text: str) -> bool:
    """Whether `text` is meant as a number: float() reads it, whatever the value."""
    try:
        float(text[:MAX_CHARS])
    except ValueError:
        return False
    return True


CHECK = Reachability()
