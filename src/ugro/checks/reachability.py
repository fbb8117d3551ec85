"""The `ssh` check: the node accepts a session and its shell runs a command.

The same trivial command reads the host's load and memory, so the detailed host metrics
cost no extra round trip.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ugro.checks import RemoteCheck
from ugro.model import CommandResult, Evaluation, HostMetrics, Status

if TYPE_CHECKING:
    from ugro.config import Worker

MARKER = "ugro-ok"

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
    """Host metrics from the command's output lines; None when any part is missing."""
    load: list[float] | None = None
    cpus: int | None = None
    memory: dict[str, int] = {}
    for line in lines:
        fields = line.split()
        if len(fields) == 5 and "/" in fields[3]:
            try:
                load = [float(f) for f in fields[:3]]
            except ValueError:
                continue
        elif len(fields) == 1 and fields[0].isdigit():
            cpus = int(fields[0])
        elif len(fields) == 3 and fields[0] in ("MemTotal:", "MemAvailable:") and fields[2] == "kB":
            memory[fields[0].rstrip(":")] = int(fields[1]) * 1024
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


CHECK = Reachability()
