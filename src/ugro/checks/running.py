"""Running one node's checks, concurrently, and what a check that fails or raises becomes.

A check that only judges commands' results (`Answering`) is judged as they come in, with no
task of its own (`_Answers`); any other runs as a task under its deadline. Nothing a check
does can stall or crash the node check: a timeout or a lost connection fails the check,
anything else it raises makes it `unknown`, naming the check.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from ugro.checks import Answering, Check, Context
from ugro.errors import CommandTimeout, InvalidOutput, TransportError
from ugro.model import Evaluation, Status

if TYPE_CHECKING:
    from ugro.config import Worker
    from ugro.model import CommandResult
    from ugro.transport import Session
    from ugro.transport.shared import SharedSession

# Beyond a check's own timeout, how long to wait for the transport to give up by itself.
GRACE_S = 2.0


async def run_all(
    enabled: list[tuple[Check, Evaluation | None]],
    node: Worker,
    session: SharedSession,
    context: Context,
) -> list[tuple[Evaluation, float]]:
    """Run the checks concurrently; once the ssh check fails, give up on the others.

    A node whose shell does not answer is unreachable whatever the other checks would say,
    and on a silent connection they would each wait out their own timeout (torch: 30 s).
    """
    answers = _Answers(node, session, context)
    outcomes: dict[int, tuple[Evaluation, float]] = {}
    tasks: dict[int, asyncio.Task[tuple[Evaluation, float]]] = {}
    for index, (check, refused) in enumerate(enabled):
        if refused is not None:
            outcomes[index] = (refused, 0.0)
        elif isinstance(check, Answering):
            answers.ask(index, check)
        else:
            tasks[index] = asyncio.ensure_future(_run(check, node, session, context))
    try:
        await answers.all_judged()
        if answers.shell_failed:
            for task in tasks.values():
                task.cancel()
        if tasks:
            await asyncio.wait(tasks.values())
    finally:
        answers.close()
        for task in tasks.values():
            task.cancel()
    outcomes |= answers.outcomes
    outcomes |= {i: t.result() for i, t in tasks.items() if not t.cancelled()}
    given_up = Evaluation(Status.UNKNOWN, "not judged: the node's shell did not answer (ssh check)")
    return [outcomes.get(index, (given_up, 0.0)) for index in range(len(enabled))]


class _Answers:
    """Judges one node check's `Answering` checks as their results come in, with no task each.

    A check is judged once the results of all its commands are in, or when its timeout has
    passed, with None for those that had not come: one callback per command and one timer per
    distinct timeout, where a task, a deadline and a waiter per check cost the control node
    more than the node's whole answer. Once the ssh check fails, the others are given up on.
    """

    def __init__(self, node: Worker, session: SharedSession, context: Context) -> None:
        """Judge checks of `node`, whose commands `session` runs, in `context`."""
        self._node = node
        self._session = session
        self._context = context
        self._loop = asyncio.get_running_loop()
        self._start = time.perf_counter()
        self.outcomes: dict[int, tuple[Evaluation, float]] = {}
        self.shell_failed = False
        self._judged: asyncio.Future[None] = self._loop.create_future()
        # Each check still to judge: the check, its commands' results, its timeout.
        self._waiting: dict[int, tuple[Answering, list[asyncio.Future[CommandResult]], float]] = {}
        # Each command's result, and the checks that wait for it.
        self._readers: dict[asyncio.Future[CommandResult], list[int]] = {}
        self._timers: dict[float, asyncio.TimerHandle] = {}

    def ask(self, index: int, check: Answering) -> None:
        """Ask for the commands of `check` (the node check's `index`th); judge it when due."""
        try:
            timeout = check.timeout(self._node)
            asked = check.asks(self._node, self._context)
            futures = [self._session.ask(c, timeout) for c in asked]
        except Exception as exc:  # noqa: BLE001 - a broken check must not take the sweep down
            self.outcomes[index] = (broken(check, exc), elapsed_ms(self._start))
            return
        self._waiting[index] = (check, futures, timeout)
        for future in futures:
            if future not in self._readers:
                self._readers[future] = []
                future.add_done_callback(self._arrived)
            self._readers[future].append(index)
        if timeout not in self._timers:
            self._timers[timeout] = self._loop.call_later(timeout, self._expire, timeout)
        if not futures:
            self._judge(index)

    async def all_judged(self) -> None:
        """Until every check asked for is judged, or given up on after the ssh check failed."""
        if self._waiting:
            await self._judged

    def close(self) -> None:
        """Judge nothing more (the node check is over)."""
        self._waiting.clear()
        for timer in self._timers.values():
            timer.cancel()

    def _arrived(self, future: asyncio.Future[CommandResult]) -> None:
        for index in self._readers.pop(future, ()):
            due = self._waiting.get(index)
            if due is not None and all(f.done() for f in due[1]):
                self._judge(index)

    def _expire(self, timeout: float) -> None:
        del self._timers[timeout]
        for index in [i for i, (_, _, t) in self._waiting.items() if t == timeout]:
            self._judge(index)

    def _judge(self, index: int) -> None:
        check, futures, timeout = self._waiting.pop(index)
        try:
            results = [_result_of(f) for f in futures]
            evaluation = check.answer(results, self._node, self._context)
        except Exception as exc:  # noqa: BLE001 - a broken check must not take the sweep down
            evaluation = _failed(check, timeout, exc)
        self.outcomes[index] = (evaluation, elapsed_ms(self._start))
        if check.name == "ssh" and evaluation.status is Status.FAIL:
            self.shell_failed = True
            self._waiting.clear()
        if not self._waiting and not self._judged.done():
            self._judged.set_result(None)


def _result_of(future: asyncio.Future[CommandResult]) -> CommandResult | None:
    """A command's result; None when it has not come (or ran out of time): raises its error."""
    if not future.done() or future.cancelled():
        return None
    error = future.exception()
    if error is None:
        return future.result()
    if isinstance(error, CommandTimeout):
        return None
    raise error


async def _run(
    check: Check, node: Worker, session: Session, context: Context
) -> tuple[Evaluation, float]:
    """Run one check under its deadline; whatever goes wrong becomes an Evaluation."""
    start = time.perf_counter()
    try:
        timeout = check.timeout(node)
    except Exception as exc:  # noqa: BLE001 - a broken check must not take the sweep down
        return broken(check, exc), elapsed_ms(start)
    try:
        # A deadline in this task, not wait_for's task of its own.
        async with asyncio.timeout(timeout + GRACE_S):
            evaluation = await check.run(node, session, context)
    except Exception as exc:  # noqa: BLE001 - a broken check must not take the sweep down
        evaluation = _failed(check, timeout, exc)
    return evaluation, elapsed_ms(start)


def _failed(check: Check, timeout: float, exc: Exception) -> Evaluation:
    """What `check` is when it raised `exc`: a timeout or a lost connection fails it.

    Anything else is the check's own fault, or the node's (`_broken`).
    """
    if isinstance(exc, (CommandTimeout, TimeoutError)):
        return Evaluation(
            Status.FAIL,
            f"no answer within {timeout:g} s (timeouts.{check.name}): {check.hang_hint}",
        )
    if isinstance(exc, TransportError):
        return Evaluation(Status.FAIL, f"{check.name} could not run: {exc}")
    return broken(check, exc)


def broken(check: Check, exc: Exception) -> Evaluation:
    """What a check that raised is: unknown, naming the check and what it raised.

    InvalidOutput is the node's fault, not the check's: its message says what was wrong, and
    the checks that read the same answer say it alike, so their alerts are one.
    """
    if isinstance(exc, InvalidOutput):
        return Evaluation(Status.UNKNOWN, f"not judged, the node's answer is not plausible: {exc}")
    try:
        said = f": {exc}"
    except Exception:  # noqa: BLE001 - an exception's own __str__ may be what is broken
        said = ""
    return Evaluation(
        Status.UNKNOWN,
        f"{check.name} check could not judge the result: {type(exc).__name__}{said}",
    )


def elapsed_ms(start: float) -> float:
    """Milliseconds since `start` (a `time.perf_counter` reading)."""
    return (time.perf_counter() - start) * 1000
