"""How fast `ugro history` answers on 30 days × 100 nodes, and how big the database grows.

Builds a history database the size a 100-node cluster writes in 30 days at the default 30 s
interval (samples generated inside SQLite, rollups included), then times the queries
`ugro history` makes. Separately, records one node for one day through `History.record`
(what the daemon does) to measure bytes per node per day.

    .venv/bin/python benchmarks/history_queries.py [--nodes 100] [--days 30]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ugro.model import CheckResult, NodeStatus, NodeVerdict, Status, Tracking
from ugro.store.history import HOUR_MS, History
from ugro.store.history_records import Sample

INTERVAL_MS = 30_000


def build(path: Path, nodes: int, days: int, end_ms: int) -> None:
    """Fill node samples, latency samples and rollups for `nodes` × `days`."""
    history = History(path)
    for n in range(nodes):
        history._id("node", f"gpu{n:03d}")  # noqa: SLF001 - the benchmark seeds ids directly
    latency = history._id("check", "latency")  # noqa: SLF001
    db = history._db  # noqa: SLF001
    samples = days * 86_400_000 // INTERVAL_MS
    start = end_ms - samples * INTERVAL_MS
    with db:
        db.execute(
            """WITH RECURSIVE i(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM i WHERE k < ?)
               INSERT INTO node_samples
               SELECT n.id, ? + k * ?, CASE WHEN abs(random()) % 100 < 2 THEN 2 ELSE 0 END,
                      0, 100.0, ?
               FROM names n, i WHERE n.kind = 'node'""",
            (samples - 1, start, INTERVAL_MS, INTERVAL_MS),
        )
        db.execute(
            """INSERT INTO check_samples
               SELECT node, ?, ts, 0, 0.2 + (abs(random()) % 1000) / 1000.0, 1 FROM node_samples""",
            (latency,),
        )
        db.execute(
            """INSERT INTO node_hours
               SELECT node, ts / ?, count(*), sum(weight_ms),
                      sum(CASE WHEN status < 2 THEN weight_ms ELSE 0 END),
                      sum(CASE WHEN status IN (2, 3) THEN weight_ms ELSE 0 END),
                      min(score), sum(score)
               FROM node_samples GROUP BY node, ts / ?""",
            (HOUR_MS, HOUR_MS),
        )
        db.execute(
            """INSERT INTO latency_hours
               SELECT node, ts / ?, CAST(floor(log2(value) * 4) AS INTEGER), count(*)
               FROM check_samples GROUP BY 1, 2, 3""",
            (HOUR_MS,),
        )
    history.close()


def timed(repeats: int, call: object) -> float:
    """Median wall seconds of `call()`."""
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()  # type: ignore[operator]
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def bytes_per_node_day(directory: Path) -> int:
    """Record one node for a day, as the daemon does, and measure the file."""
    path = directory / "one.db"
    history = History(path)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    for i in range(86_400_000 // INTERVAL_MS):
        at = start + timedelta(milliseconds=i * INTERVAL_MS)
        checks = tuple(
            CheckResult(name, Status.OK, "ok", value, unit, 12.0)
            for name, value, unit in (
                ("ssh", None, None),
                ("gpu", 8.0, "gpus"),
                ("torch", 8.0, "devices"),
                ("disk", 512.3, "GB"),
                ("latency", 0.4, "ms"),
            )
        )
        tracking = Tracking(NodeStatus.HEALTHY, start, 0, i, 0, at)
        verdict = NodeVerdict(
            "gpu1", "10.0.0.1", NodeStatus.HEALTHY, 100.0, 1.0, at, checks, tracking=tracking
        )
        history.record([Sample(verdict, 30)])
    history._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # noqa: SLF001
    history.close()
    return path.stat().st_size


def main() -> None:
    """Build, time, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        now = datetime.now(UTC)
        path = directory / "history.db"
        started = time.perf_counter()
        build(path, args.nodes, args.days, round(now.timestamp() * 1000))
        took = time.perf_counter() - started
        print(
            f"built {args.nodes} nodes × {args.days} days in {took:.0f} s; "
            f"{path.stat().st_size / 1e6:.0f} MB (node and latency samples only)"
        )
        since = now - timedelta(days=args.days)
        history = History(path)
        rows = [
            ("summaries, all nodes, whole period", lambda: history.summaries(None, since, now)),
            ("summaries, one node, whole period", lambda: history.summaries("gpu001", since, now)),
            (
                "summaries, all nodes, last 24 h",
                lambda: history.summaries(None, now - timedelta(days=1), now),
            ),
            (
                "score chart, one node, whole period",
                lambda: history.score_series("gpu001", since, now, 20),
            ),
            (
                "score charts, all nodes, whole period",
                lambda: [history.score_series(n, since, now, 20) for n in history.nodes()],
            ),
            ("transitions, all nodes, whole period", lambda: history.transitions(None, since)),
        ]
        print(f"{'query':<42} {'median of 5':>12}")
        for name, call in rows:
            print(f"{name:<42} {timed(5, call) * 1000:>9.0f} ms")
        history.close()
        size = bytes_per_node_day(directory)
        print(
            f"one node, one day at 30 s, five checks, via History.record: {size / 1000:.0f} kB "
            f"(≈ {size * 30 / 1e6:.0f} MB per node for 30 days)"
        )


if __name__ == "__main__":
    main()
