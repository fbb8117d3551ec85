"""One sweep: every node checked concurrently, every check of a node concurrently.

Nothing a node does can stall or crash the sweep: each check has a deadline, and whatever
a check raises becomes a result that names the check.
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ugro.checks import Answering, Check, Context, registry
from ugro.checks.readings import shown
from ugro.config.settings import DEFAULT_MAX_CONNECTS
from ugro.errors import CommandTimeout, ConnectError, InvalidOutput, TransportError
from ugro.model import (
    CheckResult,
    DiskSpace,
    Evaluation,
    GpuMetrics,
    HostMetrics,
    NodeVerdict,
    Status,
)
from ugro.transport.local import LocalTransport
from ugro.transport.shared import SharedSession
from ugro.transport.ssh import SSHTransport
from ugro.verdict import scoring

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from ugro.config import Worker
    from ugro.model import CommandResult
    from ugro.transport import Session, Transport

# Beyond a check's own timeout, how long to wait for the transport to give up by itself.
GRACE_S = 2.0
# Characters of a check's message that the state file keeps: a message may quote what a node
# printed, and the longest a check writes itself (four Xids, each with its advice) is shorter.
MAX_MESSAGE_CHARS = 1000


class Transports:
    """Picks the transport a node asks for; owns and closes them."""

    def __init__(
        self,
        ssh: Transport | None = None,
        local: Transport | None = None,
        *,
        max_connects: int = DEFAULT_MAX_CONNECTS,
    ) -> None:
        """Use the given transports, or the real SSH pool (`max_connects`) and the local one."""
        self.ssh = ssh or SSHTransport(max_connects=max_connects)
        self.local = local or LocalTransport()

    def pick(self, node: Worker) -> Transport:
        """The transport for `node`."""
        return self.local if node.transport == "local" else self.ssh

    async def close(self) -> None:
        """Close every open session."""
        await self.ssh.close()
        await self.local.close()


async def sweep(
    nodes: Sequence[Worker],
    transports: Transports,
    previous: Mapping[str, datetime] | None = None,
    checked: Callable[[NodeVerdict], None] | None = None,
) -> list[NodeVerdict]:
    """Check every node at once; the sweep lasts as long as the slowest node.

    `previous` has each node's last check time, for checks that read what happened since;
    `checked` is told each node's verdict as soon as it is reached (`ugro check`'s progress).
    """
    previous = previous or {}

    async def one(node: Worker) -> NodeVerdict:
        verdict = await check_node(node, transports.pick(node), Context(previous.get(node.name)))
        if checked is not None:
            checked(verdict)
        return verdict

    return list(await asyncio.gather(*(one(node) for node in nodes)))


async def check_node(
    node: Worker, transport: Transport, context: Context | None = None
) -> NodeVerdict:
    """Open a session, run the node's checks concurrently, and judge the results."""
    context = context or Context()
    enabled = _enabled(node)
    when = datetime.now(UTC)
    start = time.perf_counter()
    try:
        # No deadline of our own: the transport bounds each connect by timeouts.connect, and
        # the wait for one of its few connect slots must not count against that, or the first
        # sweep of a large cluster would call the nodes at the back of the queue unreachable.
        session = await transport.open(node)
    except ConnectError as exc:
        reason = _bounded(str(exc))
        elapsed = _ms(start)
        results = tuple(
            CheckResult(c.name, Status.FAIL, reason, duration_ms=elapsed)
            if c.name == "ssh"
            else CheckResult(c.name, Status.UNKNOWN, "not run: node unreachable")
            for c, _ in enabled
        )
        return _judge(node, when, results, unreachable=reason)
    connect_ms = _ms(start)
    shared = SharedSession(session)
    try:
        outcomes = await _run_all(enabled, node, shared, context)
    finally:
        shared.close()
    checked: list[CheckResult] = []
    gpus: tuple[GpuMetrics, ...] = ()
    host: HostMetrics | None = None
    disks: tuple[DiskSpace, ...] = ()
    versions: dict[str, str] = {}
    for (check, _), (evaluation, duration) in zip(enabled, outcomes, strict=True):
        # The ssh check's time is the whole round trip: connect, then the command.
        elapsed = duration + connect_ms if check.name == "ssh" else duration
        checked.append(_result(check, evaluation, round(elapsed, 1)))
        gpus = gpus or evaluation.gpus
        host = host or evaluation.host
        disks = disks or evaluation.disks
        versions |= evaluation.versions
    return _judge(node, when, tuple(checked), gpus=gpus, host=host, disks=disks, versions=versions)


