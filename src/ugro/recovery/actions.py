"""Running remediation actions: each in the background, bounded by its deadline.

An action never holds up a sweep: it runs beside the sweeps that follow, bounded by its
`timeout_s` (a control-node command's whole process group is killed; a node command's
channel is closed), and what it did reaches the history with the next sweep. An action of a
node still running when its next attempt is due is not started twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ugro import subprocesses
from ugro.errors import CommandTimeout, TransportError
from ugro.recovery.plan import Attempt
from ugro.store.history_records import Event

if TYPE_CHECKING:
    from ugro.config import RecoveryAction, Worker
    from ugro.recovery.plan import RunOrder
    from ugro.recovery.records import Ledger
    from ugro.sweep import Transports

log = logging.getLogger(__name__)

# What an action printed, kept in the history: its last characters, where errors are.
OUTPUT_CHARS = 4000
# Beyond an action's own timeout, how long to wait for the transport to give up by itself.
GRACE_S = 2.0


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one run of an action ended."""

    exit_status: int | None
    output: str
    # Why there is no exit status (timeout, connection, no shell); None when it exited.
    error: str | None
    duration_s: float

    @property
    def ok(self) -> bool:
        """Whether the action ran and exited 0."""
        return self.error is None and self.exit_status == 0


async def execute(action: RecoveryAction, worker: Worker, transports: Transports) -> Outcome:
    """Run `action` for `worker`, on the node or this control node, to its end or timeout.

    Whatever goes wrong is in the outcome, never raised.
    """
    start = time.monotonic()
    exit_status: int | None = None
    output = ""
    error: str | None = None
    try:
        if action.where == "control":
            env = {**os.environ, "UGRO_NODE": worker.name, "UGRO_ADDRESS": worker.ip}
            done = await subprocesses.run(
                ["/bin/sh", "-c", action.run], stdin=None, timeout=action.timeout_s, env=env
            )
            exit_status = done.returncode
            output = (done.stdout + done.stderr).decode(errors="replace")
        else:
            transport = transports.pick(worker)
            session = await asyncio.wait_for(
                transport.open(worker), worker.timeouts.connect + GRACE_S
            )
            result = await asyncio.wait_for(
                session.run(action.run, timeout=action.timeout_s), action.timeout_s + GRACE_S
            )
            exit_status = result.exit_status
            output = result.stdout + result.stderr
    except (TimeoutError, CommandTimeout):
        error = f"no result within {action.timeout_s:g} s (timeout_s): stopped"
    except TransportError as exc:
        error = str(exc)
    except OSError as exc:
        error = f"cannot start /bin/sh: {exc.strerror}"
    except Exception as exc:  # noqa: BLE001 - whatever happens is recorded, never lost
        error = f"{type(exc).__name__}: {exc}"
    return Outcome(exit_status, output, error, round(time.monotonic() - start, 3))


class ActionRunner:
    """Starts the plan's actions and counts each attempt in the ledger.

    When an action ends, its `remediation` event for the history is appended to `finished`.
    """

    def __init__(self, ledger: Ledger, finished: list[Event]) -> None:
        """Count attempts in `ledger`; report finished actions in `finished`."""
        self.ledger = ledger
        self.finished = finished
        self.tasks: dict[tuple[str, str], asyncio.Task[None]] = {}

    def running(self) -> frozenset[tuple[str, str]]:
        """The (node, action) pairs whose command still runs."""
        return frozenset(k for k, t in self.tasks.items() if not t.done())

    def start(
        self, run: RunOrder, worker: Worker, transports: Transports, now: datetime
    ) -> list[Event]:
        """Record an attempt; in a dry run say what would run, else start it in the background."""
        action = run.action
        self.ledger.attempt(
            run.node, action.name, Attempt(now, dry_run=run.dry_run, done=run.dry_run)
        )
        detail: dict[str, Any] = {
            "action": action.name,
            "where": action.where,
            "command": action.run,
            "dry_run": run.dry_run,
            "why": run.why,
        }
        if run.dry_run:
            log.info(
                "%s: would run %s on %s: %s (dry run; %s)",
                run.node,
                action.name,
                "the node" if action.where == "node" else "this control node",
                action.run,
                run.why,
            )
            return [Event(now, run.node, "remediation", detail)]
        log.warning("%s: running %s (%s): %s", run.node, action.name, run.why, action.run)
        task = asyncio.create_task(self._run(run, worker, transports, now, detail))
        self.tasks[(run.node, action.name)] = task
        task.add_done_callback(lambda _: self.tasks.pop((run.node, action.name), None))
        return []

    async def _run(
        self,
        run: RunOrder,
        worker: Worker,
        transports: Transports,
        started_at: datetime,
        detail: dict[str, Any],
    ) -> None:
        """Run one action to its end or its timeout, and record what happened."""
        action = run.action
        outcome = await execute(action, worker, transports)
        self.ledger.finish(run.node, action.name, started_at, outcome.exit_status)
        tail = outcome.output[-OUTPUT_CHARS:]
        detail = {
            **detail,
            "exit_status": outcome.exit_status,
            "error": outcome.error,
            "duration_s": outcome.duration_s,
            "output": tail,
            "output_truncated": len(outcome.output) > OUTPUT_CHARS,
        }
        first = next((line for line in tail.splitlines() if line.strip()), "")
        log.log(
            logging.INFO if outcome.ok else logging.WARNING,
            "%s: %s %s in %.1f s%s",
            run.node,
            action.name,
            outcome.error or f"exited {outcome.exit_status}",
            outcome.duration_s,
            f": {first[:200]}" if first else "",
        )
        self.finished.append(Event(datetime.now(UTC), run.node, "remediation", detail))
        await self.ledger.save()

    async def close(self) -> None:
        """Stop the actions still running (a control command's process group is killed)."""
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
