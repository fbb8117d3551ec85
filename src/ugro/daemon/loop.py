"""The monitor daemon (`ugro daemon run`): sweeps, hysteresis, persistence, signals, logging.

It checks every node when it is due, concurrently; persists after every sweep; sleeps until
the next node is due. Sweeps never overlap. SIGTERM/SIGINT abandon the sweep in flight,
write the state and exit 0 within seconds; SIGHUP reloads the config, keeping the old one
when the new one is bad. Under systemd it speaks sd_notify (Type=notify, WatchdogSec).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import logging.handlers
import os
import signal
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ugro import config, paths
from ugro import sweep as monitor
from ugro.alerts import sinks
from ugro.alerts.delivery import Dispatcher
from ugro.alerts.engine import AlertEngine, book_from_json, book_to_json
from ugro.daemon import sdnotify
from ugro.daemon.pidfile import PidLock
from ugro.errors import ConfigError, StateError, UgroError
from ugro.model import BAD_STATUSES, NodeStatus, NodeVerdict
from ugro.recovery.recoverer import Recoverer
from ugro.recovery.scheduler import for_config
from ugro.store.history import Event, History, Sample, Transition, path_for
from ugro.store.state import DaemonInfo, StateStore
from ugro.verdict import hysteresis

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from ugro.alerts.engine import ExternalCondition
    from ugro.config import Config, MonitorSettings, Worker
    from ugro.recovery.scheduler import Scheduler

log = logging.getLogger("ugro.daemon")

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"
PRUNE_EVERY_S = 3600


def setup_logging(settings: MonitorSettings, log_file: Path | None, *, to_stderr: bool) -> Path:
    """Log to a size-rotated file and, unless told otherwise, to stderr (the journal)."""
    path = log_file or (
        Path(settings.log_file).expanduser() if settings.log_file else paths.log_file()
    )
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        handler: logging.Handler = logging.handlers.RotatingFileHandler(
            path,
            maxBytes=settings.log_max_bytes,
            backupCount=settings.log_backups,
            encoding="utf-8",
        )
    except OSError as exc:
        raise UgroError(f"cannot open the log file {path}: {exc.strerror}") from None
    handlers = [handler]
    if to_stderr:
        handlers.append(logging.StreamHandler())
    root = logging.getLogger("ugro")
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    for h in handlers:
        h.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(h)
    root.setLevel(settings.log_level.upper())
    root.propagate = False
    return path


def started_by() -> str:
    """How this process was started, for `ugro daemon status`."""
    if os.environ.get("INVOCATION_ID") and os.environ.get("NOTIFY_SOCKET"):
        return "systemd"
    if os.environ.get("UGRO_DAEMON_DETACHED"):
        return "ugro daemon start"
    return "foreground"


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
        self.transports = monitor.Transports()
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
            started_by=started_by(),
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

    def _start_exporter(self) -> WSGIServer | None:
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
            ) from None
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
        """Check `batch` concurrently, fold in hysteresis, persist, log; abandon on stop."""
        started_wall = datetime.now(UTC)
        started = time.monotonic()
        checked = {name: v.last_check for name, v in self.shown.items()}
        task = asyncio.create_task(monitor.sweep(batch, self.transports, checked))
        stop = asyncio.create_task(self.stopping.wait())
        await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            log.info("sweep abandoned: stopping")
            return
        policy = self.cfg.monitor
        steps = []
        changes = []
        for verdict in task.result():
            previous = self.shown.get(verdict.name)
            step = hysteresis.advance(previous, verdict, policy, started_wall)
            before = previous.status if previous else NodeStatus.UNKNOWN
            if step.verdict.status is not before:
                changes.append(
                    Transition(
                        started_wall,
                        verdict.name,
                        before.value,
                        step.verdict.status.value,
                        _reason(step.verdict),
                    )
                )
            self._log_step(before, step)
            self.shown[verdict.name] = step.verdict
            self.due[verdict.name] = started + step.delay_s
            steps.append(step)
        duration = time.monotonic() - started
        self.info = dataclasses.replace(
            self.info,
            sweeps=self.info.sweeps + 1,
            last_sweep_at=started_wall,
            last_sweep_duration_s=round(duration, 3),
            interval_s=policy.interval_s,
        )
        events, conditions = await self._recover(steps, started_wall)
        alerts = self._alert([s.verdict for s in steps], changes, started_wall, conditions)
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
        await self._record_history(
            [Sample(s.verdict, s.delay_s) for s in steps],
            changes,
            [*self.recoverer.take_events(), *events],
        )
        counts = Counter(self.shown[n].status.value for n in self.due if n in self.shown)
        summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        log.info(
            "sweep %d: %d node%s in %.2f s; cluster: %s",
            self.info.sweeps,
            len(batch),
            "" if len(batch) == 1 else "s",
            duration,
            summary,
        )
        sdnotify.notify(f"STATUS={summary}")

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
        verdicts: list[NodeVerdict],
        changes: list[Transition],
        now: datetime,
        conditions: list[ExternalCondition] | None,
    ) -> dict[str, Any]:
        """Raise, remind and resolve alerts; hand them to the sinks without waiting."""
        moved = [c.node for c in changes if c.before != NodeStatus.UNKNOWN.value]
        events = self.engine.external(conditions, now) if conditions is not None else []
        events += self.engine.evaluate(verdicts, moved, len(self.cfg.nodes), now)
        for event in events:
            level = logging.INFO if event.kind == "resolved" else logging.WARNING
            log.log(level, "alert %s: %s", event.kind, event.title())
        self.dispatcher.submit(events)
        self.dispatcher.resend(self.engine.firing_events())
        return self._alert_state()

    def _alert_state(self) -> dict[str, Any]:
        """The alert book and delivery counters as the state file keeps them.

        Counters are as of now: this sweep's events are still on their way.
        """
        return {**book_to_json(self.engine.book), "delivery": self.dispatcher.stats()}

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

    def _log_step(self, before: NodeStatus, step: hysteresis.Step) -> None:
        verdict = step.verdict
        tracking = verdict.tracking
        if tracking is None:
            return
        reason = _reason(verdict)
        if verdict.status is not before:
            level = logging.WARNING if verdict.status in BAD_STATUSES else logging.INFO
            log.log(
                level, "%s: %s -> %s (%s)", verdict.name, before.value, verdict.status.value, reason
            )
        if step.pending:
            streak = tracking.fail_streak or tracking.pass_streak
            needed = (
                self.cfg.monitor.fail_after
                if tracking.fail_streak
                else self.cfg.monitor.recover_after
            )
            log.info(
                "%s: observed %s (%d of %d), confirming in %g s (%s)",
                verdict.name,
                tracking.observed.value,
                streak,
                needed,
                step.delay_s,
                reason,
            )
        elif tracking.unreachable_streak >= self.cfg.monitor.backoff_after:
            log.info(
                "%s: unreachable %d times in a row; next try in %g s",
                verdict.name,
                tracking.unreachable_streak,
                step.delay_s,
            )

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
        self.transports = monitor.Transports()
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


def _reason(verdict: NodeVerdict) -> str:
    return verdict.alerts[0].text if verdict.alerts else "all checks pass"


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
        where = setup_logging(cfg.monitor, log_file, to_stderr=to_stderr)
        log.debug("logging to %s", where)
        asyncio.run(Daemon(config_path, cfg, scheduler).run())
    finally:
        lock.release()
    return 0
