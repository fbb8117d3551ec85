"""Carrying out each sweep's recovery plan: the daemon's hands.

`ugro.recovery.plan` decides; after every sweep the daemon calls `Recoverer.after_sweep`,
which reads the cordons file, plans, and has each part carried out: cordons placed and
lifted, and the scheduler told (`cordoning`); escalations and attempts recorded in
remediation.json (`records`); the due actions started in the background (`actions`). The
cordon breaker and the escalations are logged, kept in the history and alerted on here.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from ugro.alerts.book import BREAKER_KEY, ESCALATION_KEY, ExternalCondition
from ugro.errors import StateError
from ugro.model import CLUSTER
from ugro.recovery import plan as recovery
from ugro.recovery.actions import ActionRunner
from ugro.recovery.cordoning import Cordoner
from ugro.recovery.records import Ledger, RemediationStore
from ugro.store.cordons import CordonStore
from ugro.store.history_records import Event

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime

    from ugro.config import Config, RecoverySettings
    from ugro.model import NodeVerdict
    from ugro.recovery.scheduler import Scheduler
    from ugro.sweep import Transports

log = logging.getLogger(__name__)


class Recoverer:
    """Carries out each sweep's recovery plan, remembering what it did across sweeps."""

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
        # Events of actions and scheduler calls that finished between sweeps.
        self.finished: list[Event] = []
        self.ledger = Ledger(store or RemediationStore())
        self.cordoner = Cordoner(cordons or CordonStore(), scheduler, self.finished)
        self.runner = ActionRunner(self.ledger, self.finished)
        self.breaker_open = False

    @property
    def scheduler(self) -> Scheduler:
        """The workload manager told about cordons; replaced when a reload changes it."""
        return self.cordoner.scheduler

    @scheduler.setter
    def scheduler(self, scheduler: Scheduler) -> None:
        self.cordoner.scheduler = scheduler

    def load(self) -> None:
        """Continue from remediation.json (`Ledger.load`)."""
        self.ledger.load()

    def take_events(self) -> list[Event]:
        """Events of actions and scheduler calls that finished since the last call."""
        events = list(self.finished)
        self.finished.clear()
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
            cordons = await self.cordoner.read()
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
                remediation=self.ledger.records,
                now=now,
                running=self.runner.running(),
            )
        )
        before = dict(self.ledger.records)
        self.cordoner.resync(cordons)
        events = self._reset(plan, now)
        covered, changed = await self.cordoner.apply(
            plan, set(cordons), self.settings.recover_after, now
        )
        events += changed
        events += self._escalate(plan, covered)
        events += self._breaker(plan, now)
        workers = {w.name: w for w in cfg.nodes}
        for run in plan.run:
            events += self.runner.start(run, workers[run.node], transports, now)
        self.ledger.prune(self.settings, now)
        if self.ledger.records != before:
            await self.ledger.save()
        new = sum(1 for o in plan.cordon if o.node not in cordons)
        cordoned = sum(1 for n in cordons if n in workers) + new
        conditions = self._conditions(len(cfg.nodes), cordoned, plan.held)
        return events, [*self.cordoner.out_of_sync(), *conditions]

    def _reset(self, plan: recovery.Plan, now: datetime) -> list[Event]:
        """Start afresh with the nodes whose escalated cordon a person lifted."""
        events = []
        for node in plan.reset:
            log.info("%s: its escalated cordon was lifted; remediation starts afresh", node)
            self.ledger.clear(node)
            events.append(Event(now, node, "escalation", {"state": "cleared"}))
        return events

    def _escalate(self, plan: recovery.Plan, covered: set[str]) -> list[Event]:
        """Record the plan's escalations, and which escalated nodes are cordoned now."""
        events = []
        for node, escalation in plan.escalate:
            done = replace(escalation, cordoned=node in covered)
            self.ledger.escalate(node, done)
            held = "" if done.cordoned else " (its cordon is held back by the breaker)"
            log.error("%s: escalated, no more actions%s: %s", node, held, done.reason)
            events.append(Event(done.at, node, "escalation", done.to_json()))
        for node in plan.escalation_cordoned:
            if node in covered:
                self.ledger.mark_cordoned(node)
        return events

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
        """The alerts the breaker and the escalations keep firing."""
        conditions = []
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
        for node, rem in sorted(self.ledger.records.items()):
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

    async def close(self) -> None:
        """Stop actions and scheduler calls still running."""
        await asyncio.gather(self.runner.close(), self.cordoner.close())
