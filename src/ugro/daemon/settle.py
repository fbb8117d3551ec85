"""Settling a sweep: the node checks that completed together, judged and recorded as one.

A sweep goes through its steps in order, each done by its own module: hysteresis
(`ugro.verdict.hysteresis`), recovery, alerts, the state file, the history and the log
(`ugro.daemon.logs`). Whatever fails in a step for one node is that node's problem: it is
contained (`ugro.daemon.containment`), and the other nodes of the sweep go on to the next step.
The state file is written once per sweep, with the writers' rule (`ugro.store.state`): what
another writer (`ugro check`) recorded meanwhile is folded in, never overwritten.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ugro import paths
from ugro.alerts.book import book_from_json, book_to_json
from ugro.alerts.engine import AlertEngine
from ugro.daemon import logs, outputs, sdnotify, service
from ugro.errors import StateError, UgroError
from ugro.recovery.recoverer import Recoverer
from ugro.recovery.scheduler import for_config
from ugro.store.episodes import WriteEpisode
from ugro.store.history_records import Event, Sample, Transition
from ugro.store.state import DaemonInfo, StateStore, newer
from ugro.verdict import hysteresis

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

    from ugro.alerts.book import ExternalCondition
    from ugro.config import Config
    from ugro.daemon.containment import Errors
    from ugro.daemon.schedule import Completed
    from ugro.model import NodeVerdict
    from ugro.recovery.scheduler import Scheduler
    from ugro.store.state import ClusterState, Fold
    from ugro.sweep import Transports

    #: One node's way through hysteresis: its check, and what hysteresis made of it.
    Judged = tuple[Completed, hysteresis.Step]

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 3600


class Settler:
    """What the daemon remembers between sweeps, and the steps that settle each sweep."""

    def __init__(self, cfg: Config, scheduler: Scheduler | None, errors: Errors) -> None:
        """Settle for `cfg`; `scheduler` (tests) is told about every cordon, else the config's."""
        self.errors = errors
        self.store = StateStore(paths.state_file())
        self.shown: dict[str, NodeVerdict] = {}
        self.history = outputs.history(cfg)
        # A full disk is logged once when writes start failing and once when they succeed.
        self.state_writes = WriteEpisode("the state")
        self.history_writes = WriteEpisode("the history")
        self.engine = AlertEngine(cfg.alerts)
        self.dispatcher = outputs.dispatcher(cfg)
        self.next_prune = 0.0
        # A scheduler given here (tests) stays; one built from the config follows reloads.
        self.own_scheduler = scheduler is None
        self.recoverer = Recoverer(cfg.recovery, scheduler or for_config(cfg))
        self.info = DaemonInfo(
            pid=os.getpid(),
            started_at=datetime.now(UTC),
            running=True,
            interval_s=cfg.monitor.interval_s,
            config=str(cfg.source) if cfg.source else None,
            started_by=service.started_by(),
        )

    def restore(self, names: Collection[str]) -> None:
        """Continue the hysteresis of the nodes the state file already knows, and remediation."""
        self.recoverer.load()
        try:
            state = self.store.read()
        except StateError as exc:
            log.warning("starting without the previous state: %s", exc)
            return
        if state is not None:
            self.shown = {name: v for name, v in state.nodes.items() if name in names}
            if state.alerts:
                try:
                    self.engine.book = book_from_json(state.alerts)
                except (KeyError, TypeError, ValueError) as exc:
                    log.warning("starting without the previous alerts: %s", exc)

    async def settle(
        self, completed: list[Completed], cfg: Config, transports: Transports
    ) -> dict[str, float]:
        """Settle one sweep of `completed` checks; each settled node's delay to its next check."""
        now = datetime.now(UTC)
        names = frozenset(n.name for n in cfg.nodes)
        recorded = await self._catch_up(names)
        judged, known = self._judge([c for c in completed if c.name in names], cfg)
        if not judged:
            return {}
        changes = recorded + [_transition(step) for _, step in judged if step.changed]
        events, conditions = await self._recover(judged, cfg, transports, now)
        alerts = self._alert(judged, changes, conditions, len(cfg.nodes), now)
        self.info = dataclasses.replace(
            self.info,
            sweeps=self.info.sweeps + 1,
            checks=self.info.checks + len(judged),
            last_sweep_at=now,
            last_sweep_duration_s=round(time.monotonic() - judged[0][0].started, 3),
            interval_s=cfg.monitor.interval_s,
        )
        persisted = await self._persist(judged, known, cfg, alerts, names)
        samples = [Sample(_as_written(step.verdict, persisted), step.delay_s) for _, step in judged]
        await self._record_history(
            samples,
            changes + self._adopt(persisted),
            [*self.recoverer.take_events(), *events],
            cfg,
        )
        self._report(len(judged), names)
        return {c.name: step.delay_s for c, step in judged}

    async def _catch_up(self, names: frozenset[str]) -> list[Transition]:
        """Take in what another writer (`ugro check`) recorded since the daemon last wrote.

        Its checks then count in the hysteresis of this sweep like the daemon's own.
        """
        if not self.store.changed():
            return []
        try:
            state = await asyncio.to_thread(self.store.read)
        except StateError as exc:
            log.warning("cannot read what another writer recorded: %s", exc)
            return []
        return self._adopt(_present(state, names)) if state is not None else []

    def _judge(
        self, completed: list[Completed], cfg: Config
    ) -> tuple[list[Judged], dict[str, datetime | None]]:
        """Fold each check into what its node shows; when each was last checked before it."""
        judged: list[Judged] = []
        known: dict[str, datetime | None] = {}
        now = datetime.now(UTC)
        for done in completed:
            previous = self.shown.get(done.name)
            if previous is not None and newer(previous, done.verdict, now):
                # Another writer checked the node after this check started: that one stands.
                continue
            try:
                step = hysteresis.advance(
                    previous, done.verdict, cfg.monitor, done.verdict.last_check
                )
            except Exception as exc:  # noqa: BLE001 - one node's fault stays that node's
                self.errors.contain("judging", exc, done.name)
                continue
            try:
                logs.step(step, cfg.monitor)
            except Exception as exc:  # noqa: BLE001 - a log line is no reason to lose a verdict
                self.errors.contain("logging the verdict of", exc, done.name)
            known[done.name] = previous.last_check if previous else None
            self.shown[done.name] = step.verdict
            judged.append((done, step))
        return judged, known

    async def _recover(
        self, judged: list[Judged], cfg: Config, transports: Transports, now: datetime
    ) -> tuple[list[Event], list[ExternalCondition] | None]:
        """Cordons and remediation after a sweep; a failure of them never stops monitoring.

        No conditions (None) leaves recovery's alerts as they were.
        """
        try:
            return await self.recoverer.after_sweep(
                cfg, self.shown, frozenset(c.name for c, _ in judged), transports, now
            )
        except Exception as exc:  # noqa: BLE001 - monitoring must outlive a recovery bug
            self.errors.contain("recovery", exc)
            return [], None

    def _alert(
        self,
        judged: list[Judged],
        changes: list[Transition],
        conditions: list[ExternalCondition] | None,
        node_count: int,
        now: datetime,
    ) -> dict[str, Any] | None:
        """Raise, remind and resolve alerts and hand them to the sinks without waiting.

        The alert state to persist; None (leave it as it was) when alerting failed.
        """
        try:
            verdicts = [step.verdict for _, step in judged]
            events = self.engine.after_sweep(verdicts, changes, conditions, node_count, now)
            logs.alerts(events)
            self.dispatcher.submit(events)
            self.dispatcher.resend(self.engine.firing_events())
            return self.alert_state()
        except Exception as exc:  # noqa: BLE001 - monitoring must outlive an alerting bug
            self.errors.contain("alerting", exc)
            return None

    def alert_state(self) -> dict[str, Any]:
        """The alert book and delivery counters as the state file keeps them.

        Counters are as of now: this sweep's events are still on their way.
        """
        return {**book_to_json(self.engine.book), "delivery": self.dispatcher.stats()}

    def _counted(self) -> DaemonInfo:
        """The daemon's info with its error counters as of now."""
        return dataclasses.replace(self.info, errors=self.errors.count, log_errors=logs.failures())

    async def _persist(
        self,
        judged: list[Judged],
        known: Mapping[str, datetime | None],
        cfg: Config,
        alerts: dict[str, Any] | None,
        names: frozenset[str],
    ) -> dict[str, NodeVerdict]:
        """Write the sweep to the state file; every node's verdict as the file now holds it.

        A verdict that cannot be written (a bug: it does not serialise) is left out, and
        the others are written without it. Nothing written: empty.
        """
        verdicts = [step.verdict for _, step in judged]
        fold = _refold({c.name: c.verdict for c, _ in judged}, known, cfg, self.errors)
        for attempt in range(2):
            try:
                state = await asyncio.to_thread(
                    self.store.update,
                    verdicts,
                    keep=names,
                    daemon=self._counted(),
                    alerts=alerts,
                    fold=fold,
                )
            except UgroError as exc:
                self.state_writes.failed(exc)
                return {}
            except Exception as exc:  # noqa: BLE001 - one node's verdict must not block the rest
                if attempt:
                    self.errors.contain("persisting the state", exc)
                    return {}
                verdicts = self._writable(verdicts)
            else:
                self.state_writes.written()
                return _present(state, names)
        return {}

    def _writable(self, verdicts: list[NodeVerdict]) -> list[NodeVerdict]:
        """The verdicts that serialise; each one that does not is contained."""
        writable = []
        for verdict in verdicts:
            try:
                json.dumps(verdict.to_json())
            except Exception as exc:  # noqa: BLE001 - that node's problem, not the sweep's
                self.errors.contain("persisting the verdict of", exc, verdict.name)
            else:
                writable.append(verdict)
        return writable

    def _adopt(self, persisted: Mapping[str, NodeVerdict]) -> list[Transition]:
        """Show what the state file holds where it is newer; the changes another writer made.

        That is this sweep's verdicts as written (folded into another writer's record when
        there was one) and any node that another writer checked since the daemon did.
        """
        changes = []
        for name, stored in persisted.items():
            mine = self.shown.get(name)
            if mine is not None and stored.last_check < mine.last_check:
                continue
            if (
                mine is not None
                and stored.last_check > mine.last_check
                and stored.status is not mine.status
            ):
                reason = stored.alerts[0].text if stored.alerts else "all checks pass"
                log.info(
                    "%s: %s -> %s (checked by another ugro command: %s)",
                    name,
                    mine.status.value,
                    stored.status.value,
                    reason,
                )
                changes.append(
                    Transition(
                        stored.last_check, name, mine.status.value, stored.status.value, reason
                    )
                )
            self.shown[name] = stored
        return changes

    async def _record_history(
        self,
        samples: list[Sample],
        changes: list[Transition],
        events: list[Event],
        cfg: Config,
    ) -> None:
        """Append the sweep to the history, and prune it once an hour; failures are logged.

        A node whose sample cannot be written is contained; the others are written.
        """
        if self.history is None:
            return
        history = self.history
        failure: UgroError | None = None
        try:
            await asyncio.to_thread(history.record, samples, changes)
        except UgroError as exc:
            failure = exc
        except Exception:  # noqa: BLE001 - find the node at fault; record the others
            failed = await asyncio.to_thread(outputs.record_each, history, samples, changes)
            for name, fault in failed:
                self.errors.contain("recording the history of", fault, name)
        try:
            if events:
                await asyncio.to_thread(history.record_events, events)
            if time.monotonic() >= self.next_prune:
                self.next_prune = time.monotonic() + PRUNE_EVERY_S
                cutoff = datetime.now(UTC) - timedelta(days=cfg.history.retention_days)
                gone = await asyncio.to_thread(history.prune, cutoff)
                log.debug("history: pruned %d samples older than %s", gone, cutoff)
        except UgroError as exc:
            failure = failure or exc
        except Exception as exc:  # noqa: BLE001 - monitoring must outlive a history bug
            self.errors.contain("recording events in the history", exc)
        if failure is None:
            self.history_writes.written()
        else:
            self.history_writes.failed(failure)

    def _report(self, checked: int, names: frozenset[str]) -> None:
        """The sweep's log line and the STATUS systemd shows."""
        try:
            cluster = logs.summary(self.shown, names)
            logs.sweep(self.info.sweeps, checked, self.info.last_sweep_duration_s or 0.0, cluster)
            sdnotify.notify(f"STATUS={cluster}")
        except Exception as exc:  # noqa: BLE001 - a log line is no reason to stop
            self.errors.contain("reporting the sweep", exc)

    async def write_final(self, names: Collection[str]) -> None:
        """Write the state once more as the daemon stops: the schedule, alerts, running false."""
        self.info = dataclasses.replace(self.info, running=False)
        try:
            await asyncio.to_thread(
                self.store.update,
                [],
                keep=names,
                daemon=self._counted(),
                alerts=self.alert_state(),
            )
        except UgroError as exc:
            self.state_writes.failed(exc)
        except Exception as exc:  # noqa: BLE001 - stopping must not fail on a bug either
            log.error("could not persist the state: %s", exc)  # noqa: TRY400 - one line


