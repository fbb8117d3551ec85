"""Delivering alert events from the daemon's loop without ever waiting on a sink.

Each sink gets its own queue and worker task. `Dispatcher.submit` only enqueues, so a sink
that hangs or refuses connections delays neither the sweep nor the other sinks. A delivery
that fails is retried with exponential backoff, then dropped with an ERROR line; the counters
in `Dispatcher.stats` tell the operator (`ugro daemon status`). Until a sink accepts an event
it stays in that sink's outbox (`ugro.alerts.outbox`), which outlives a stop or a kill, and a
`resolved` goes only to a sink that got its firing.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from ugro.alerts.outbox import Outbox
from ugro.alerts.sinks import DeliveryError, Resending, accepts, target

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from pathlib import Path

    from ugro.alerts.book import AlertEvent
    from ugro.alerts.sinks import Sink
    from ugro.config import SinkSettings

__all__ = ["Dispatcher", "send_now"]

log = logging.getLogger(__name__)

#: Deliveries waiting per sink before new ones are dropped: a sink that is down for an hour
#: must not grow the daemon without bound.
QUEUE_SIZE = 1000
#: Added to a sink's own timeout before the dispatcher gives up on a send that ignored it.
GRACE_S = 5.0


@dataclass(frozen=True, slots=True)
class _Job:
    """One thing for a worker to do: deliver an event, or re-post the firing alerts."""

    kind: Literal["send", "resend"]
    events: tuple[AlertEvent, ...]


@dataclass
class _Lane:
    """One sink with its queue, worker and counters."""

    settings: SinkSettings
    sink: Sink
    target: str
    outbox: Outbox
    queue: asyncio.Queue[_Job] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    worker: asyncio.Task[None] | None = None
    sent: int = 0
    failed: int = 0
    retries: int = 0
    dropped: int = 0
    last_error: str | None = None
    last_sent_at: datetime | None = None
    last_resend: float | None = None
    current: _Job | None = None


class Dispatcher:
    """Per-sink queues and workers that deliver events with retries, for the daemon's loop."""

    def __init__(
        self,
        sinks: Sequence[tuple[SinkSettings, Sink]],
        *,
        max_attempts: int = 5,
        base_delay_s: float = 1.0,
        max_delay_s: float = 300.0,
        outbox_dir: Path | None = None,
    ) -> None:
        """Deliver to `sinks`; try each event `max_attempts` times, waiting 1 s, 2 s, 4 s, ….

        Undelivered events are kept in `outbox_dir` (None: in memory only) and re-queued by
        `start`.
        """
        self._lanes = [
            _Lane(s, sink, target(s), Outbox.beside(outbox_dir, s.name)) for s, sink in sinks
        ]
        self.max_attempts = max_attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s

    def start(self) -> None:
        """Queue what the outboxes kept, and start one worker per sink; call from the loop."""
        for lane in self._lanes:
            if lane.outbox.pending and lane.worker is None:
                log.info(
                    "sink %s (%s): %d undelivered event(s) from before the restart",
                    lane.settings.name,
                    lane.target,
                    len(lane.outbox.pending),
                )
                for event in list(lane.outbox.pending):
                    self._enqueue(lane, _Job("send", (event,)), kept=True)
            if lane.worker is None:
                lane.worker = asyncio.create_task(
                    self._work(lane), name=f"ugro-sink-{lane.settings.name}"
                )

    def submit(self, events: Iterable[AlertEvent]) -> None:
        """Queue each event for every sink that accepts it; never waits."""
        events = list(events)
        for lane in self._lanes:
            accepted = [e for e in events if accepts(lane.settings, e)]
            for event in accepted:
                self._enqueue(lane, _Job("send", (event,)))
            if accepted:
                lane.outbox.save()

    def resend(self, firing: Sequence[AlertEvent]) -> None:
        """Queue a re-post of the firing alerts for each resending sink that is due; never waits."""
        now = time.monotonic()
        for lane in self._lanes:
            sink = lane.sink
            if not isinstance(sink, Resending):
                continue
            if lane.last_resend is not None and now - lane.last_resend < sink.resend_s:
                continue
            accepted = tuple(e for e in firing if accepts(lane.settings, e))
            if accepted:
                lane.last_resend = now
                self._enqueue(lane, _Job("resend", accepted))

    def stats(self) -> dict[str, dict[str, object]]:
        """Each sink's counters, JSON-able, by sink name."""
        return {
            lane.settings.name: {
                "type": lane.settings.type,
                "target": lane.target,
                "sent": lane.sent,
                "failed": lane.failed,
                "retries": lane.retries,
                "dropped": lane.dropped,
                "queued": lane.queue.qsize(),
                "last_error": lane.last_error,
                "last_sent_at": lane.last_sent_at.isoformat() if lane.last_sent_at else None,
            }
            for lane in self._lanes
        }

    async def close(self, timeout_s: float = 5) -> None:
        """Stop the workers; undelivered events stay in the outbox for the next start."""
        workers = [lane.worker for lane in self._lanes if lane.worker is not None]
        for lane in self._lanes:
            if lane.outbox.pending:
                log.warning(
                    "sink %s (%s): %d undelivered event(s) %s",
                    lane.settings.name,
                    lane.target,
                    len(lane.outbox.pending),
                    "kept for the next start" if lane.outbox.path else "dropped at shutdown",
                )
                lane.outbox.save()
            if lane.worker is not None:
                lane.worker.cancel()
                lane.worker = None
        if workers:
            # A sink that ignores cancellation must not hold up the daemon's exit.
            _, stuck = await asyncio.wait(workers, timeout=timeout_s)
            for task in stuck:
                log.error("%s did not stop within %g s", task.get_name(), timeout_s)

    def _enqueue(self, lane: _Lane, job: _Job, *, kept: bool = False) -> None:
        """Queue `job`; a send is pending in the outbox (already, if `kept`) until delivered."""
        # Only this loop's thread touches the queue, so full() cannot change before put.
        if not lane.queue.full():
            lane.queue.put_nowait(job)
            if job.kind == "send" and not kept:
                lane.outbox.pending.append(job.events[0])
            return
        if kept:
            lane.outbox.forget(job.events[0])
        lane.dropped += 1
        log.error(
            "sink %s (%s): %d deliveries already waiting; dropped a %s",
            lane.settings.name,
            lane.target,
            lane.queue.qsize(),
            _describe(job),
        )

    async def _work(self, lane: _Lane) -> None:
        while True:
            job = await lane.queue.get()
            lane.current = job
            try:
                if job.kind == "resend":
                    await self._resend(lane, job)
                else:
                    await self._deliver(lane, job)
            finally:
                lane.current = None
                lane.queue.task_done()

    async def _deliver(self, lane: _Lane, job: _Job) -> None:
        """Send one event, retrying with backoff; then it leaves the outbox, sent or not."""
        (event,) = job.events
        if lane.outbox.owes(event):
            await self._retrying(lane, job)
        else:
            log.info(
                "sink %s (%s): not sending %s: the sink never got its firing",
                lane.settings.name,
                lane.target,
                _describe(job),
            )
        lane.outbox.forget(event)
        lane.outbox.save()

    async def _retrying(self, lane: _Lane, job: _Job) -> None:
        """Send one event, retrying with backoff; give up after `max_attempts`."""
        (event,) = job.events
        for attempt in range(1, self.max_attempts + 1):
            error = await _attempt(lane, event)
            if error is None:
                lane.outbox.sent(event)
                return
            lane.last_error = error
            if attempt == self.max_attempts:
                lane.failed += 1
                log.error(
                    "sink %s (%s): gave up on %s after %d attempts: %s",
                    lane.settings.name,
                    lane.target,
                    _describe(job),
                    attempt,
                    error,
                )
                return
            delay = min(self.base_delay_s * 2 ** (attempt - 1), self.max_delay_s)
            lane.retries += 1
            log.warning(
                "sink %s (%s): attempt %d/%d failed, retrying in %g s: %s",
                lane.settings.name,
                lane.target,
                attempt,
                self.max_attempts,
                delay,
                error,
            )
            await asyncio.sleep(delay)

    async def _resend(self, lane: _Lane, job: _Job) -> None:
        """Re-post the firing alerts once: the next resend comes soon, so no retries."""
        sink = lane.sink
        if not isinstance(sink, Resending):  # resend() queues these jobs only for such sinks
            return
        try:
            await asyncio.wait_for(sink.resend(job.events), lane.settings.timeout_s + GRACE_S)
        except DeliveryError as exc:
            lane.last_error = str(exc)
        except TimeoutError:
            lane.last_error = f"sink {lane.settings.name!r}: re-sending did not finish in time"
        else:
            for event in job.events:
                lane.outbox.sent(event)
            return
        log.warning(
            "sink %s (%s): re-sending %d firing alert(s) failed: %s",
            lane.settings.name,
            lane.target,
            len(job.events),
            lane.last_error,
        )


