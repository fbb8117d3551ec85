"""State files with one hostile node: what the store, the exporter and Prometheus must survive.

`write_state` stores healthy, fully populated verdicts (GPUs, host, disks, versions), then
rewrites one node's entry in the JSON as a hand edit, an old ugro or a bug upstream might:
a 310-digit byte count from `df`, NaN and infinity, numbers as strings, labels as numbers,
an entry that is not an object at all.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from ugro.model import (
    CheckResult,
    DiskSpace,
    GpuMetrics,
    HostMetrics,
    NodeStatus,
    NodeVerdict,
    Status,
    Tracking,
)
from ugro.store.state import StateStore

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

Entry = dict[str, Any]

HUGE = int("9" * 310)


def healthy(name: str) -> NodeVerdict:
    """A healthy verdict with every optional part filled in."""
    now = datetime.now(UTC)
    return NodeVerdict(
        name=name,
        address=f"{name}.example.org",
        status=NodeStatus.HEALTHY,
        health_score=100.0,
        pass_rate=1.0,
        last_check=now,
        checks=(
            CheckResult("ssh", Status.OK, "ok", duration_ms=3.0),
            CheckResult("latency", Status.OK, "0.4 ms", value=0.4, unit="ms", duration_ms=1.0),
        ),
        gpus=(GpuMetrics(0, "GPU-0", "NVIDIA H100", 41.0, 10.0, 1024.0, 81559.0, 300.0, 700.0),),
        host=HostMetrics(1.5, 1.25, 1.0, 64, 512 * 2**30, 400 * 2**30),
        disks=(DiskSpace("/", "/", 100 * 2**30, 500 * 2**30),),
        tracking=Tracking(NodeStatus.HEALTHY, now, 0, 3, 0, now + timedelta(seconds=30)),
        versions={"driver": "550.54.15"},
    )


def _set(path: str, value: object) -> Callable[[Entry], Entry]:
    """A mutation that sets the dotted `path` (list indices as numbers) of an entry."""

    def mutate(entry: Entry) -> Entry:
        *parents, last = path.split(".")
        target: Any = entry
        for key in parents:
            target = target[int(key)] if key.isdigit() else target[key]
        target[int(last) if last.isdigit() else last] = value
        return entry

    return mutate


#: The issue's own case: `df` said a filesystem has 310 digits of bytes free.
HUGE_DISK = _set("disks.0.free_bytes", HUGE)

#: One hostile node entry each: what was done to it.
HOSTILE = [
    pytest.param(HUGE_DISK, id="310-digit-disk"),
    pytest.param(_set("host.memory_total_bytes", HUGE), id="310-digit-memory"),
    pytest.param(_set("health_score", float("nan")), id="nan-score"),
    pytest.param(_set("gpus.0.temperature_c", float("inf")), id="infinite-temperature"),
    pytest.param(_set("checks.latency.value", float("-inf")), id="infinite-latency"),
    pytest.param(_set("health_score", "100"), id="score-a-string"),
    pytest.param(_set("disks.0.path", 7), id="label-a-number"),
    pytest.param(_set("gpus.0.index", value=True), id="index-a-bool"),
    pytest.param(_set("checks.ssh.status", 0), id="status-a-number"),
    pytest.param(_set("tracking.fail_streak", float("inf")), id="infinite-streak"),
    pytest.param(_set("health_score", 1e300), id="score-out-of-range"),
    pytest.param(lambda _: "healthy", id="entry-a-string"),
    pytest.param(lambda entry: {"name": entry["name"]}, id="entry-missing-fields"),
]


def write_state(
    path: Path, mutate: Callable[[Entry], object], good: tuple[str, ...] = ("gpu1", "gpu3")
) -> None:
    """Store `good` healthy nodes and a node `gpu2` whose entry `mutate` made hostile."""
    StateStore(path).update([healthy(name) for name in (*good, "gpu2")])
    document = json.loads(path.read_text(encoding="utf-8"))
    document["nodes"]["gpu2"] = mutate(document["nodes"]["gpu2"])
    # json writes NaN and Infinity as Python does, as other tools may; 310 digits stay digits.
    path.write_text(json.dumps(document), encoding="utf-8")
