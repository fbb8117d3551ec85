"""One sweep (ugro.sweep): whatever a check raises stays that check's, on that node.

The nodes are in-process: a transport whose sessions answer each command with captured output
from tests/fixtures, so every check passes unless a test breaks it.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest

from conftest import fixture_text
from ugro.checks import disk, gpu, reachability, registry
from ugro.config import Worker
from ugro.model import CommandResult, NodeStatus, Status
from ugro.sweep import Transports, sweep
from ugro.transport.tcp import RoundTrip

if TYPE_CHECKING:
    from ugro.checks import Context
    from ugro.model import Evaluation, NodeVerdict
    from ugro.transport import Session

CHECKS = ["ssh", "gpu", "disk", "latency"]
NODES = [
    Worker.model_validate(
        {
            "name": f"n{i}",
            "ip": f"10.0.0.{i}",
            "gpus": 2,
            "checks": CHECKS,
            "disk_paths": ["/", "/scratch"],
        }
    )
    for i in (1, 2, 3)
]
#: The node whose check breaks; n1 and n3 must not notice.
VICTIM = "n2"
ANSWERS = {
    reachability.COMMAND: CommandResult(0, fixture_text("proc", "healthy.txt")),
    gpu.COMMAND: CommandResult(0, fixture_text("nvidia-smi", "healthy-2x4090.csv")),
    disk.CHECK.command(NODES[0]): CommandResult(0, fixture_text("df", "healthy-two-paths.txt")),
}
ERRORS = [
    RuntimeError("the check's own bug"),
    OverflowError("cannot convert float infinity to integer"),
    KeyError("temperature.gpu"),
    ZeroDivisionError("division by zero"),
]


class CapturedSession:
    """A healthy node: each command gets its captured answer, and a quick round trip."""

    peer = None

    def round_trip(self) -> RoundTrip:
        """The round trip the latency check reads: well within its limit, nothing resent."""
        return RoundTrip(0.5, sent=40, resent=0)

    async def run(self, command: str, *, timeout: float) -> CommandResult:
        """The captured answer to `command`."""
        del timeout
        return ANSWERS[command]


class CapturedTransport:
    """Opens a CapturedSession to any node."""

    async def open(self, node: Worker) -> Session:
        """A session that answers from the fixtures."""
        del node
        return CapturedSession()

    async def close(self) -> None:
        """Nothing to close."""


def swept() -> dict[str, NodeVerdict]:
    """One sweep of NODES over captured sessions, by node name."""

    async def main() -> list[NodeVerdict]:
        transport = CapturedTransport()
        return await sweep(NODES, Transports(ssh=transport, local=transport))

    return {v.name: v for v in asyncio.run(main())}


def outcomes(verdict: NodeVerdict) -> dict[str, tuple[Status, str, float | None]]:
    """Each check's status, message and value (its duration varies from sweep to sweep)."""
    return {c.name: (c.status, c.message, c.value) for c in verdict.checks}


def test_captured_nodes_pass_every_check() -> None:
    """The baseline: without a fault, every check of every node passes and each is healthy."""
    verdicts = swept()
    assert list(verdicts) == ["n1", "n2", "n3"]
    for verdict in verdicts.values():
        assert {c.name: c.status for c in verdict.checks} == dict.fromkeys(CHECKS, Status.OK)
        assert verdict.status is NodeStatus.HEALTHY


def break_check(
    monkeypatch: pytest.MonkeyPatch, name: str, stage: str, error: BaseException
) -> None:
    """Make check `name` raise `error` at `stage` on VICTIM only, for the rest of the test.

    `run` is the body of a check the sweep runs as a task; `asks` and `answer` are what the
    sweep calls of a check that only judges commands' results, and `evaluate` its parser;
    `timeout` and `applies` are what the sweep asks a check before it runs it.
    """
    check = registry()[name]
    original = getattr(check, stage)

    if stage == "run":

        async def broken_run(node: Worker, session: Session, context: Context) -> Evaluation:
            if node.name == VICTIM:
                raise error
            result: Evaluation = await original(node, session, context)
            return result

        monkeypatch.setattr(check, stage, broken_run)
        return

    def broken(*args: Any) -> Any:
        node = next(a for a in args if isinstance(a, Worker))
        if node.name == VICTIM:
            raise error
        return original(*args)

    monkeypatch.setattr(check, stage, broken)


