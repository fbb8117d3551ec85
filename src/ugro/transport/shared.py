"""The session one node check's checks share: each distinct command once, sent together.

Several checks read the same command's answer (the GPU health checks one nvidia-smi query,
latency the ssh check's command), so a command runs once per node check however many ask.
And the commands the checks ask for as they start are sent together, on one channel
(`ugro.transport.batch`), when the session can: the sweep asks for most checks' commands at
once (`ask`), and a check that runs as a task of its own asks from inside it (`run`), so the
session waits until a turn of the event loop passes in which no check asked for a new
command. A command asked for later (the deep check's probe, after its first answer) goes
with whatever else is asked for at that time, or alone.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ugro.errors import CommandTimeout, Disconnected
from ugro.transport.batch import Job

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ugro.model import CommandResult
    from ugro.transport import Session
    from ugro.transport.tcp import RoundTrip


@runtime_checkable
class Batching(Protocol):
    """A session that can run several commands on one channel (`SSHSession.run_batch`)."""

    async def run_batch(
        self, jobs: Sequence[Job], done: Callable[[int, CommandResult], None]
    ) -> bool:
        """Run `jobs` together, telling `done` each result; False when the node cannot."""


class SharedSession:
    """A session whose commands run once each, those asked for together on one channel."""

    def __init__(self, session: Session) -> None:
        """Share `session` among one node check's checks."""
        self._session = session
        self._results: dict[str, asyncio.Future[CommandResult]] = {}
        # Commands asked for but not sent yet, with the longest and the shortest timeout any
        # check gave them.
        self._unsent: dict[str, tuple[float, float]] = {}
        self._asked = False
        self._waiting = False
        self._sending: list[asyncio.Task[None]] = []

    @property
    def peer(self) -> tuple[str, int] | None:
        """The address the underlying session is connected to."""
        return self._session.peer

    def round_trip(self) -> RoundTrip | None:
        """The underlying session's round trip, refreshed by the commands run so far."""
        return self._session.round_trip()

    def close(self) -> None:
        """Stop sending: cancel commands no check waits for any more (their checks ended)."""
        for task in self._sending:
            task.cancel()
        for future in self._results.values():
            future.cancel()

    async def run(self, command: str, *, timeout: float) -> CommandResult:
        """The command's result, shared with every check that asked for the same command."""
        future = self.ask(command, timeout)
        if not future.done():
            await _wait(future, timeout)
        if not future.done():
            raise CommandTimeout(f"did not finish within {timeout:g} s")
        return future.result()

    def ask(self, command: str, timeout: float) -> asyncio.Future[CommandResult]:
        """The future of the command's result, shared with every check that asks for it.

        `timeout` is how long the caller waits for it; the command runs as long as the most
        patient caller waits. Cancel the future only with `close`: other checks share it.
        """
        future = self._results.get(command)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            # A result nobody awaits any more (its check timed out) is not an error to log.
            future.add_done_callback(_retrieve)
            self._results[command] = future
            self._unsent[command] = (timeout, timeout)
            self._asked = True
            if not self._waiting:
                self._waiting = True
                asyncio.get_running_loop().call_soon(self._send_when_quiet)
        elif command in self._unsent:
            longest, shortest = self._unsent[command]
            self._unsent[command] = (max(longest, timeout), min(shortest, timeout))
        return future

    def _send_when_quiet(self) -> None:
        """Send what was asked for once a turn of the loop has passed with nothing new."""
        if self._asked:
            self._asked = False
            asyncio.get_running_loop().call_soon(self._send_when_quiet)
            return
        self._waiting = False
        jobs = [Job(command, *timeouts) for command, timeouts in self._unsent.items()]
        self._unsent.clear()
        self._sending.append(asyncio.ensure_future(self._send(jobs)))

    async def _send(self, jobs: list[Job]) -> None:
        """Run `jobs`, together when the session can, and settle each one's future."""
        futures = [self._results[job.command] for job in jobs]

        def done(index: int, result: CommandResult) -> None:
            if not futures[index].done():
                futures[index].set_result(result)

        try:
            session = self._session
            if (
                len(jobs) > 1
                and isinstance(session, Batching)
                and await session.run_batch(jobs, done)
            ):
                ended = Disconnected("the node's shell ended before the command did")
                for future in futures:
                    if not future.done():
                        future.set_exception(ended)
                return
            await asyncio.gather(
                *(self._one(job, future) for job, future in zip(jobs, futures, strict=True))
            )
        except Exception as exc:  # noqa: BLE001 - every check waiting on these must hear of it
            for future in futures:
                if not future.done():
                    future.set_exception(exc)

    async def _one(self, job: Job, future: asyncio.Future[CommandResult]) -> None:
        """Run one job on its own channel and settle its future."""
        try:
            result = await self._session.run(job.command, timeout=job.timeout)
        except Exception as exc:  # noqa: BLE001 - the check waiting on it reports it
            if not future.done():
                future.set_exception(exc)
        else:
            if not future.done():
                future.set_result(result)


async def _wait(future: asyncio.Future[CommandResult], timeout: float) -> None:
    """Wait until `future` is settled or `timeout` has passed, whichever comes first.

    A waiter of its own, which a check's cancellation cancels without touching the shared
    future: what `asyncio.shield` under `asyncio.timeout` does, in 7 µs a wait against 10 to
    14, and a node check's dozen checks wait some twenty times.
    """
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()

    def wake(_: object = None) -> None:
        if not waiter.done():
            waiter.set_result(None)

    future.add_done_callback(wake)
    timer = loop.call_later(timeout, wake)
    try:
        await waiter
    finally:
        timer.cancel()
        future.remove_done_callback(wake)


def _retrieve(future: asyncio.Future[CommandResult]) -> None:
    """Mark a settled future's exception as seen."""
    if not future.cancelled():
        future.exception()
