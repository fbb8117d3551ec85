"""What a sweep persists is bounded: messages cut, values finite, implausible answers unknown."""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING

import pytest

from conftest import fixture_text
from ugro.checks import gpu, reachability, registry
from ugro.config import Worker
from ugro.errors import InvalidOutput
from ugro.model import CommandResult, Evaluation, NodeStatus, Status
from ugro.sweep import MAX_MESSAGE_CHARS, check_node

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ugro.checks import Context
    from ugro.model import CheckResult, NodeVerdict
    from ugro.transport import Session

NODE = Worker.model_validate({"name": "n1", "ip": "10.0.0.1", "gpus": 2, "checks": ["ssh", "gpu"]})
ANSWERS = {
    reachability.COMMAND: CommandResult(0, fixture_text("proc", "healthy.txt")),
    gpu.COMMAND: CommandResult(0, fixture_text("nvidia-smi", "healthy-2x4090.csv")),
}


class Captured:
    """A healthy node: sessions answer each command from the fixtures."""

    peer = None

    def round_trip(self) -> None:
        """No TCP connection of its own: the latency check falls back to probes."""

    async def run(self, command: str, *, timeout: float) -> CommandResult:
        """The captured answer to `command`."""
        del timeout
        return ANSWERS[command]

    async def open(self, node: Worker) -> Session:
        """This same object, as the session."""
        del node
        return self

    async def close(self) -> None:
        """Nothing to close."""


def checked() -> NodeVerdict:
    """One check of NODE over captured answers."""
    return asyncio.run(check_node(NODE, Captured()))


def gpu_returns(monkeypatch: pytest.MonkeyPatch, outcome: Evaluation | Exception) -> CheckResult:
    """The gpu check's persisted result when its judgement returns (or raises) `outcome`."""

    def answer(
        results: Sequence[CommandResult | None], node: Worker, context: Context
    ) -> Evaluation:
        del results, node, context
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setattr(registry()["gpu"], "answer", answer)
    return next(c for c in checked().checks if c.name == "gpu")


def test_a_long_message_is_cut_saying_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """A message quoting a megabyte a node printed is kept to MAX_MESSAGE_CHARS."""
    result = gpu_returns(monkeypatch, Evaluation(Status.FAIL, "nvidia-smi said: " + "x" * 2**20))
    assert len(result.message) == MAX_MESSAGE_CHARS
    assert result.message.endswith(" […cut]")
    assert result.status is Status.FAIL


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 10**400])
def test_a_value_no_float_holds_makes_the_check_unknown(
    monkeypatch: pytest.MonkeyPatch, value: float
) -> None:
    """nan, infinities, a 400-digit int as a check's value: unknown, and no value is kept."""
    result = gpu_returns(monkeypatch, Evaluation(Status.OK, "fine", value=value, unit="gpus"))
    assert result.status is Status.UNKNOWN
    assert result.value is None
    assert "is not a finite number" in result.message


def test_values_are_kept_as_floats(monkeypatch: pytest.MonkeyPatch) -> None:
    """An int value (a GPU count) is persisted as a float, which SQLite and JSON both hold."""
    result = gpu_returns(monkeypatch, Evaluation(Status.OK, "2 GPUs", value=2, unit="gpus"))
    assert (result.value, type(result.value)) == (2.0, float)


def test_an_implausible_answer_is_unknown_saying_what(monkeypatch: pytest.MonkeyPatch) -> None:
    """InvalidOutput is the node's fault: unknown, with what was wrong, and the node not healthy."""
    message = "temperature.gpu of GPU 0 is 'nan', not a reading in -40 to 150 °C"
    result = gpu_returns(monkeypatch, InvalidOutput(message))
    assert result.status is Status.UNKNOWN
    assert result.message == f"not judged, the node's answer is not plausible: {message}"


def test_a_long_connect_error_is_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reason a server gives for refusing a connection is bounded like any message."""
    from ugro.errors import ConnectError

    async def refuse(node: Worker) -> Session:
        del node
        raise ConnectError("cannot connect: " + "y" * 2**20)

    transport = Captured()
    monkeypatch.setattr(transport, "open", refuse)
    verdict = asyncio.run(check_node(NODE, transport))
    assert verdict.status is NodeStatus.UNREACHABLE
    assert all(len(c.message) <= MAX_MESSAGE_CHARS for c in verdict.checks)
    assert all(len(a.text) <= MAX_MESSAGE_CHARS + 20 for a in verdict.alerts)
