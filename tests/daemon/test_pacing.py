"""Paced starts (ugro.daemon.schedule): a fleet's checks are spread, not opened at once."""

from __future__ import annotations

import asyncio
import json
import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from ugro import config
from ugro.config import Worker
from ugro.daemon.loop import SETTLE_SHARE, Daemon
from ugro.daemon.schedule import NODE_CHECK_CPU_S, Schedule, pause_s
from ugro.model import CheckResult, Status
from ugro.verdict import scoring

if TYPE_CHECKING:
    from pathlib import Path

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


def test_the_batches_of_a_paced_round_settle_as_one_sweep() -> None:
    """A round's first batch done, its second still running: the sweep waits for it."""
    release = asyncio.Event()

    async def check(node: Worker) -> NodeVerdict:
        if node.name in ("n0", "n1"):
            return verdict(node.name)
        await release.wait()
        return verdict(node.name)

    async def main() -> tuple[float | None, float | None, list[tuple[str, float, float]]]:
        schedule = Schedule([n.name for n in NODES[:4]], 0.0, asyncio.Event(), batch=2, pause_s=5)
        schedule.start_due(NODES[:4], 0.0, check)
        # n0 and n1 complete (the schedule's done callbacks run before gather's).
        await asyncio.gather(*schedule.running.values())
        schedule.start_due(NODES[:4], 5.0, check)  # the round's second batch
        waiting = schedule.settle_at(60.0)
        first = waiting - 60.0 if waiting is not None else None
        release.set()
        await asyncio.gather(*schedule.running.values())
        done = schedule.settle_at(60.0)
        return (
            waiting,
            (done - first if done is not None and first is not None else None),
            [(c.name, c.started, c.cohort) for c in schedule.take()],
        )

    waiting, settled_after, taken = asyncio.run(main())
    assert waiting is not None  # n0, n1 wait for their cohort: the whole round
    assert settled_after == 0.0  # once the round is done, at once
    assert taken == [("n0", 0.0, 0.0), ("n1", 0.0, 0.0), ("n2", 5.0, 0.0), ("n3", 5.0, 0.0)]


def verdict(name: str) -> NodeVerdict:
    """A healthy verdict for `name`, checked now."""
    return scoring.verdict(
        name=name,
        address="10.0.0.1",
        when=datetime.now(UTC),
        checks=(CheckResult("ssh", Status.OK, "ok"),),
        weights={"ssh": 1.0},
        thresholds=scoring.Thresholds(0.9, 80),
        core=frozenset({"ssh"}),
    )


def test_settles_are_spaced_by_their_cost_but_a_first_verdict_is_never_held(
    tmp_path: Path,
) -> None:
    """The next settle waits twenty times the last one's duration, at most half an interval.

    While a completed node has no verdict yet, it does not wait at all.
    """
    path = tmp_path / "cluster.yaml"
    path.write_text(
        json.dumps({"monitor": {"interval_s": 30}, "workers": [{"name": "n0", "ip": "10.0.0.1"}]}),
        encoding="utf-8",
    )
    daemon = Daemon(path, config.load(path))

    async def main() -> tuple[float, float, float]:
        daemon.schedule = Schedule(["n0"], 0.0, asyncio.Event())
        daemon.schedule.start_due(NODES[:1], 0.0, lambda node: _done(node.name))
        await asyncio.gather(*daemon.schedule.running.values())
        daemon.last_settle_s = 0.1
        first = daemon._gap()  # noqa: SLF001 - the policy under test
        daemon.settler.shown["n0"] = verdict("n0")
        spaced = daemon._gap()  # noqa: SLF001
        daemon.last_settle_s = 5.0
        return first, spaced, daemon._gap()  # noqa: SLF001

    first, spaced, capped = asyncio.run(main())
    assert first == 0.0
    assert spaced == pytest.approx(SETTLE_SHARE * 0.1)
    assert capped == 15.0


async def _done(name: str) -> NodeVerdict:
    """A check that completes at once, healthy."""
    return verdict(name)