def _bounded(message: str) -> str:
    """`message` cut to MAX_MESSAGE_CHARS, saying so."""
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    return message[: MAX_MESSAGE_CHARS - 7] + " […cut]"


def _result(check: Check, evaluation: Evaluation, duration_ms: float) -> CheckResult:
    """The persisted result of `evaluation`: its message bounded, its value a finite float.

    Every check validates what it reads (`ugro.checks.readings`); this is the sweep's own
    guarantee that nothing non-finite or too large for a float reaches the state file, the
    history or the exporter, whatever a check returns.
    """
    value: float | None = None
    if evaluation.value is not None:
        try:
            value = float(evaluation.value)
        except OverflowError:
            value = math.inf
        if not math.isfinite(value):
            return CheckResult(
                check.name,
                Status.UNKNOWN,
                f"{check.name} check could not judge the result: its value "
                f"{shown(evaluation.value)} is not a finite number",
                duration_ms=duration_ms,
            )
    return CheckResult(
        check.name,
        evaluation.status,
        _bounded(evaluation.message),
        value,
        evaluation.unit,
        duration_ms,
    )


def _judge(  # noqa: PLR0913 - the keyword-only parts of one verdict
    node: Worker,
    when: datetime,
    results: tuple[CheckResult, ...],
    *,
    gpus: tuple[GpuMetrics, ...] = (),
    host: HostMetrics | None = None,
    disks: tuple[DiskSpace, ...] = (),
    unreachable: str | None = None,
    versions: dict[str, str] | None = None,
) -> NodeVerdict:
    weights, core = _weighting()
    return scoring.verdict(
        name=node.name,
        address=node.ip if node.transport == "ssh" else "local",
        when=when,
        checks=results,
        weights=weights,
        thresholds=scoring.Thresholds(node.pass_rate, node.degraded_score),
        core=core,
        gpus=gpus,
        host=host,
        disks=disks,
        unreachable=unreachable,
        versions=versions,
    )


@functools.cache
def _weighting() -> tuple[dict[str, float], frozenset[str]]:
    """Every check's weight, and the core checks' names (read-only; the registry is fixed)."""
    checks = registry()
    return {name: check.weight for name, check in checks.items()}, frozenset(
        name for name, check in checks.items() if check.core
    )


def _enabled(node: Worker) -> list[tuple[Check, Evaluation | None]]:
    """The node's checks that apply to it; one whose `applies` raised stays, judged unknown."""
    checks = registry()
    enabled: list[tuple[Check, Evaluation | None]] = []
    for name in node.checks:
        check = checks[name]
        try:
            if check.applies(node):
                enabled.append((check, None))
        except Exception as exc:  # noqa: BLE001 - a broken check must not take the sweep down
            enabled.append((check, _broken(check, exc)))
    return enabled


async def _run_all(
    enabled: list[tuple[Check, Evaluation | None]],
    node: Worker,
    session: SharedSession,
    context: Context,
) -> list[tuple[Evaluation, float]]:
    """Run the checks concurrently; once the ssh check fails, give up on the others.

    A node whose shell does not answer is unreachable whatever the other checks would say,
    and on a silent connection they would each wait out their own timeout (torch: 30 s).
    A check that only judges commands' results (`Answering`) is judged as they come in
    (`_Answers`); any other runs as a task of its own.
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
            self.outcomes[index] = (_broken(check, exc), _ms(self._start))
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
        self.outcomes[index] = (evaluation, _ms(self._start))
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
        return _broken(check, exc), _ms(start)
    try:
        # A deadline in this task, not wait_for's task of its own.
        async with asyncio.timeout(timeout + GRACE_S):
            evaluation = await check.run(node, session, context)
    except Exception as exc:  # noqa: BLE001 - a broken check must not take the sweep down
        evaluation = _failed(check, timeout, exc)
    return evaluation, _ms(start)


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
    return _broken(check, exc)


def _broken(check: Check, exc: Exception) -> Evaluation:
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


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def run_checks(
    nodes: Sequence[Worker],
    previous: Mapping[str, datetime] | None = None,
    checked: Callable[[NodeVerdict], None] | None = None,
    *,
    max_connects: int = DEFAULT_MAX_CONNECTS,
) -> list[NodeVerdict]:
    """Check `nodes` once, from synchronous code, closing every connection afterwards.

    `checked` is told each node's verdict as it is reached.
    """

    async def main() -> list[NodeVerdict]:
        transports = Transports(max_connects=max_connects)
        try:
            return await sweep(nodes, transports, previous, checked)
        finally:
            await transports.close()

    return asyncio.run(main())
