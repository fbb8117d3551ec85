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

from ugro.checks import Check, Context, registry
from ugro.checks.readings import shown
from ugro.checks.running import broken, elapsed_ms, run_all
from ugro.config.settings import DEFAULT_MAX_CONNECTS
from ugro.errors import ConnectError
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
    from ugro.transport import Transport

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
        elapsed = elapsed_ms(start)
        results = tuple(
            CheckResult(c.name, Status.FAIL, reason, duration_ms=elapsed)
            if c.name == "ssh"
            else CheckResult(c.name, Status.UNKNOWN, "not run: node unreachable")
            for c, _ in enabled
        )
        return _judge(node, when, results, unreachable=reason)
    connect_ms = elapsed_ms(start)
    shared = SharedSession(session)
    try:
        outcomes = await run_all(enabled, node, shared, context)
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
            enabled.append((check, broken(check, exc)))
    return enabled


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
