"""The monitor daemon (`ugro daemon run`): its loop, its sweeps, signals and shutdown.

It checks every node when it is due, concurrently; persists after every sweep; sleeps until
the next node is due. Sweeps never overlap. SIGTERM/SIGINT abandon the sweep in flight,
write the state and exit 0 within seconds; SIGHUP reloads the config, keeping the old one
when the new one is bad. Under systemd it speaks sd_notify (Type=notify, WatchdogSec).

A sweep is a sequence of steps, each done by its own module: the checks (`ugro.sweep`),
hysteresis, recovery, alerts, the state file, the history and the log (`ugro.daemon.logs`).
The daemon hands each step's results to the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ugro import config, paths, sweep
from ugro.alerts import sinks
from ugro.alerts.book import book_from_json, book_to_json
from ugro.alerts.delivery import Dispatcher
from ugro.alerts.engine import AlertEngine
from ugro.daemon import logs, sdnotify, service
from ugro.daemon.pidfile import PidLock
from ugro.errors import ConfigError, StateError, UgroError
from ugro.recovery.recoverer import Recoverer
from ugro.recovery.scheduler import for_config
from ugro.store.history import History, path_for
from ugro.store.history_records import Event, Sample, Transition
from ugro.store.state import DaemonInfo, StateStore
from ugro.verdict import hysteresis

if TYPE_CHECKING:
    from pathlib import Path

    from ugro.alerts.book import ExternalCondition
    from ugro.config import Config, Worker
    from ugro.httpserver import BoundedServer
    from ugro.model import NodeVerdict
    from ugro.recovery.scheduler import Scheduler

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 3600


class Daemon:
    """One running monitor: its config, schedule, hysteresis memory and transports."""

    def __init__(
        self, config_path: Path | None, cfg: Config, scheduler: Scheduler | None = None
    ) -> None:
        """Monitor the nodes of `cfg`, reloading from `config_path` on SIGHUP.

        `scheduler` is told about every cordon the daemon places or lifts.
        """
        self.config_path = config_path
        self.cfg = cfg
        self.store = StateStore(paths.state_file())
        self.transports = sweep.Transports()
        self.shown: dict[str, NodeVerdict] = {}
        self.due: dict[str, float] = {}
        self.stopping = asyncio.Event()
        self.wake = asyncio.Event()
        self.reload_requested = False
        self.history = _open_history(cfg)
        self.engine = AlertEngine(cfg.alerts)
        self.dispatcher = _dispatcher(cfg)
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

    async def run(self) -> None:
        """Sweep until asked to stop; then write the state and close every connection."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop, sig)
        loop.add_signal_handler(signal.SIGHUP, self._request_reload)
        self._restore()
        now = time.monotonic()
        self.due = {n.name: now for n in self.cfg.nodes}
        exporter = self._start_exporter()
        watchdog = asyncio.create_task(self._watchdog())
        self.dispatcher.start()
        sdnotify.notify(f"READY=1\nSTATUS=monitoring {len(self.cfg.nodes)} nodes")
        log.info(
            "monitor started (pid %d): %d nodes, every %g s, config %s",
            os.getpid(),
            len(self.cfg.nodes),
            self.cfg.monitor.interval_s,
            self.cfg.source or "embedded default (this machine)",
        )
        try:
            while not self.stopping.is_set():
                if self.reload_requested:
                    await self._reload()
                # Nodes due within a moment join this sweep rather than trail it in their own.
                soon = time.monotonic() + min(0.5, self.cfg.monitor.interval_s / 10)
                batch = [n for n in self.cfg.nodes if self.due[n.name] <= soon]
                if batch:
                    await self._sweep(batch)
                    continue
                await self._sleep(min(self.due.values()) - time.monotonic())
        finally:
            watchdog.cancel()
            await self._shut_down(exporter)

    async def _shut_down(self, exporter: BoundedServer | None) -> None:
        """Stop what runs beside the sweeps, close every connection, and write the state."""
        await self.recoverer.close()
        await self.dispatcher.close()
        if exporter is not None:
            exporter.shutdown()
            exporter.server_close()
        sdnotify.notify("STOPPING=1")
        await self.transports.close()
        if self.history is not None:
            with contextlib.suppress(UgroError):
                self.history.record_events(self.recoverer.take_events())
            self.history.close()
        self.info = dataclasses.replace(self.info, running=False)
        with contextlib.suppress(UgroError):
            await asyncio.to_thread(
                self.store.update,
                [],
                keep=self.due,
                daemon=self.info,
                alerts=self._alert_state(),
            )
        log.info("monitor stopped")

    def _start_exporter(self) -> BoundedServer | None:
        """Serve /metrics when enabled; a taken port stops the start with a clear message."""
        settings = self.cfg.exporter
        if not settings.enabled:
            return None
        from ugro import exporter

        try:
            server = exporter.serve(self.store.path, settings.address, settings.port)
        except OSError as exc:
            raise UgroError(
                f"cannot serve metrics on {settings.address}:{settings.port}: {exc.strerror}; "
                "set exporter.port in cluster.yaml, or exporter.enabled: false"
            ) from exc
        log.info("serving metrics on http://%s:%d/metrics", settings.address, settings.port)
        return server

    def _stop(self, sig: signal.Signals) -> None:
        log.info("%s received: stopping", sig.name)
        self.stopping.set()
        self.wake.set()

    def _request_reload(self) -> None:
        log.info("SIGHUP received: reloading the config")
        self.reload_requested = True
        self.wake.set()

    async def _sleep(self, seconds: float) -> None:
        """Sleep until a node is due, a signal arrives, or `seconds` pass."""
        self.wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), max(0.0, seconds))

    def _restore(self) -> None:
        """Continue the hysteresis of the nodes the state file already knows, and remediation."""
        self.recoverer.load()
        try:
            state = self.store.read()
        except StateError as exc:
            log.warning("starting without the previous state: %s", exc)
            return
        names = {n.name for n in self.cfg.nodes}
        if state is not None:
            self.shown = {name: v for name, v in state.nodes.items() if name in names}
            if state.alerts:
                try:
                    self.engine.book = book_from_json(state.alerts)
                except (KeyError, TypeError, ValueError) as exc:
                    log.warning("starting without the previous alerts: %s", exc)

    async def _sweep(self, batch: list[Worker]) -> None:
        """Check `batch`, then hand the verdicts on step by step; abandon on stop."""
        now = datetime.now(UTC)
        started = time.monotonic()
        verdicts = await self._check(batch)
        if verdicts is None:
            log.info("sweep abandoned: stopping")
            return
        steps = self._advance(verdicts, now, started)
        duration = time.monotonic() - started
        self.info = dataclasses.replace(
            self.info,
            sweeps=self.info.sweeps + 1,
            last_sweep_at=now,
            last_sweep_duration_s=round(duration, 3),
            interval_s=self.cfg.monitor.interval_s,
        )
        changes = [_transition(s, now) for s in steps if s.changed]
        events, conditions = await self._recover(steps, now)
        alerts = self._alert(steps, changes, now, conditions)
        await self._persist(steps, alerts)
        await self._record_history(
            [Sample(s.verdict, s.delay_s) for s in steps],
            changes,
            [*self.recoverer.take_events(), *events],
        )
        cluster = logs.summary(self.shown, self.due)
        logs.sweep(self.info.sweeps, len(batch), duration, cluster)
        sdnotify.notify(f"STATUS={cluster}")

    async def _check(self, batch: list[Worker]) -> list[NodeVerdict] | None:
        """Run the checks of `batch` concurrently; None when a stop cut them short."""
        checked = {name: v.last_check for name, v in self.shown.items()}
        task = asyncio.create_task(sweep.sweep(batch, self.transports, checked))
        stop = asyncio.create_task(self.stopping.wait())
        await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return None
        return task.result()

    def _advance(
        self, verdicts: list[NodeVerdict], now: datetime, started: float
    ) -> list[hysteresis.Step]:
        """Fold each verdict into what its node shows, and schedule the node's next check."""
        steps = []
        for verdict in verdicts:
            step = hysteresis.advance(self.shown.get(verdict.name), verdict, self.cfg.monitor, now)
            logs.step(step, self.cfg.monitor)
            self.shown[verdict.name] = step.verdict
            self.due[verdict.name] = started + step.delay_s
            steps.append(step)
        return steps

    async def _recover(
        self, steps: list[hysteresis.Step], now: datetime
    ) -> tuple[list[Event], list[ExternalCondition] | None]:
        """Cordons and remediation after a sweep; a failure of them never stops monitoring.

        No conditions (None) leaves recovery's alerts as they were.
        """
        try:
            return await self.recoverer.after_sweep(
                self.cfg,
                self.shown,
                frozenset(s.verdict.name for s in steps),
                self.transports,
                now,
            )
        except Exception as exc:  # noqa: BLE001 - monitoring must outlive a recovery bug
            log.error(  # noqa: TRY400 - one line in the journal, not a traceback
                "recovery failed: %s: %s (please report this)", type(exc).__name__, exc
            )
            return [], None

    def _alert(
        self,
        steps: list[hysteresis.Step],
        changes: list[Transition],
        now: datetime,
        conditions: list[ExternalCondition] | None,
    ) -> dict[str, Any]:
        """Raise, remind and resolve alerts; hand them to the sinks without waiting."""
        verdicts = [s.verdict for s in steps]
        events = self.engine.after_sweep(verdicts, changes, conditions, len(self.cfg.nodes), now)
        logs.alerts(events)
        self.dispatcher.submit(events)
        self.dispatcher.resend(self.engine.firing_events())
        return self._alert_state()

    def _alert_state(self) -> dict[str, Any]:
        """The alert book and delivery counters as the state file keeps them.

        Counters are as of now: this sweep's events are still on their way.
        """
        return {**book_to_json(self.engine.book), "delivery": self.dispatcher.stats()}

    async def _persist(self, steps: list[hysteresis.Step], alerts: dict[str, Any]) -> None:
        """Write the swept verdicts, the schedule, the daemon and the alerts to the state file."""
        try:
            await asyncio.to_thread(
                self.store.update,
                [s.verdict for s in steps],
                keep=self.due,
                daemon=self.info,
                alerts=alerts,
            )
        except UgroError as exc:
            log.error("could not persist the state: %s", exc)  # noqa: TRY400 - the message is complete

    async def _record_history(
        self, samples: list[Sample], changes: list[Transition], events: list[Event]
    ) -> None:
        """Append the sweep to the history, and prune it once an hour; failures are logged."""
        if self.history is None:
            return
        try:
            await asyncio.to_thread(self.history.record, samples, changes)
            if events:
                await asyncio.to_thread(self.history.record_events, events)
            if time.monotonic() >= self.next_prune:
                self.next_prune = time.monotonic() + PRUNE_EVERY_S
                cutoff = datetime.now(UTC) - timedelta(days=self.cfg.history.retention_days)
                gone = await asyncio.to_thread(self.history.prune, cutoff)
                log.debug("history: pruned %d samples older than %s", gone, cutoff)
        except UgroError as exc:
            log.error("history: %s", exc)  # noqa: TRY400 - the message is complete

    async def _reload(self) -> None:
        """Apply a changed config; a bad one keeps the running config and says why."""
        self.reload_requested = False
        try:
            new = await asyncio.to_thread(config.load, self.config_path)
        except ConfigError as exc:
            log.error("config reload failed, keeping the running config: %s", exc)  # noqa: TRY400
            return
        # Connections are keyed by node name; a changed address or key must not reuse one.
        await self.transports.close()
        self.transports = sweep.Transports()
        now = time.monotonic()
        for section in ("exporter", "history"):
            if getattr(new, section) != getattr(self.cfg, section):
                log.warning("config reload: %s settings take effect at the next start", section)
        if new.alerts.sinks != self.cfg.alerts.sinks:
            try:
                dispatcher = _dispatcher(new)
            except UgroError as exc:
                log.error("config reload: sinks unchanged: %s", exc)  # noqa: TRY400
            else:
                await self.dispatcher.close()
                self.dispatcher = dispatcher
                self.dispatcher.start()
        self.engine.settings = new.alerts
        if self.own_scheduler:
            self.recoverer.scheduler = for_config(new)
        self.cfg = new
        self.due = {n.name: self.due.get(n.name, now) for n in new.nodes}
        self.shown = {k: v for k, v in self.shown.items() if k in self.due}
        log.info("config reloaded: %d nodes", len(new.nodes))

    async def _watchdog(self) -> None:
        """Ping systemd's watchdog while the event loop is alive."""
        period = sdnotify.watchdog_period()
        if period is None:
            return
        while True:
            sdnotify.notify("WATCHDOG=1")
            await asyncio.sleep(period)


def _transition(step: hysteresis.Step, at: datetime) -> Transition:
    """The history's record of a step that moved a node's shown status."""
    verdict = step.verdict
    return Transition(at, verdict.name, step.before.value, verdict.status.value, step.reason)


def _dispatcher(cfg: Config) -> Dispatcher:
    """Delivery to the configured sinks; a sink that cannot be built stops the start."""
    return Dispatcher([(settings, sinks.build(settings)) for settings in cfg.alerts.sinks])


def _open_history(cfg: Config) -> History | None:
    """The history database, unless it is turned off."""
    return History(path_for(cfg.history)) if cfg.history.enabled else None


def run(
    config_path: Path | None,
    *,
    log_file: Path | None,
    to_stderr: bool,
    scheduler: Scheduler | None = None,
) -> int:
    """`ugro daemon run`: 0 after a clean stop; raises UgroError when it cannot start."""
    cfg = config.load(config_path)
    lock = PidLock(paths.pid_file())
    lock.acquire()
    try:
        where = logs.setup_logging(cfg.monitor, log_file, to_stderr=to_stderr)
        log.debug("logging to %s", where)
        asyncio.run(Daemon(config_path, cfg, scheduler).run())
    finally:
        lock.release()
    return 0
