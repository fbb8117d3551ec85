"""The `processes` check: GPU memory is held only by processes that are alive.

nvidia-smi lists the compute processes holding memory on each GPU. A holder that is a
zombie, or that does not exist in the node's pid namespace, keeps memory the next job
cannot have: the process died but its CUDA context was not torn down (or ugro's SSH session
runs in another pid namespace than the GPUs' processes, e.g. inside a container).

One `ps -e` lists the node's processes, run beside the query. A process in uninterruptible
sleep (D) is named but not warned about: one sample cannot tell a checkpoint write to a
network filesystem from a process stuck for good.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from ugro.checks import Answering, cut_short
from ugro.checks.gpu import cause
from ugro.checks.gpuquery import COMMAND as SHARED_QUERY
from ugro.checks.gpuquery import GpuHealth, GpuRow, hung, parse
from ugro.checks.readings import GPU_MEMORY_MIB as MIB
from ugro.checks.readings import PID, SECONDS, number, whole
from ugro.errors import CommandTimeout
from ugro.model import CommandResult, Evaluation, Status

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ugro.checks import Context
    from ugro.config import Worker

# The same string as the deep probe's, so a node check runs it once.
COMMAND = (
    "nvidia-smi --query-compute-apps=gpu_uuid,pid,process_name,used_memory "
    "--format=csv,noheader,nounits"
)
PS_COMMAND = "ps -e -o pid=,stat=,etimes=,comm="
MIB_PER_GIB = 1024
_PS_LINE = re.compile(r"^\s*(?P<pid>\d+)\s+(?P<stat>\S+)\s+(?P<etimes>\d+)\s+(?P<comm>.*)$")
# What nvidia-smi prints for memory it cannot read: [N/A], [Not Supported].
_NOT_REPORTED = re.compile(r"^(\[[^\]]*\]|N/A|Not Supported)$")


@dataclass(frozen=True, slots=True)
class Holder:
    """A process holding memory on a GPU, as nvidia-smi lists it."""

    gpu_uuid: str
    pid: int
    name: str
    used_mib: float | None


@dataclass(frozen=True, slots=True)
class Process:
    """A process as `ps` shows it."""

    pid: int
    stat: str
    elapsed_s: int
    comm: str


def parse_apps(stdout: str) -> tuple[Holder, ...]:
    """The compute-apps CSV; raise ValueError on anything else."""
    holders = []
    for line in stdout.splitlines():
        if not line.strip():
            continue
        # The process name may hold commas; the memory is the last field.
        parts = [v.strip() for v in line.split(",")]
        if len(parts) < 4 or not parts[1].isdigit():
            raise ValueError(
                f"expected gpu_uuid, pid, process_name, used_memory; got {line[:120]!r}"
            )
        uuid, name, used = parts[0], ",".join(parts[2:-1]), parts[-1]
        pid = whole(parts[1], "a GPU process's pid", PID)
        # [N/A]: not reported inside some containers and on MIG.
        memory = None if _NOT_REPORTED.match(used) else number(used, f"memory of pid {pid}", MIB)
        holders.append(Holder(uuid, pid, name, memory))
    return tuple(holders)


def parse_ps(stdout: str) -> dict[int, Process]:
    """`ps -o pid=,stat=,etimes=,comm=` lines by pid; lines that do not fit are skipped."""
    table = {}
    for line in stdout.splitlines():
        match = _PS_LINE.match(line)
        if match:
            pid = whole(match["pid"], "a pid in ps", PID)
            elapsed = whole(match["etimes"], f"the age of pid {pid}", SECONDS)
            table[pid] = Process(pid, match["stat"], elapsed, match["comm"].strip())
    return table


def _gib(mib: float) -> str:
    return f"{mib / MIB_PER_GIB:.1f} GiB"


def _who(holder: Holder) -> str:
    held = f", {_gib(holder.used_mib)}" if holder.used_mib is not None else ""
    return f"{PurePosixPath(holder.name).name} (pid {holder.pid}{held})"


def _sort(
    holders: tuple[Holder, ...], table: dict[int, Process], names: dict[str, str]
) -> tuple[list[str], list[str]]:
    """The holders whose memory is held for nothing, and those worth a note (D state)."""
    stuck, notes = [], []
    for holder in holders:
        process = table.get(holder.pid)
        where = names.get(holder.gpu_uuid, holder.gpu_uuid)
        if process is None:
            stuck.append(f"{_who(holder)} on {where} is not in the node's process table")
        elif process.stat.startswith("Z"):
            stuck.append(f"{_who(holder)} on {where} is a zombie")
        elif process.stat.startswith("D"):
            notes.append(f"pid {holder.pid} in uninterruptible sleep (D)")
    return stuck, notes


class Processes(GpuHealth, Answering):
    """WARN when GPU memory is held by a zombie or by a process the node does not have."""

    name = "processes"
    weight = 5
    default_timeout_s = 10

    def asks(self, node: Worker, context: Context) -> tuple[str, ...]:  # noqa: ARG002
        """GPU memory holders, the node's processes, and the shared query (to name GPUs)."""
        return (COMMAND, PS_COMMAND, SHARED_QUERY)

    def answer(
        self,
        results: Sequence[CommandResult | None],
        node: Worker,
        context: Context,  # noqa: ARG002 - its commands need no context
    ) -> Evaluation:
        """Evaluate the holders against the processes; a hung nvidia-smi is UNKNOWN (`hung`)."""
        apps, ps, shared = results
        if ps is None:
            raise CommandTimeout(f"ps did not finish within {self.timeout(node):g} s")
        if apps is None:
            return hung(self.timeout(node))
        gpus: tuple[GpuRow, ...] = ()
        if shared is not None and shared.exit_status == 0 and not shared.truncated:
            try:
                gpus = parse(shared.stdout)
            except ValueError:
                gpus = ()  # the shared query's own checks report it; name GPUs by UUID
        return self.evaluate(apps, ps, node, gpus=gpus)

    def evaluate(
        self,
        apps: CommandResult,
        ps: CommandResult,
        node: Worker,
        *,
        gpus: tuple[GpuRow, ...] = (),
    ) -> Evaluation:
        """Judge every holder against the process table; pure, so tests feed it fixtures.

        `gpus` (the shared query's rows, when it answered) name GPUs by index, not UUID.
        """
        del node
        names = {g.uuid: f"GPU {g.index}" for g in gpus}
        short = cut_short(apps, "nvidia-smi --query-compute-apps") or cut_short(ps, "ps")
        if short is not None:
            return short
        if apps.exit_status != 0:
            return Evaluation(Status.UNKNOWN, f"not read: {cause(apps)} (see the gpu check)")
        holders = parse_apps(apps.stdout)
        total = sum(h.used_mib or 0 for h in holders)
        if not holders:
            return Evaluation(Status.OK, "no process holds GPU memory", value=0, unit="MiB")
        if ps.exit_status != 0:
            return Evaluation(
                Status.UNKNOWN,
                f"cannot list the node's processes (ps exit {ps.exit_status}){ps.said(first=True)}",
                value=total,
                unit="MiB",
            )
        stuck, notes = _sort(holders, parse_ps(ps.stdout), names)
        count = "1 process holds" if len(holders) == 1 else f"{len(holders)} processes hold"
        if stuck:
            return Evaluation(
                Status.WARN,
                "; ".join(stuck)
                + ": its memory is held for nothing; kill the parent or reset the GPU "
                "(`nvidia-smi -r`) once no job runs (or ugro's SSH login is in a container: "
                "see the README)",
                value=total,
                unit="MiB",
            )
        summary = f"{count} {_gib(total)}: {', '.join(_who(h) for h in holders)}"
        if notes:
            summary += f"; {', '.join(notes)}"
        return Evaluation(Status.OK, summary, value=total, unit="MiB")


CHECK = Processes()
