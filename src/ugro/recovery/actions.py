"""Carrying out recovery plans: cordons, scheduler calls, remediation commands, bookkeeping.

`ugro.recovery` decides; this module does. After every sweep the daemon calls
`Recoverer.after_sweep`, which reads the cordons file, plans, places and lifts cordons
(telling the scheduler), records escalations, and starts the due actions as background
tasks. An action never holds up a sweep: it runs beside the sweeps that follow, bounded by
its `timeout_s` (a control-node command's whole process group is killed; a node command's
channel is closed), and what it did reaches the history with the next sweep. An action of a
node still running when its next attempt is due is not started twice.

Attempts and escalations are kept in `remediation.json` beside the cordons file, written
atomically after every change, so a restarted daemon neither forgets how often it already
tried nor retries a node it gave up on. Not in the history database: that can be turned
off, moved or pruned, while these counters are part of what the daemon must remember.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from ugro import paths, subprocesses
from ugro.alerts.engine import (
    BREAKER_KEY,
    ESCALATION_KEY,
    SCHEDULER_KEY,
    ExternalCondition,
)
from ugro.errors import CommandTimeout, SchedulerError, StateError, TransportError
from ugro.model import CLUSTER
from ugro.recovery import plan as recovery
from ugro.recovery.plan import Attempt, NodeRemediation
from ugro.store import atomicfile
from ugro.store.cordons import Cordon, CordonStore
from ugro.store.history import Event

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from ugro.config import Config, RecoverySettings, Worker
    from ugro.model import NodeVerdict
    from ugro.recovery.scheduler import Scheduler
    from ugro.sweep import Transports

log = logging.getLogger("ugro.recovery")

SCHEMA_VERSION = 1
# What an action printed, kept in the history: its last characters, where errors are.
OUTPUT_CHARS = 4000
# Beyond an action's own timeout, how long to wait for the transport to give up by itself.
GRACE_S = 2.0
# A scheduler call that failed is tried again after this long, not in a loop (ugro.slurm).
SCHEDULER_RETRY_S = 60.0


@dataclass(frozen=True, slots=True)
class _Unsynced:
    """A drain or resume the scheduler refused, to be tried again."""

    call: Literal["drain", "resume"]
    reason: str
    error: str
    retry_at: float


class RemediationStore:
    """remediation.json: each node's attempts and escalation; the daemon is its only writer."""

    def __init__(self, path: Path | None = None) -> None:
        """Use `path`, by default paths.remediation_file()."""
        self.path = path or paths.remediation_file()

    def read(self) -> dict[str, NodeRemediation]:
        """Every node's record; empty without a file; StateError when unreadable or corrupt."""
        raw = atomicfile.read(self.path)
        if raw is None:
            return {}
        try:
            return _parse(json.loads(raw))
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise StateError(f"{self.path}: corrupt ({type(exc).__name__}: {exc})") from None

    def write(self, records: Mapping[str, NodeRemediation]) -> None:
        """Replace the file with `records`."""
        document = {
            "schema_version": SCHEMA_VERSION,
            "updated_at": datetime.now(UTC).isoformat(),
            "nodes": {node: r.to_json() for node, r in sorted(records.items())},
        }
        atomicfile.write(self.path, json.dumps(document, indent=1).encode())


def _parse(document: Any) -> dict[str, NodeRemediation]:  # noqa: ANN401 - parsed JSON
    version = document.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ValueError(f"unknown schema version {version!r}")
    return {str(node): NodeRemediation.from_json(data) for node, data in document["nodes"].items()}


