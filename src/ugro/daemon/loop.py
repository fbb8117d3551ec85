"""The monitor daemon (`ugro daemon run`): its loop, signals and shutdown.

Each node is checked when it is due, on its own schedule (`ugro.daemon.schedule`): a hung
node costs its own timeout, never another node's cadence. Checks that complete together
are settled as one sweep (`ugro.daemon.settle`): hysteresis, recovery, alerts, the state
file, the history and the log. Whatever fails for one node is contained
(`ugro.daemon.containment`): the daemon stops only on a signal. SIGTERM/SIGINT abandon the
checks in flight, write the state and exit 0 within seconds; SIGHUP reloads the config,
keeping the old one when the new one is bad. Under systemd it speaks sd_notify
(Type=notify, WatchdogSec).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import signal
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ugro import config, paths, sweep
from ugro.checks import Context
from ugro.config import shards
from ugro.daemon import containment, logs, sdnotify
from ugro.daemon.containment import Errors
from ugro.daemon.outputs import dispatcher
from ugro.daemon.pidfile import PidLock
from ugro.daemon.schedule import Schedule, pause_s
from ugro.daemon.settle import Settler
from ugro.errors import ConfigError, UgroError
from ugro.recovery.scheduler import for_config

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from ugro.config import Config, Worker
    from ugro.daemon.schedule import Completed
    from ugro.dashboard.app import Dashboard
    from ugro.httpserver import BoundedServer
    from ugro.model import NodeVerdict
    from ugro.recovery.scheduler import Scheduler

log = logging.getLogger(__name__)

# How long completed checks wait for the rest of their cohort (`ugro.daemon.schedule`) before
# they are settled without it; at most half an interval.
SETTLE_WAIT_S = 1.0
# Settles are at least this many times as long apart as the last one took, so that judging and
# writing the whole state file take at most a twentieth of the daemon's time however many nodes
# it has (paced starts complete in many small cohorts); at most half an interval apart.
SETTLE_SHARE = 20
# After an unexpected failure of the loop itself, how long to wait before going on.
RETRY_S = 1.0


class Daemon:
    """One running monitor: its config, schedule, transports and what it settles."""

    def __init__(
        self,
        config_path: Path | None,
        cfg: Config,
        scheduler: Scheduler | None = None,
        transports: Callable[[], sweep.Transports] | None = None,
    ) -> None:
        """Monitor the nodes of `cfg`, reloading from `config_path` on SIGHUP.

        `scheduler` is told about every cordon the daemon places or lifts; `transports`
        makes the connections to the nodes (tests pass fakes); by default the real ones,
        bounded by the current config's `monitor.max_connects`.
        """
        self.config_path = config_path
        self.cfg = cfg
        self.new_transports = transports or self._real_transports
        self.transports = self.new_transports()
        self.stopping = asyncio.Event()
        self.wake = asyncio.Event()
        self.reload_requested = False
        self.errors = Errors()
        self.settler = Settler(cfg, scheduler, self.errors)
        self.schedule = Schedule((), time.monotonic(), self.wake)
        self.last_settle_s = 0.0
        self.settled_at = -math.inf

    def _real_transports(self) -> sweep.Transports:
        """SSH and local transports under the current config's connect bound."""
        return sweep.Transports(max_connects=self.cfg.monitor.max_connects)

    async def run(self) -> None:
        """Check nodes until asked to stop; then write the state and close every connection."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop, sig)
        loop.add_signal_handler(signal.SIGHUP, self._request_reload)
        names = [n.name for n in self.cfg.nodes]
        self.settler.restore(names)
        self.schedule = Schedule(names, time.monotonic(), self.wake)
        self._pace()
        exporter = self._start_exporter()
        watchdog = asyncio.create_task(self._watchdog())
        self.settler.dispatcher.start()
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
                try:
                    await self._turn()
                except Exception as exc:  # noqa: BLE001 - only a signal stops the daemon
                    self.errors.contain("running the monitor loop", exc)
                    await self._sleep(RETRY_S)
        finally:
            watchdog.cancel()
            await self._shut_down(exporter)

    async def _turn(self) -> None:
        """Reload if asked; start the due checks; settle a sweep when it is time, else sleep."""
        if self.reload_requested:
            await self._reload()
        now = time.monotonic()
        self.schedule.start_due(self.cfg.nodes, now, self._check)
        settle_at = self.schedule.settle_at(self._window())
        if settle_at is not None:
            settle_at = max(settle_at, self.settled_at + self._gap())
        if settle_at is not None and now >= settle_at:
            await self._settle(self.schedule.take())
            return
        wake_at = min(self.schedule.next_due(), math.inf if settle_at is None else settle_at)
        await self._sleep(wake_at - now)

    def _pace(self) -> None:
        """Pace the schedule's starts for the current config (`schedule` module docstring)."""
        monitor = self.cfg.monitor
        self.schedule.batch = monitor.max_connects
        self.schedule.pause_s = pause_s(
            len(self.cfg.nodes), monitor.max_connects, monitor.interval_s
        )

    def _gap(self) -> float:
        """How long after the last settle the next may start (SETTLE_SHARE).

        No wait at all while a completed node waits for its first verdict: `ugro health`
        would show it as never checked.
        """
        shown = self.settler.shown
        if any(name not in shown for name in self.schedule.completed_names()):
            return 0.0
        return min(SETTLE_SHARE * self.last_settle_s, self.cfg.monitor.interval_s / 2)

    def _window(self) -> float:
        """How long completed checks may wait for their cohort (SETTLE_WAIT_S).

        At least as long as a paced round takes to start, so that a round settles as one
        sweep rather than a batch at a time (each settle writes the whole state file).
        """
        spread = self.schedule.spread_s(len(self.cfg.nodes))
        return min(max(SETTLE_WAIT_S, spread), self.cfg.monitor.interval_s / 2)

    async def _check(self, node: Worker) -> NodeVerdict:
        """Check one node; whatever goes wrong in ugro itself is that node's `unknown`."""
        when = datetime.now(UTC)
        previous = self.settler.shown.get(node.name)
        context = Context(previous.last_check if previous else None)
        try:
            return await sweep.check_node(node, self.transports.pick(node), context)
        except Exception as exc:  # noqa: BLE001 - one node's fault stays that node's
            self.errors.contain("checking", exc, node.name)
            return containment.unchecked(node, when, exc)

    async def _settle(self, completed: list[Completed]) -> None:
        """Settle a sweep, and schedule each of its nodes' next check from its check's start."""
        started = time.monotonic()
        delays: dict[str, float] = {}
        try:
            delays = await self.settler.settle(completed, self.cfg, self.transports)
        except Exception as exc:  # noqa: BLE001 - only a signal stops the daemon
            self.errors.contain("settling a sweep", exc)
        finally:
            for done in completed:
                if done.name in self.schedule.due:
                    delay = delays.get(done.name, self.cfg.monitor.interval_s)
                    self.schedule.due[done.name] = done.started + delay
            self.settled_at = time.monotonic()
            self.last_settle_s = self.settled_at - started

    async def _shut_down(self, exporter: tuple[BoundedServer, Dashboard | None] | None) -> None:
        """Abandon the checks in flight, stop what runs beside them, and write the state."""
        abandoned = await self.schedule.abandon(list(self.schedule.running), time.monotonic())
        if abandoned:
            log.info("stopping: abandoned the checks in flight of %s", ", ".join(abandoned))
        completed = self.schedule.take()
        if completed:
            await self._settle(completed)
        settler = self.settler
        await settler.recoverer.close()
        await settler.dispatcher.close()
        if exporter is not None:
            server, dashboard = exporter
            server.shutdown()
            server.server_close()
            if dashboard is not None:
                dashboard.close()
        sdnotify.notify("STOPPING=1")
        await self.transports.close()
        if settler.history is not None:
            with contextlib.suppress(UgroError):
                settler.history.record_events(settler.recoverer.take_events())
            settler.history.close()
        await settler.write_final(list(self.schedule.due))
        log.info("monitor stopped")

    def _start_exporter(self) -> tuple[BoundedServer, Dashboard | None] | None:
        """Serve /metrics and the dashboard when enabled; a taken port stops the start."""
        if not self.cfg.exporter.enabled:
            return None
        from ugro.daemon import web

        # The running config's nodes, read at each request: a reload shows at once.
        return web.serve(
            self.cfg, self.settler.store.path, lambda: [n.name for n in self.cfg.nodes]
        )

    def _stop(self, sig: signal.Signals) -> None:
        log.info("%s received: stopping", sig.name)
        self.stopping.set()
        self.wake.set()

    def _request_reload(self) -> None:
        log.info("SIGHUP received: reloading the config")
        self.reload_requested = True
        self.wake.set()

    async def _sleep(self, seconds: float) -> None:
        """Sleep until a check completes, a signal arrives, or `seconds` pass."""
        self.wake.clear()
        if self.stopping.is_set() or self.reload_requested:
            return
        timeout = None if math.isinf(seconds) else max(0.0, seconds)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), timeout)

    async def _reload(self) -> None:
        """Apply a changed config; a bad one keeps the running config and says why."""
        self.reload_requested = False
        try:
            new = _narrow(await asyncio.to_thread(config.load, self.config_path))
        except ConfigError as exc:
            log.error("config reload failed, keeping the running config: %s", exc)  # noqa: TRY400
            return
        now = time.monotonic()
        # Connections are keyed by node name; a changed address or key must not reuse one:
        # the checks in flight are abandoned and start again, on new connections.
        await self.schedule.abandon(list(self.schedule.running), now)
        await self.transports.close()
        for section in ("exporter", "history"):
            if getattr(new, section) != getattr(self.cfg, section):
                log.warning("config reload: %s settings take effect at the next start", section)
        settler = self.settler
        if new.alerts.sinks != self.cfg.alerts.sinks:
            try:
                sinks = dispatcher(new)
            except UgroError as exc:
                log.error("config reload: sinks unchanged: %s", exc)  # noqa: TRY400
            else:
                await settler.dispatcher.close()
                settler.dispatcher = sinks
                settler.dispatcher.start()
        settler.engine.settings = new.alerts
        if settler.own_scheduler:
            settler.recoverer.scheduler = for_config(new)
        self.cfg = new
        # After the new config is in place: its max_connects bounds the new pool.
        self.transports = self.new_transports()
        self.schedule.retarget([n.name for n in new.nodes], now)
        self._pace()
        settler.shown = {k: v for k, v in settler.shown.items() if k in self.schedule.due}
        log.info("config reloaded: %d nodes", len(new.nodes))

    async def _watchdog(self) -> None:
        """Ping systemd's watchdog while the event loop is alive."""
        period = sdnotify.watchdog_period()
        if period is None:
            return
        while True:
            sdnotify.notify("WATCHDOG=1")
            await asyncio.sleep(period)


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
        asyncio.run(Daemon(config_path, _narrow(cfg), scheduler).run())
    finally:
        lock.release()
    return 0


def _narrow(cfg: Config) -> Config:
    """`cfg` with only the nodes of this monitor's shard (`monitor.shard`), said in the log."""
    shard = cfg.monitor.shard
    if shard is None:
        return cfg
    mine = shards.narrowed(cfg)
    log.info(
        "shard %d of %d: checking %d of the %d configured nodes",
        shard.index,
        shard.count,
        len(mine.nodes),
        len(cfg.nodes),
    )
    return mine