def assert_only_the_victims_check_is_unknown(
    before: dict[str, NodeVerdict], after: dict[str, NodeVerdict], name: str, error: str
) -> None:
    """VICTIM's check `name` is unknown, naming the check and `error`; nothing else changed."""
    assert list(after) == list(before)
    for other in ("n1", "n3"):
        assert outcomes(after[other]) == outcomes(before[other])
        assert after[other].status is before[other].status
        assert after[other].health_score == before[other].health_score
    victim = outcomes(after[VICTIM])
    status, message, value = victim.pop(name)
    assert status is Status.UNKNOWN
    assert value is None
    assert message.startswith(f"{name} "), message
    assert error in message
    assert victim == {n: o for n, o in outcomes(before[VICTIM]).items() if n != name}


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize(
    ("name", "stage"),
    [
        *((name, stage) for name in ("ssh", "gpu", "disk") for stage in ("answer", "evaluate")),
        ("gpu", "asks"),
        ("latency", "run"),
    ],
)
def test_a_raising_check_is_unknown_for_that_check_and_node_only(
    monkeypatch: pytest.MonkeyPatch, name: str, stage: str, error: Exception
) -> None:
    """A check that raises on one node is that node's unknown check; nothing else changes."""
    before = swept()
    break_check(monkeypatch, name, stage, error)
    assert_only_the_victims_check_is_unknown(before, swept(), name, type(error).__name__)


@pytest.mark.parametrize("stage", ["timeout", "applies"])
@pytest.mark.parametrize("name", CHECKS)
def test_a_check_that_raises_before_it_runs_is_unknown_too(
    monkeypatch: pytest.MonkeyPatch, name: str, stage: str
) -> None:
    """A check whose timeout() or applies() raises is that node's unknown check, too.

    A check without a `timeouts.<name>` setting raises AttributeError from the default
    timeout(), and applies() reads node settings that a check may not expect.
    """
    before = swept()
    break_check(monkeypatch, name, stage, RuntimeError(f"{stage} broke"))
    assert_only_the_victims_check_is_unknown(before, swept(), name, "RuntimeError")


class Unprintable(Exception):
    """An exception whose message cannot be made: str() of it raises."""

    def __str__(self) -> str:
        """Fail, as a broken __str__ of a library's exception would."""
        raise ValueError("no message")


def test_an_exception_that_cannot_say_what_it_is_is_unknown_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A check raising an exception whose str() fails is still only that check's unknown."""
    before = swept()
    break_check(monkeypatch, "gpu", "answer", Unprintable())
    assert_only_the_victims_check_is_unknown(before, swept(), "gpu", "Unprintable")


def test_a_local_worker_is_not_failed_by_latency() -> None:
    """A `transport: local` worker with the core checks is healthy: no probe of its own port 22."""
    local = Worker.model_validate(
        {
            "name": "ctl",
            "ip": "127.0.0.1",
            "transport": "local",
            "gpus": 0,
            "min_disk_gb": 0,
            "checks": ["ssh", "disk", "latency"],
        }
    )

    async def main() -> list[NodeVerdict]:
        transports = Transports()
        try:
            return await sweep([local], transports)
        finally:
            await transports.close()

    (verdict,) = asyncio.run(main())
    assert [c.name for c in verdict.checks] == ["ssh", "disk"]
    assert verdict.status is NodeStatus.HEALTHY, verdict.failing()
