"""The checks ugro runs on every node, and the registry that names them.

A check is a command plus a pure `evaluate`; checks may raise, and the monitor turns what
they raise into a result that names the check.

The check classes are the one place a check's facts live: its name, its default timeout,
whether it is one of the core five, a GPU health check, or meaningful on the local machine.
`ugro.config` derives the names `checks:` accepts and the `timeouts:` model from the
registry. A new check is one module here that defines `CHECK`, listed in `CHECK_MODULES`.
"""

from __future__ import annotations

import asyncio
import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, ClassVar

from ugro.errors import CommandTimeout, UgroError
from ugro.model import Evaluation, Status
from ugro.subprocesses import STDERR_LIMIT, STDOUT_LIMIT

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from ugro.config import Worker
    from ugro.model import CommandResult
    from ugro.transport import Session

# The modules of ugro.checks that define a check (as `CHECK`), in the order the checks run
# and are shown; this order is also the order of `checks:` and `timeouts:` in the config.
CHECK_MODULES = (
    "reachability",
    "gpu",
    "torch",
    "disk",
    "latency",
    "ecc",
    "remap",
    "xid",
    "throttle",
    "pcie",
    "processes",
    "temperature",
    "rendezvous",
    "deep",
)


class DuplicateCheckError(UgroError):
    """Two checks of the registry have the same name."""


@dataclass(frozen=True, slots=True)
class Context:
    """What a check may know about a node besides its settings."""

    # When the node was last checked (by the control node's clock), if ever.
    previous_check: datetime | None = None
    # When this node check began, by the same clock.
    started: datetime = field(default_factory=lambda: datetime.now(UTC))


class Check(ABC):
    """Something ugro verifies on a node."""

    name: ClassVar[str]
    # Share of the health score this check carries when it passes (see README, "Score").
    weight: ClassVar[float]
    # Seconds `timeouts.<name>` gives the check when cluster.yaml does not say.
    default_timeout_s: ClassVar[float]
    # One of the phase document's five checks, which the pass-rate rule counts (README,
    # "Verdict and score"); any other check that fails makes the node unhealthy by itself.
    core: ClassVar[bool] = False
    # A GPU health signal: it runs only on nodes that expect GPUs (`gpus` > 0).
    gpu_health: ClassVar[bool] = False
    # Whether the embedded default cluster (this machine, no SSH) runs it.
    local: ClassVar[bool] = True
    # Whether a node this check fails on still has a session, so that a recovery action
    # for the check can run on the node itself.
    session_when_failing: ClassVar[bool] = True
    # What a timeout most likely means on a node, and what to do about it.
    hang_hint: ClassVar[str] = "the node is overloaded or the command is stuck"

    def timeout(self, node: Worker) -> float:
        """Seconds this check may take on `node`."""
        return float(getattr(node.timeouts, self.name))

    def applies(self, node: Worker) -> bool:
        """Whether the check runs on `node` at all when its `checks` list names it."""
        return not self.gpu_health or node.gpus > 0

    @abstractmethod
    async def run(self, node: Worker, session: Session, context: Context) -> Evaluation:
        """Measure and evaluate; may raise (the monitor reports it)."""


class Answering(Check):
    """A check that runs commands on the node and judges their results, and nothing else.

    The sweep asks for its commands along with the rest of the node check's and judges it
    as soon as their results are in, or its timeout has passed, with no task, deadline or
    waiter of its own: those were most of what a node check cost the control node besides
    its SSH traffic. `run` does the same on a session of any kind.
    """

    @abstractmethod
    def asks(self, node: Worker, context: Context) -> tuple[str, ...]:
        """The POSIX shell commands whose results the check judges; config values quoted."""

    @abstractmethod
    def answer(
        self, results: Sequence[CommandResult | None], node: Worker, context: Context
    ) -> Evaluation:
        """Judge the results of `asks`, in its order; None where none came within the timeout.

        Pure. A CommandTimeout raised here fails the check as a timeout, as one from `run`.
        """

    async def run(self, node: Worker, session: Session, context: Context) -> Evaluation:
        """Run the commands concurrently on the node and judge what came back.

        What a session that is not the sweep's shared one (`ugro.checks.running`) runs.
        """
        timeout = self.timeout(node)
        commands = self.asks(node, context)
        results = await asyncio.gather(*(_within(session, c, timeout) for c in commands))
        return self.answer(results, node, context)


async def _within(session: Session, command: str, timeout: float) -> CommandResult | None:
    """The command's result; None when it did not finish within `timeout`."""
    try:
        return await session.run(command, timeout=timeout)
    except CommandTimeout:
        return None


class RemoteCheck(Answering):
    """A check that is one shell command on the node and a pure parser of its result."""

    @abstractmethod
    def command(self, node: Worker) -> str:
        """The POSIX shell command; every config value in it is quoted."""

    @abstractmethod
    def evaluate(self, result: CommandResult, node: Worker) -> Evaluation:
        """Judge the command's result; pure, so tests feed it captured output."""

    def asks(self, node: Worker, context: Context) -> tuple[str, ...]:  # noqa: ARG002 - no use
        """The one command."""
        return (self.command(node),)

    def answer(
        self,
        results: Sequence[CommandResult | None],
        node: Worker,
        context: Context,  # noqa: ARG002 - a command's checks need no context
    ) -> Evaluation:
        """Evaluate the command's result; `unanswered` when there was none."""
        (result,) = results
        if result is None:
            return self.unanswered(node)
        return self.evaluate(result, node)

    def unanswered(self, node: Worker) -> Evaluation:
        """What the check is when its command did not answer in time: a timeout (raised)."""
        raise CommandTimeout(f"did not finish within {self.timeout(node):g} s")


def cut_short(result: CommandResult, what: str) -> Evaluation | None:
    """UNKNOWN when the transport cut `what`'s output at its limit; None when it did not.

    A parser needs the whole output: judged from its first megabyte, a node would pass or
    fail on what it happened to print first.
    """
    if not result.truncated:
        return None
    return Evaluation(Status.UNKNOWN, f"not judged: {cut_note(what)}")


def cut_note(what: str) -> str:
    """What a message says of a command whose output the transport cut."""
    return (
        f"{what} printed more than {STDOUT_LIMIT // 2**20} MiB (or {STDERR_LIMIT // 2**10} KiB "
        "of errors), far more than a healthy node; its output was cut there and the command "
        "stopped. Run it on the node to see what it prints"
    )


def index(checks: Iterable[Check]) -> dict[str, Check]:
    """`checks` by name, in their order; raise DuplicateCheckError when two share a name."""
    named: dict[str, Check] = {}
    for check in checks:
        if check.name in named:
            raise DuplicateCheckError(
                f"a check named {check.name!r} is already registered "
                f"(by {type(named[check.name]).__module__})"
            )
        named[check.name] = check
    return named


@cache
def _load() -> dict[str, Check]:
    """Import every module of CHECK_MODULES, once, and index their checks."""
    checks = []
    for module in CHECK_MODULES:
        check = importlib.import_module(f"{__name__}.{module}").CHECK
        if not isinstance(check, Check):
            raise TypeError(f"{__name__}.{module}.CHECK is not a Check: {check!r}")
        checks.append(check)
    return index(checks)


def registry() -> dict[str, Check]:
    """All checks by name, in the order they run and are shown."""
    return dict(_load())