async def send_now(sink: Sink, event: AlertEvent) -> str | None:
    """Deliver `event` once, now (for `ugro alerts test`): None, or what went wrong.

    Never raises: one sink's bug must not hide the other sinks' results.
    """
    try:
        await sink.send(event)
    except DeliveryError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - reported as this sink's result, without its text
        return f"sink {sink.name!r}: unexpected {type(exc).__name__}"
    return None


async def _attempt(lane: _Lane, event: AlertEvent) -> str | None:
    """Send `event` once; None on success, else the (redacted) error."""
    try:
        await asyncio.wait_for(lane.sink.send(event), lane.settings.timeout_s + GRACE_S)
    except DeliveryError as exc:
        return str(exc)
    except TimeoutError:
        return f"sink {lane.settings.name!r}: did not finish within its timeout"
    except Exception as exc:  # noqa: BLE001 - a sink's bug must not kill its worker; it is logged
        # Not the exception's text, nor a traceback that ends with it: it may quote a URL.
        where = traceback.extract_tb(exc.__traceback__)[-1]
        log.error(  # noqa: TRY400 - see above
            "sink %s (%s): unexpected %s at %s:%s",
            lane.settings.name,
            lane.target,
            type(exc).__name__,
            where.filename,
            where.lineno,
        )
        return f"sink {lane.settings.name!r}: unexpected {type(exc).__name__}"
    lane.sent += 1
    lane.last_sent_at = datetime.now(UTC)
    return None


def _describe(job: _Job) -> str:
    if job.kind == "resend":
        return f"re-send of {len(job.events)} firing alert(s)"
    (event,) = job.events
    return f"{event.kind} event {event.node}/{event.key}"
