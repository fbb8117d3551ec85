"""Paced starts (ugro.daemon.schedule): a fleet's checks are spread, not opened at once."""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING

import pytest

from ugro.config import Worker
from ugro.daemon.schedule import NODE_CHECK_CPU_S, Schedule, pause_s

if TYPE_CHECKING:
    from ugro.model import NodeVerdict

NODES = [Worker(name=f"n{i}", ip=f"10.0.0.{i + 1}") for i in range(5)]


@pytest.mark.parametrize(
    ("nodes", "batch", "interval", "expected"),
    [
        (1000, 32, 30, 1000 * NODE_CHECK_CPU_S / 32),  # 15 s of starts, 32 batches
        (1000, 32, 10, 5 / 32),  # at most half the interval
        (100, 32, 10, 100 * NODE_CHECK_CPU_S / 4),
        (32, 32, 10, 0.0),  # one batch: no pause
        (1, 32, 30, 0.0),
    ],
)
def test_pause_spreads_a_fleet_over_its_cpu_or_half_the_interval(
    nodes: int, batch: int, interval: float, expected: float
) -> None:
    """The pause after a full batch, for fleets from one node to a thousand."""
    assert math.isclose(pause_s(nodes, batch, interval), expected)


def test_a_full_batch_pauses_the_starts_and_the_rest_follow() -> None:
    """Five due nodes, batches of two, 5 s apart: 2, then 2 at 5 s, then 1 at 10 s."""

    async def hang(node: Worker) -> NodeVerdict:
        del node
        await asyncio.sleep(3600)
        raise AssertionError("never completes")

    async def main() -> list[tuple[float, list[str]]]:
        schedule = Schedule([n.name for n in NODES], 0.0, asyncio.Event(), batch=2, pause_s=5.0)
        seen = []
        for now in (0.0, 1.0, 5.0, 5.0, 10.0):
            schedule.start_due(NODES, now, hang)
            seen.append((schedule.next_due(), sorted(schedule.running)))
        await schedule.abandon(list(schedule.running), 11.0)
        return seen

    assert asyncio.run(main()) == [
        (5.0, ["n0", "n1"]),
        (5.0, ["n0", "n1"]),  # paused: nothing starts before 5 s
        (10.0, ["n0", "n1", "n2", "n3"]),
        (10.0, ["n0", "n1", "n2", "n3"]),
        (math.inf, ["n0", "n1", "n2", "n3", "n4"]),  # a partial batch sets no pause
    ]


def test_without_a_batch_every_due_node_starts() -> None:
    """The default schedule (tests, small fleets) starts every due node at once."""

    async def hang(node: Worker) -> NodeVerdict:
        del node
        await asyncio.sleep(3600)
        raise AssertionError("never completes")

    async def main() -> list[str]:
        schedule = Schedule([n.name for n in NODES], 0.0, asyncio.Event())
        schedule.start_due(NODES, 0.0, hang)
        running = sorted(schedule.running)
        await schedule.abandon(running, 1.0)
        return running

    assert asyncio.run(main()) == [n.name for n in NODES]