def _refold(
    raw: Mapping[str, NodeVerdict],
    known: Mapping[str, datetime | None],
    cfg: Config,
    errors: Errors,
) -> Fold:
    """The daemon's fold: its own verdict, unless another writer recorded the node since.

    Then the daemon's check (`raw`) is folded into that record instead, so that neither
    writer's check is skipped by the hysteresis. `known` is when the node was last checked
    before, as the daemon knew it.
    """

    def fold(stored: NodeVerdict | None, mine: NodeVerdict) -> NodeVerdict:
        base = known.get(mine.name)
        if stored is None or (base is not None and stored.last_check <= base):
            return mine
        observed = raw[mine.name]
        try:
            return hysteresis.advance(stored, observed, cfg.monitor, observed.last_check).verdict
        except Exception as exc:  # noqa: BLE001 - one node's fault stays that node's
            errors.contain("judging", exc, mine.name)
            return mine

    return fold


def _as_written(verdict: NodeVerdict, persisted: Mapping[str, NodeVerdict]) -> NodeVerdict:
    """`verdict` as the state file holds it (folded into another writer's record), if it does."""
    stored = persisted.get(verdict.name)
    return stored if stored is not None and stored.last_check == verdict.last_check else verdict


def _present(state: ClusterState, names: frozenset[str]) -> dict[str, NodeVerdict]:
    """The configured nodes' verdicts in `state`."""
    return {name: v for name, v in state.nodes.items() if name in names}


def _transition(step: hysteresis.Step) -> Transition:
    """The history's record of a step that moved a node's shown status."""
    verdict = step.verdict
    return Transition(
        verdict.last_check, verdict.name, step.before.value, verdict.status.value, step.reason
    )
