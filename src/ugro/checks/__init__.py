"""The checks ugro runs on every node, and the registry that names them.

A check is a command plus a pure `evaluate`; checks may raise, and the monitor turns what
they raise into a result that names the check.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from datetime import datetime

    from ugro.config import Worker
    from ugro.model import CommandResult, Evaluation
    from ugro.transport import Session


class DuplicateCheckError(ValueError):
    """A second check tried to register under a name already taken."""


@dataclass(frozen=True, slots=True)
class Context:
    """What a check may know about a node besides its settings."""

    # When the node was last checked (by the control node's clock), if ever.
    previous_check: datetime | None = None


class Check(ABC):
    """Something ugro verifies on a node."""

    name: ClassVar[str]
    # Share of the health score this check carries when it passes (see README, "Score").
    weight: ClassVar[float]
    # What a timeout most likely means on a node, and what to do about it.
    hang_hint: ClassVar[str] = "the node is overloaded or the command is stuck"

    def timeout(self, node: Worker) -> float:
        """Seconds this check may take on `node`."""
        return float(getattr(node.timeouts, self.name))

    def applies(self, node: Worker) -> bool:  # noqa: ARG002 - most checks apply everywhere
        """Whether the check runs on `node` at all when its `checks` list names it."""
        return True

    @abstractmethod
    async def run(self, node: Worker, session: Session, context: Context) -> Evaluation:
        """Measure and evaluate; may raise (the monitor reports it)."""


class RemoteCheck(Check):
    """A check that is one shell command on the node and a pure parser of its result."""

    @abstractmethod
    def command(self, node: Worker) -> str:
        """The POSIX shell command; every config value in it is quoted."""

    @abstractmethod
    def evaluate(self, result: CommandResult, node: Worker) -> Evaluation:
        """Judge the command's result; pure, so tests feed it captured output."""

    async def run(
        self,
        node: Worker,
        session: Session,
        context: Context,  # noqa: ARG002 - a command's checks need no context
    ) -> Evaluation:
        """Run the command on the node and evaluate what came back."""
        result = await session.run(self.command(node), timeout=self.timeout(node))
        return self.evaluate(result, node)


def probe_report(stdout: str, marker: str) -> dict[str, Any] | None:
    """The JSON object a node-side probe printed after `marker`, on the last such line.

    Other lines (a conda banner, a warning) are ignored; None when there is no such line, or
    it is cut short or not an object.
    """
    for line in reversed(stdout.splitlines()):
        if line.startswith(marker):
            try:
                data = json.loads(line.removeprefix(marker))
            except ValueError:
                return None
            return data if isinstance(data, dict) else None
    return None


_REGISTRY: dict[str, Check] = {}


def register(check: Check) -> Check:
    """Add a check to the registry; raise DuplicateCheckError when its name is taken."""
    if check.name in _REGISTRY:
        raise DuplicateCheckError(f"a check named {check.name!r} is already registered")
    _REGISTRY[check.name] = check
    return check


def registry() -> dict[str, Check]:
    """All checks by name, in the order they run and are shown."""
    if not _REGISTRY:
        from ugro.checks import (
            deep,
            disk,
            ecc,
            gpu,
            latency,
            pcie,
            processes,
            reachability,
            remap,
            rendezvous,
            temperature,
            throttle,
            torch,
            xid,
        )

        for module in (
            reachability,
            gpu,
            torch,
            disk,
            latency,
            ecc,
            remap,
            xid,
            throttle,
            pcie,
            processes,
            temperature,
            rendezvous,
            deep,
        ):
            register(module.CHECK)
    return dict(_REGISTRY)