class Recoverer:
    """The daemon's hands: carries out each sweep's recovery plan."""

    def __init__(
        self,
        settings: RecoverySettings,
        scheduler: Scheduler,
        *,
        cordons: CordonStore | None = None,
        store: RemediationStore | None = None,
    ) -> None:
        """Act per `settings`, telling `scheduler` about every cordon placed or lifted."""
        self.settings = settings
        self.scheduler = scheduler
        self.cordons = cordons or CordonStore()
        self.store = store or RemediationStore()
        self.records: dict[str, NodeRemediation] = {}
        self.tasks: dict[tuple[str, str], asyncio.Task[None]] = {}
        self.finished: list[Event] = []
        self.breaker_open = False
        self.unsynced: dict[str, _Unsynced] = {}
        self.telling: dict[str, asyncio.Task[None]] = {}

    def load(self) -> None:
        """Continue from remediation.json; an unreadable one is moved aside, with a warning.

        An attempt that was running when the last daemon stopped counts as made.
        """
        try:
            records = self.store.read()
        except StateError as exc:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            aside = self.store.path.with_name(f"{self.store.path.name}.corrupt-{stamp}")
            with contextlib.suppress(OSError):
                self.store.path.rename(aside)
            log.warning("starting without remediation attempts: %s; moved to %s", exc, aside)
            return
        self.records = {
            node: replace(
                rem,
                attempts={
                    name: tuple(replace(a, done=True) for a in tries)
                    for name, tries in rem.attempts.items()
                },
            )
            for node, rem in records.items()
        }

    def take_events(self) -> list[Event]:
        """Events of actions and scheduler calls that finished since the last call."""
        events, self.finished = self.finished, []
        return events

    async def after_sweep(
        self,
        cfg: Config,
        shown: Mapping[str, NodeVerdict],
        swept: frozenset[str],
        transports: Transports,
        now: datetime,
    ) -> tuple[list[Event], list[ExternalCondition] | None]:
        """Carry out this sweep's plan; the events to record and the alerts that stand.

        Without a readable cordons file nothing is done, and the alerts stand as they were
        (None).
        """
        self.settings = cfg.recovery
        try:
            cordons = await asyncio.to_thread(self.cordons.read)
        except StateError as exc:
            log.error("recovery skipped: %s", exc)  # noqa: TRY400 - the message is complete
            return [], None
        plan = recovery.plan(
            recovery.Situation(
                settings=self.settings,
                fail_after=cfg.monitor.fail_after,
                nodes=[n.name for n in cfg.nodes],
                shown=shown,
                swept=swept,
                cordons=cordons,
                remediation=self.records,
                now=now,
                running=frozenset(k for k, t in self.tasks.items() if not t.done()),
            )
        )
        before = dict(self.records)
        self._resync(cordons)
        events: list[Event] = []
        for node in plan.reset:
            log.info("%s: its escalated cordon was lifted; remediation starts afresh", node)
            self.records.pop(node, None)
            events.append(Event(now, node, "escalation", {"state": "cleared"}))
        covered = await self._cordons(plan, set(cordons), now, events)
        for node, escalation in plan.escalate:
            self._escalate(node, replace(escalation, cordoned=node in covered), events)
        for node in plan.escalation_cordoned:
            rem = self.records[node]
            if rem.escalated is not None and node in covered:
                self.records[node] = replace(rem, escalated=replace(rem.escalated, cordoned=True))
        events += self._breaker(plan, now)
        workers = {w.name: w for w in cfg.nodes}
        for run in plan.run:
            events += self._start(run, workers[run.node], transports, now)
        self.records = recovery.prune(self.records, self.settings, now)
        if self.records != before:
            await self._persist()
        new = sum(1 for o in plan.cordon if o.node not in cordons)
        cordoned = sum(1 for n in cordons if n in workers) + new
        return events, self._conditions(len(cfg.nodes), cordoned, plan.held)

    async def _cordons(
        self, plan: recovery.Plan, covered: set[str], now: datetime, events: list[Event]
    ) -> set[str]:
        """Place and lift the plan's cordons; the nodes under a cordon afterwards."""
        for order in plan.cordon:
            if await self._cordon(order, now, events):
                covered.add(order.node)
        for node in plan.uncordon:
            await self._uncordon(node, now, events)
        return covered - set(plan.uncordon)

    async def _cordon(
        self, order: recovery.CordonOrder, now: datetime, events: list[Event]
    ) -> bool:
        """Place (or escalate) a cordon; whether the node is under one now, whoever's."""
        cordon = Cordon(order.node, "ugro", order.reason, now, escalated=order.escalated)
        try:
            existing = await asyncio.to_thread(
                self.cordons.cordon, cordon, replace_ugro=order.escalated
            )
        except StateError as exc:
            log.error("%s: cannot cordon: %s", order.node, exc)  # noqa: TRY400 - complete
            return False
        if existing is not None and not (order.escalated and existing.by == "ugro"):
            return True
        log.warning("%s: cordoned (%s)", order.node, order.reason)
        detail: dict[str, Any] = {
            "by": "ugro",
            "reason": order.reason,
            "escalated": order.escalated,
        }
        events.append(Event(now, order.node, "cordon", detail))
        self._tell_later("drain", order.node, order.reason)
        return True

    async def _uncordon(self, node: str, now: datetime, events: list[Event]) -> None:
        try:
            lifted = await asyncio.to_thread(self.cordons.uncordon, node, only_by="ugro")
        except StateError as exc:
            log.error("%s: cannot uncordon: %s", node, exc)  # noqa: TRY400 - complete
            return
        if lifted is None:
            return
        why = f"recovered: {self.settings.recover_after} passing checks in a row"
        log.info("%s: uncordoned, %s (was cordoned %s)", node, why, lifted.describe())
        detail: dict[str, Any] = {"by": "ugro", "reason": why, "lifted": lifted.to_json()}
        events.append(Event(now, node, "uncordon", detail))
        self._tell_later("resume", node)

    def _tell_later(self, call: Literal["drain", "resume"], node: str, reason: str = "") -> None:
        """Tell the scheduler in the background, after any call still running for `node`.

        A hung scontrol costs its own timeout, never the sweeps; what the scheduler said
        reaches the history as a `scheduler` event with the next sweep.
        """
        before = self.telling.get(node)

        async def tell() -> None:
            if before is not None:
                await asyncio.gather(before, return_exceptions=True)
            said = await self._tell(call, node, reason)
            self.finished.append(
                Event(datetime.now(UTC), node, "scheduler", {"call": call, **said})
            )

        self.telling[node] = asyncio.create_task(tell())

    async def _tell(
        self, call: Literal["drain", "resume"], node: str, reason: str = ""
    ) -> dict[str, Any]:
        """Drain or resume `node` off the event loop; what the scheduler said, for the history.

        A refusal or timeout is remembered and tried again SCHEDULER_RETRY_S later, with an
        alert meanwhile: a drain Slurm never got would leave jobs landing on a cordoned node.
        """
        name = self.scheduler.name
        try:
            if call == "drain":
                await asyncio.to_thread(self.scheduler.drain, node, reason)
                answer = True
            else:
                answer = await asyncio.to_thread(self.scheduler.resume, node)
        except SchedulerError as exc:
            log.error("%s: scheduler %s: %s", node, name, exc)  # noqa: TRY400 - complete
            retry_at = time.monotonic() + SCHEDULER_RETRY_S
            self.unsynced[node] = _Unsynced(call, reason, str(exc), retry_at)
            return {"name": name, "ok": False, "error": str(exc)}
        self.unsynced.pop(node, None)
        if answer is False:
            log.info("%s: scheduler %s: its drain is not ugro's; left as it is", node, name)
            return {"name": name, "ok": True, "note": "drain not placed by ugro; left"}
        return {"name": name, "ok": True}

    def _resync(self, cordons: Mapping[str, Cordon]) -> None:
        """Try again the scheduler calls that failed and are due; drop those overtaken.

        A drain is owed only while the node is still cordoned, a resume only while it is not.
        """
        for node, owed in list(self.unsynced.items()):
            if (owed.call == "drain") != (node in cordons):
                del self.unsynced[node]
                continue
            running = self.telling.get(node)
            if owed.retry_at <= time.monotonic() and (running is None or running.done()):
                self._tell_later(owed.call, node, owed.reason)

    def _escalate(self, node: str, escalation: recovery.Escalation, events: list[Event]) -> None:
        rem = self.records.get(node, NodeRemediation())
        self.records[node] = replace(rem, escalated=escalation)
        held = "" if escalation.cordoned else " (its cordon is held back by the breaker)"
        log.error("%s: escalated, no more actions%s: %s", node, held, escalation.reason)
        events.append(Event(escalation.at, node, "escalation", escalation.to_json()))

    def _breaker(self, plan: recovery.Plan, now: datetime) -> list[Event]:
        """Log and record the breaker opening and closing."""
        if plan.breaker_open == self.breaker_open:
            return []
        self.breaker_open = plan.breaker_open
        if plan.breaker_open:
            nodes = [o.node for o in plan.held]
            log.error(
                "cordon breaker open: cordoning %s would exceed max_cordoned_fraction %g; "
                "no automatic cordons until enough nodes recover",
                ", ".join(nodes),
                self.settings.max_cordoned_fraction,
            )
            return [Event(now, CLUSTER, "breaker", {"state": "open", "held": nodes})]
        log.info("cordon breaker closed")
        return [Event(now, CLUSTER, "breaker", {"state": "closed"})]

    def _conditions(
        self, total: int, cordoned: int, held: tuple[recovery.CordonOrder, ...]
    ) -> list[ExternalCondition]:
        """The alerts recovery keeps firing: the open breaker, escalations, failed drains."""
        conditions = [
            ExternalCondition(
                node,
                SCHEDULER_KEY,
                "warning",
                f"scheduler {self.scheduler.name} did not {owed.call} the node: {owed.error}; "
                f"retrying every {SCHEDULER_RETRY_S:g} s",
                (),
            )
            for node, owed in sorted(self.unsynced.items())
        ]
        if held:
            limit = self.settings.max_cordoned_fraction
            conditions.append(
                ExternalCondition(
                    CLUSTER,
                    BREAKER_KEY,
                    "critical",
                    f"cordon breaker open: {len(held)} bad nodes left uncordoned, "
                    f"{cordoned} of {total} already cordoned (max {limit:.0%})",
                    tuple(f"{o.node}: {o.reason}" for o in held),
                )
            )
        for node, rem in sorted(self.records.items()):
            if rem.escalated is None:
                continue
            tail = (
                "cordoned until a person uncordons it"
                if rem.escalated.cordoned
                else ("not cordoned: the breaker is open")
            )
            conditions.append(
                ExternalCondition(
                    node,
                    ESCALATION_KEY,
                    "critical",
                    f"remediation failed ({rem.escalated.action}); {tail}",
                    (rem.escalated.reason,),
                )
            )
        return conditions

    def _start(
        self, run: recovery.RunOrder, worker: Worker, transports: Transports, now: datetime
    ) -> list[Event]:
        """Record an attempt; in a dry run say what would run, else start it in the background."""
        action = run.action
        rem = self.records.get(run.node, NodeRemediation())
        attempt = Attempt(now, dry_run=run.dry_run, done=run.dry_run)
        tries = (*rem.attempts.get(action.name, ()), attempt)
        self.records[run.node] = replace(rem, attempts={**rem.attempts, action.name: tries})
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
        task = asyncio.create_task(self._execute(run, worker, transports, now, detail))
        self.tasks[(run.node, action.name)] = task
        task.add_done_callback(lambda _: self.tasks.pop((run.node, action.name), None))
        return []

    async def _execute(
        self,
        run: recovery.RunOrder,
        worker: Worker,
        transports: Transports,
        started_at: datetime,
        detail: dict[str, Any],
    ) -> None:
        """Run one action to its end or its timeout, and record what happened."""
        action = run.action
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
        duration = round(time.monotonic() - start, 3)
        self._finish(run, started_at, exit_status)
        tail = output[-OUTPUT_CHARS:]
        detail = {
            **detail,
            "exit_status": exit_status,
            "error": error,
            "duration_s": duration,
            "output": tail,
            "output_truncated": len(output) > OUTPUT_CHARS,
        }
        ok = error is None and exit_status == 0
        first = next((line for line in tail.splitlines() if line.strip()), "")
        log.log(
            logging.INFO if ok else logging.WARNING,
            "%s: %s %s in %.1f s%s",
            run.node,
            action.name,
            error or f"exited {exit_status}",
            duration,
            f": {first[:200]}" if first else "",
        )
        self.finished.append(Event(datetime.now(UTC), run.node, "remediation", detail))
        await self._persist()

    def _finish(
        self, run: recovery.RunOrder, started_at: datetime, exit_status: int | None
    ) -> None:
        rem = self.records.get(run.node)
        if rem is None:
            return
        tries = tuple(
            replace(a, exit_status=exit_status, done=True) if a.at == started_at else a
            for a in rem.attempts.get(run.action.name, ())
        )
        self.records[run.node] = replace(rem, attempts={**rem.attempts, run.action.name: tries})

    async def _persist(self) -> None:
        try:
            await asyncio.to_thread(self.store.write, dict(self.records))
        except StateError as exc:
            log.error("remediation attempts not saved: %s", exc)  # noqa: TRY400 - complete

    async def close(self) -> None:
        """Stop actions still running (a control command's process group is killed)."""
        tasks = [*self.tasks.values(), *self.telling.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
