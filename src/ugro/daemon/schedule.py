"""The daemon's timetable: each node checked when it is due, on its own, never twice at once.

Every node check runs as a task of its own, so a node that hangs costs its own timeout and
never another node's cadence. A node is busy from the start of its check until the daemon
has settled the result and set its next due time; a busy node is not started again.

Checks started together (nodes due at the same moment) form a cohort. Completed checks are
taken together, as one sweep, once every check of their cohorts has completed, or a short
wait after the first of them, whichever comes first: nodes that fail together (a switch, a
shared filesystem) land in one sweep, which is what the alert engine's cluster grouping
counts, and a hung node holds the others' verdicts back by that wait at most.

Starts are paced: at most a batch of nodes (`max_connects`) start at once, and a full batch
is followed by a pause, so a large fleet's checks are spread over part of the interval rather
than opened all in the same instant. A thousand nodes started together send a thousand
batches of commands at once; on a small control node their answers then wait behind one
another longer than the checks' timeouts, and every node is called unreachable. Once spread,
checks stay spread: each node is next due an interval after its own check started. The
batches of one round are one cohort, settled as one sweep.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Iterable, Sequence
    from typing import Any

    from ugro.config import Worker
    from ugro.model import NodeVerdict

    #: Checks one node; never raises (the daemon contains what a check raises).
    Runner = Callable[[Worker], Coroutine[Any, Any, NodeVerdict]]

# How long an abandoned check may take to unwind once cancelled.
ABANDON_WAIT_S = 2.0
# The control node's CPU for one warm node check with the default checks (one batch of nine
# commands over asyncssh: about 6 ms on a 2-core EPYC, benchmarks/fleet_scale.py). A fleet's
# starts are spread over that much time per node, at most half the interval.
NODE_CHECK_CPU_S = 0.006


def pause_s(nodes: int, batch: int, interval_s: float) -> float:
    """Seconds between full batches of starts: `nodes` checks spread as NODE_CHECK_CPU_S says.

    No pause when one batch holds every node.
    """
    batches = math.ceil(nodes / batch)
    if batches <= 1:
        return 0.0
    return min(interval_s / 2, nodes * NODE_CHECK_CPU_S) / batches


@dataclass(frozen=True, slots=True)
class Completed:
    """One node check that finished: the node, when its check started (monotonic), its verdict.

    `cohort` is when the paced round it started in began (`started` when it was not paced).
    """

    name: str
    started: float
    verdict: NodeVerdict
    cohort: float


class Schedule:
    """When each node is due, which checks run, and which completed and await settling."""

    def __init__(
        self,
        names: Iterable[str],
        now: float,
        wake: asyncio.Event,
        *,
        batch: int | None = None,
        pause_s: float = 0.0,
    ) -> None:
        """Every node in `names` due at `now`; `wake` is set whenever a check completes.

        At most `batch` checks start at once (no bound when None), and `pause_s` after a
        full batch (module docstring).
        """
        self.due: dict[str, float] = dict.fromkeys(names, now)
        self.batch = batch
        self.pause_s = pause_s
        self._paused_until = -math.inf
        # When the paced round in progress began; None when the last batch was not full.
        self._round: float | None = None
        self.running: dict[str, asyncio.Task[NodeVerdict]] = {}
        # Each running check's cohort: when its paced round began.
        self._started: dict[str, float] = {}
        self._completed: list[Completed] = []
        self._first_completed_at: float | None = None
        self._wake = wake

    def start_due(self, nodes: Sequence[Worker], now: float, run: Runner) -> None:
        """Start the check of every node of `nodes` due by `now` and not busy, a batch at most."""
        if now < self._paused_until:
            return
        # The batches of one paced round are one cohort, settled together as one sweep: nodes
        # that fail together (a switch) must still be counted together by the alert engine.
        cohort = now if self._round is None else self._round
        started = 0
        for node in nodes:
            if self.due.get(node.name, math.inf) > now or node.name in self.running:
                continue
            if self.batch is not None and started == self.batch:
                self._paused_until = now + self.pause_s
                self._round = cohort
                return
            started += 1
            # Busy until settled: the daemon sets the next due time then.
            self.due[node.name] = math.inf
            task = asyncio.create_task(run(node), name=f"check {node.name}")
            self.running[node.name] = task
            self._started[node.name] = cohort
            task.add_done_callback(partial(self._finished, node.name, now, cohort))
        self._round = None

    def spread_s(self, nodes: int) -> float:
        """How long a paced round of `nodes` checks takes to start them all."""
        if self.batch is None:
            return 0.0
        return max(0, math.ceil(nodes / self.batch) - 1) * self.pause_s

    def _finished(
        self, name: str, started: float, cohort: float, task: asyncio.Task[NodeVerdict]
    ) -> None:
        if self.running.get(name) is task:
            del self.running[name]
            del self._started[name]
        if task.cancelled():
            return
        # The runner contains whatever a check raises; result() re-raises only a bug here.
        self._completed.append(Completed(name, started, task.result(), cohort))
        if self._first_completed_at is None:
            self._first_completed_at = time.monotonic()
        self._wake.set()

    def settle_at(self, wait_s: float) -> float | None:
        """When to take the completed checks (module docstring); None while there are none.

        That is when the first of them completed, once their cohorts are complete; else
        `wait_s` later.
        """
        if self._first_completed_at is None:
            return None
        cohorts = {c.cohort for c in self._completed}
        if any(cohort in cohorts for cohort in self._started.values()):
            return self._first_completed_at + wait_s
        return self._first_completed_at

    def completed_names(self) -> set[str]:
        """The nodes whose completed checks wait to be settled."""
        return {c.name for c in self._completed}

    def take(self) -> list[Completed]:
        """The completed checks, oldest start first; the daemon settles them and sets `due`."""
        taken = sorted(self._completed, key=lambda c: c.started)
        self._completed = []
        self._first_completed_at = None
        return taken

    def next_due(self) -> float:
        """When the next idle node may start (infinity when every node is busy)."""
        return max(min(self.due.values(), default=math.inf), self._paused_until)

    def retarget(self, names: Iterable[str], now: float) -> None:
        """Follow a changed node list: new nodes due at `now`, removed ones forgotten.

        Call it with no check running (`abandon` them first).
        """
        wanted = list(names)
        self.due = {name: self.due.get(name, now) for name in wanted}
        self._completed = [c for c in self._completed if c.name in self.due]

    async def abandon(self, names: Iterable[str], now: float) -> list[str]:
        """Cancel the running checks of `names`; those still configured are due at `now`.

        Returns the nodes whose checks were abandoned.
        """
        tasks = {name: self.running.pop(name) for name in names if name in self.running}
        for name in tasks:
            del self._started[name]
        for task in tasks.values():
            task.cancel()
        for name in tasks:
            if name in self.due:
                self.due[name] = now
        if tasks:
            # A cancelled check unwinds at once (asyncssh and subprocess waits are
            # cancellable); the bound only keeps a misbehaving one from holding the daemon.
            await asyncio.wait(tasks.values(), timeout=ABANDON_WAIT_S)
        return sorted(tasks)
