"""Running one node's checks (ugro.checks.running): each judged as its own answers come in.

The node is in-process: a session whose commands answer from the fixtures at once, or hang,
or fail, as each test says; the checks are the real ones, judged without a task each.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from conftest import fixture_text
from ugro.checks import Check, Context, disk, gpu, gpuquery, reachability, registry, torch
from ugro.checks.running import run_all
from ugro.config import Worker
from ugro.errors import Disconnected, InvalidOutput
from ugro.model import CommandResult, NodeStatus, Status
from ugro.sweep import check_node
from ugro.transport.shared import SharedSession
from ugro.transport.tcp import RoundTrip

if TYPE_CHECKING:
    from ugro.model import Evaluation
    from ugro.transport import Session

NODE = Worker.model_validate(
    {
        "name": "n1",
        "ip": "10.0.0.1",
        "gpus": 2,
        "checks": ["ssh", "gpu", "torch", "disk", "latency", "ecc", "temperature"],
        "disk_paths": ["/", "/scratch"],
        "timeouts": {"torch": 1, "ecc": 1, "temperature": 1},
    }
)
ANSWERS = {
    reachability.COMMAND: CommandResult(0, fixture_text("proc", "healthy.txt")),
    gpu.COMMAND: CommandResult(0, fixture_text("nvidia-smi", "healthy-2x4090.csv")),
    torch.CHECK.command(NODE): CommandResult(0, fixture_text("torch", "healthy.txt")),
    disk.CHECK.command(NODE): CommandResult(0, fixture_text("df", "healthy-two-paths.txt")),
    gpuquery.COMMAND: CommandResult(0, fixture_text("nvidia-smi", "health-2x4090.csv")),
}
#: What a test makes a command do instead: answer otherwise, raise, or hang (None).
Fault = CommandResult | BaseException | None


class Node:
    """A session and its transport: every command answers from ANSWERS unless `faults` says."""

    peer = None

    def __init__(self, faults: dict[str, Fault] | None = None) -> None:
        """A node whose commands in `faults` answer otherwise, raise, or hang (None)."""
        self.faults = faults or {}
        self.asked: list[str] = []

    def round_trip(self) -> RoundTrip:
        """A quick connection, nothing resent."""
        return RoundTrip(0.5, sent=40, resent=0)

    async def run(self, command: str, *, timeout: float) -> CommandResult:
        """The captured answer, or the fault; a hang lasts until the check gives up."""
        del timeout
        self.asked.append(command)
        if command not in self.faults:
            return ANSWERS[command]
        fault = self.faults[command]
        if isinstance(fault, CommandResult):
            return fault
        if fault is not None:
            raise fault
        await asyncio.sleep(3600)
        raise AssertionError("a hung command is given up on")

    async def open(self, node: Worker) -> Session:
        """This same object, as the session."""
        del node
        return self

    async def close(self) -> None:
        """Nothing to close."""


def checked(faults: dict[str, Fault] | None = None) -> tuple[dict[str, tuple[Status, str]], Node]:
    """One check of NODE: each check's status and message, and the node that answered."""
    node = Node(faults)
    verdict = asyncio.run(asyncio.wait_for(check_node(NODE, node), 30))
    return {c.name: (c.status, c.message) for c in verdict.checks}, node


def test_without_a_fault_every_check_passes_and_each_command_runs_once() -> None:
    """The baseline: every check ok, and each distinct command asked for once."""
    results, node = checked()
    assert {name for name, (status, _) in results.items() if status is not Status.OK} == set()
    assert len(node.asked) == len(set(node.asked))
    assert gpuquery.COMMAND in node.asked


def test_a_hung_command_fails_its_own_check_at_its_own_timeout_and_holds_back_no_other() -> None:
    """The torch probe hangs: it fails at its 1 s; the others are judged as their answers come."""

    async def main() -> list[tuple[str, float]]:
        session = SharedSession(Node({torch.CHECK.command(NODE): None}))
        checks: list[tuple[Check, Evaluation | None]] = [
            (registry()[name], None) for name in NODE.checks
        ]
        try:
            outcomes = await run_all(checks, NODE, session, Context())
        finally:
            session.close()
        return [
            (f"{check.name}: {evaluation.status.name} {evaluation.message}", duration)
            for (check, _), (evaluation, duration) in zip(checks, outcomes, strict=True)
        ]

    judged = dict(asyncio.run(main()))
    (hung,) = (line for line in judged if line.startswith("torch: "))
    assert hung.startswith("torch: FAIL no answer within 1 s (timeouts.torch)")
    assert all(" OK " in line for line in judged if line is not hung)
    assert max(d for line, d in judged.items() if line is not hung) < judged[hung]


def test_a_hung_nvidia_smi_query_is_unknown_for_each_check_that_reads_it() -> None:
    """The shared query hangs: the GPU health checks that read it are unknown, not failed."""
    results, _ = checked({gpuquery.COMMAND: None})
    for name in ("ecc", "temperature"):
        status, message = results[name]
        assert status is Status.UNKNOWN, name
        assert "nvidia-smi did not answer within" in message
    assert results["gpu"][0] is Status.OK


def test_a_lost_connection_fails_only_the_checks_whose_command_it_took() -> None:
    """The gpu command's channel breaks: the gpu check cannot run; the others are ok."""
    results, _ = checked({gpu.COMMAND: Disconnected("the channel closed")})
    assert results["gpu"] == (Status.FAIL, "gpu could not run: the channel closed")
    assert all(status is Status.OK for name, (status, _) in results.items() if name != "gpu")


def test_an_implausible_answer_is_unknown_for_the_checks_that_read_it() -> None:
    """The reader refused the disk command's answer: the disk check says why, unknown."""
    results, _ = checked({disk.CHECK.command(NODE): InvalidOutput("a garbled header")})
    status, message = results["disk"]
    assert status is Status.UNKNOWN
    assert message == "not judged, the node's answer is not plausible: a garbled header"


def test_once_the_shell_fails_the_others_are_given_up() -> None:
    """The ssh check fails: every other check is unknown, whatever it would have said."""
    results, _ = checked(
        {
            reachability.COMMAND: CommandResult(1, "", "fork: retry"),
            torch.CHECK.command(NODE): None,
        }
    )
    assert results["ssh"][0] is Status.FAIL
    given_up = {n for n, (s, m) in results.items() if "shell did not answer (ssh check)" in m}
    assert given_up == set(NODE.checks) - {"ssh"}
    assert all(results[name][0] is Status.UNKNOWN for name in given_up)


@pytest.mark.parametrize("stage", ["asks", "answer"])
def test_a_check_that_raises_is_unknown_and_the_node_is_still_judged(
    monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    """A bug in one check's asks or answer: that check is unknown, the rest are judged."""

    def broken(*args: object) -> object:
        del args
        raise RuntimeError(f"{stage} broke")

    monkeypatch.setattr(registry()["disk"], stage, broken)
    node = Node()
    verdict = asyncio.run(asyncio.wait_for(check_node(NODE, node), 30))
    results = {c.name: (c.status, c.message) for c in verdict.checks}
    assert results["disk"] == (
        Status.UNKNOWN,
        f"disk check could not judge the result: RuntimeError: {stage} broke",
    )
    assert all(status is Status.OK for name, (status, _) in results.items() if name != "disk")
    assert verdict.status is not NodeStatus.UNREACHABLE
