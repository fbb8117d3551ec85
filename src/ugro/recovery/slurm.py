"""Slurm as ugro's scheduler: a cordon drains the node, an uncordon resumes it.

Everything goes through `scontrol`, run as an argv list (never a shell), each call under
`timeout_s`; a call that overruns is killed with its whole process group. Every failure is
a SchedulerError carrying scontrol's own message.

ugro marks its drains: the Reason always starts with ``ugro:``. `resume` reads the node's
Reason first and lifts only drains that carry the mark, so a node a person drained (Reason
"fan replaced, burn-in", say) stays drained whatever ugro concludes about its health. For the
same reason `drain` leaves a node alone that a person already drained: ugro never
overwrites a person's Reason.

Nothing here retries. A caller that gets a SchedulerError tries again no sooner than
MIN_RETRY_INTERVAL_S later: a slurmctld that is down or busy is not helped by a tight loop
of RPCs, and each failed call may already have cost `timeout_s`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ugro.errors import SchedulerError
from ugro.text import printable

if TYPE_CHECKING:
    from collections.abc import Mapping

# What every Reason that ugro sets starts with; the mark `resume` looks for.
MARK = "ugro:"
# The least time between a failed scontrol call and the caller's next try.
MIN_RETRY_INTERVAL_S = 60.0
# Slurm stores any length, but `sinfo -R` and `scontrol show node` are read by people.
MAX_REASON_CHARS = 200

_NAME = re.compile(r"(?:^|\s)NodeName=(\S+)")
_STATE = re.compile(r"(?:^|\s)State=(\S+)")
_REASON = re.compile(r"(?:^|\s)Reason=(.*)$")
# Slurm appends " [user@time]" to the Reason it shows; a Reason may also be followed by the
# optional Comment= and Extra= fields of newer versions.
_REASON_TAIL = re.compile(r" \[(?P<user>[^\s\[\]@]+)@(?P<time>[^\s\[\]]+)\](?: \w+=.*)?$")


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """What `scontrol show node -o` says about one node, as far as draining is concerned."""

    name: str
    # Slurm's state with its flags, e.g. IDLE, IDLE+DRAIN, MIXED+DRAIN, DOWN+NOT_RESPONDING.
    state: str
    reason: str | None = None
    reason_user: str | None = None
    reason_time: str | None = None

    @property
    def flags(self) -> frozenset[str]:
        """The base state and its flags, upper-case: {"IDLE", "DRAIN"}."""
        return frozenset(part.upper() for part in self.state.split("+") if part)

    @property
    def drained(self) -> bool:
        """Whether new jobs are kept off the node (drained or draining)."""
        return bool({"DRAIN", "DRAINED", "DRAINING"} & self.flags)

    @property
    def by_ugro(self) -> bool:
        """Whether the node's Reason is one ugro set."""
        return self.reason is not None and self.reason.startswith(MARK)


def parse_nodes(text: str) -> dict[str, NodeInfo]:
    """Nodes by name from `scontrol show node -o` output: one record per line.

    Fields other than NodeName, State and Reason are ignored. Reason is the last field that
    can hold spaces (OS= before it can too, so the line is not split on blanks); its value
    runs to Slurm's " [user@time]" suffix. Raises ValueError on a line with no NodeName or
    State.
    """
    nodes: dict[str, NodeInfo] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        name = _NAME.search(line)
        state = _STATE.search(line)
        if name is None or state is None:
            raise ValueError(f"not a node record from `scontrol show node -o`: {line[:120]!r}")
        reason = user = when = None
        found = _REASON.search(line)
        if found:
            reason = found[1]
            tail = _REASON_TAIL.search(reason)
            if tail:
                user, when = tail["user"], tail["time"]
                reason = reason[: tail.start()]
            reason = reason.strip() or None
        nodes[name[1]] = NodeInfo(name[1], state[1], reason, user, when)
    return nodes


def marked(reason: str) -> str:
    """`reason` as ugro gives it to Slurm: on one line, short, and starting with the mark.

    It may quote a node, and `sinfo -R` shows it on operators' terminals: printable.
    """
    text = " ".join(printable(reason, multiline=True).split())
    if not text.startswith(MARK):
        text = f"{MARK} {text}" if text else MARK
    if len(text) > MAX_REASON_CHARS:
        text = text[: MAX_REASON_CHARS - 1] + "…"
    return text


class Slurm:
    """Drains and resumes nodes through `scontrol`; see the module docstring."""

    name = "slurm"

    def __init__(
        self,
        *,
        scontrol: str = "scontrol",
        timeout_s: float = 10,
        node_names: Mapping[str, str] | None = None,
    ) -> None:
        """Run `scontrol` (a program or a command prefix such as `sudo -n scontrol`).

        `node_names` maps ugro's node names to Slurm's, where they differ.
        """
        self.argv = shlex.split(scontrol)
        self.timeout_s = timeout_s
        self.node_names = dict(node_names or {})

    def slurm_name(self, node: str) -> str:
        """Slurm's name for ugro's node `node`."""
        return self.node_names.get(node, node)

    def show(self, node: str) -> NodeInfo:
        """What Slurm says about `node` now; SchedulerError when it does not know it."""
        name = self.slurm_name(node)
        out = self._scontrol("show", "node", "-o", name)
        try:
            info = parse_nodes(out).get(name)
        except ValueError as exc:
            raise SchedulerError(f"scontrol show node {name}: {exc}") from exc
        if info is None:
            raise SchedulerError(f"scontrol show node {name}: no record for node {name!r}")
        return info

    def drain(self, node: str, reason: str) -> None:
        """Drain `node` with Reason "ugro: `reason`", unless a person drained it already."""
        name = self.slurm_name(node)
        current = self.show(node)
        if current.drained and not current.by_ugro:
            return
        self._scontrol("update", f"NodeName={name}", "State=DRAIN", f"Reason={marked(reason)}")

    def resume(self, node: str) -> bool:
        """Resume `node` if ugro drained it; False, and nothing done, if a person did.

        A node that is not drained and carries no Reason has nothing to undo: True.
        """
        name = self.slurm_name(node)
        current = self.show(node)
        if current.by_ugro:
            self._scontrol("update", f"NodeName={name}", "State=RESUME")
            return True
        return not current.drained and current.reason is None

    def _scontrol(self, *args: str) -> str:
        """Run scontrol with `args`; its stdout, or SchedulerError with its message."""
        argv = [*self.argv, *args]
        command = shlex.join(["scontrol", *args])
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                # Its own group, so a timeout kills what a wrapper (sudo, a script) started.
                start_new_session=True,
            )
        except OSError as exc:
            raise SchedulerError(
                f"{command}: cannot run {self.argv[0]!r}: {exc.strerror}; install Slurm's "
                "client or set `slurm: scontrol:` in cluster.yaml"
            ) from exc
        try:
            out, err = process.communicate(timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            raise SchedulerError(
                f"{command}: no answer within {self.timeout_s:g} s (slurm.timeout_s); killed. "
                "Is slurmctld up and reachable (`scontrol ping`)?"
            ) from None
        except BaseException:
            _kill_group(process)
            raise
        if process.returncode != 0:
            message = " ".join((err.strip() or out.strip()).split()) or "no message"
            raise SchedulerError(f"{command} failed (exit {process.returncode}): {message}")
        return out


def _kill_group(process: subprocess.Popen[str]) -> None:
    """Kill the process's whole group and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.communicate()
