"""The history store on a real SQLite file, and `ugro history` on top of it."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import run_ugro
from ugro.model import CheckResult, NodeStatus, NodeVerdict, Status, Tracking
from ugro.store.history import History, opened
from ugro.store.history_records import Sample, Transition, bucket, bucket_value

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

T0 = datetime(2026, 11, 1, tzinfo=UTC)
H, U, X = NodeStatus.HEALTHY, NodeStatus.UNHEALTHY, NodeStatus.UNREACHABLE


def verdict(
    node: str, at: datetime, status: NodeStatus, score: float = 100.0, latency: float | None = 1.0
) -> NodeVerdict:
    """A verdict as the daemon stores it: with tracking, a latency and an ssh check."""
    checks = [
        CheckResult("ssh", Status.OK if status is not X else Status.FAIL, "m", None, None, 12.0)
    ]
    if latency is not None:
        checks.append(CheckResult("latency", Status.OK, "m", latency, "ms", 3.0))
    tracking = Tracking(status, at, 0, 0, 0, at + timedelta(seconds=30))
    return NodeVerdict(node, "10.0.0.1", status, score, 1.0, at, tuple(checks), tracking=tracking)


def fill(
    history: History,
    node: str,
    statuses: list[NodeStatus],
    *,
    step_s: float = 30,
    start: datetime = T0,
) -> None:
    """One sample per status, step_s apart, each holding until the next."""
    for i, status in enumerate(statuses):
        at = start + timedelta(seconds=i * step_s)
        score = 100.0 if status is H else 40.0
        history.record([Sample(verdict(node, at, status, score, latency=1.0 + i % 10), step_s)])


@pytest.fixture
def history(tmp_path: Path) -> Iterator[History]:
    """A fresh history database."""
    with opened(tmp_path / "history.db") as store:
        yield store


def test_summary_adds_up_availability_downtime_score_and_latency(history: History) -> None:
    """90 healthy and 30 unhealthy samples of 30 s: 75 % available, 15 min down, exact scores."""
    fill(history, "n1", [H] * 90 + [U] * 30)
    (s,) = history.summaries("n1", T0, T0 + timedelta(hours=1))
    assert (s.samples, s.availability_pct, s.unhealthy_s) == (120, 75.0, 900.0)
    assert (s.score_min, s.score_mean) == (40.0, 85.0)
    assert s.latency_p50_ms == pytest.approx(5.5, rel=0.1)
    assert s.latency_p95_ms == pytest.approx(10.0, rel=0.1)


def test_flaps_count_changes_between_good_and_bad(history: History) -> None:
    """Each change between a good and a bad status is a flap; the first verdict is not."""
    changes = [
        ("unknown", "healthy"),
        ("healthy", "unhealthy"),
        ("unhealthy", "unreachable"),
        ("unreachable", "healthy"),
        ("healthy", "degraded"),
    ]
    history.record(
        [Sample(verdict("n1", T0, H), 30)],
        [
            Transition(T0 + timedelta(seconds=i), "n1", a, b, "why")
            for i, (a, b) in enumerate(changes)
        ],
    )
    (s,) = history.summaries("n1", T0, T0 + timedelta(hours=1))
    assert s.flaps == 2
    assert [t.after for t in history.transitions("n1", T0)] == [b for _, b in changes]
    assert history.transitions(None, T0 + timedelta(seconds=4))[0].reason == "why"


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 5 * 3600), st.integers(1, 5 * 3600))
def test_rollups_agree_with_raw_samples(
    tmp_path_factory: pytest.TempPathFactory, offset_s: int, span_s: int
) -> None:
    """A summary from hourly rollups plus edge samples equals one computed from every sample."""
    path = tmp_path_factory.mktemp("h") / "history.db"
    rng = random.Random(offset_s * 7 + span_s)
    with opened(path) as store:
        fill(store, "n", [rng.choice([H, H, H, U, X]) for _ in range(6 * 120)])
        since = T0 + timedelta(seconds=offset_s)
        until = since + timedelta(seconds=span_s)
        (s,) = store.summaries("n", since, until)
    db = sqlite3.connect(path)
    lo, hi = round(since.timestamp() * 1000), round(until.timestamp() * 1000)
    rows = db.execute(
        "SELECT status, score, weight_ms FROM node_samples WHERE ts >= ? AND ts <= ?", (lo, hi)
    ).fetchall()
    db.close()
    assert s.samples == len(rows)
    if rows:
        good = sum(w for st_, _, w in rows if st_ in (0, 1))
        assert s.availability_pct == round(100 * good / sum(w for _, _, w in rows), 2)
        assert s.score_min == min(r[1] for r in rows)


def test_score_series_buckets_by_time(history: History) -> None:
    """The chart's slices hold the mean score of their time, and None where nothing was seen."""
    fill(history, "n1", [H] * 120 + [U] * 120)
    series = history.score_series("n1", T0, T0 + timedelta(hours=4), 4)
    assert series == [100.0, 40.0, None, None]
    hourly = history.score_series("n1", T0, T0 + timedelta(hours=8), 2)
    assert hourly == [70.0, None]


def test_prune_keeps_only_the_retention_window(history: History) -> None:
    """Pruning drops samples, rollups and transitions older than the cutoff."""
    fill(history, "n1", [H] * 240)
    history.record([], [Transition(T0, "n1", "unknown", "healthy", "first")])
    gone = history.prune(T0 + timedelta(hours=1))
    assert gone == 120
    (s,) = history.summaries("n1", T0, T0 + timedelta(hours=3))
    assert s.samples == 120
    assert history.transitions("n1", T0) == []


def test_latency_buckets_are_close() -> None:
    """A latency's bucket value is within 10 % of it, across six orders of magnitude."""
    for value in (0.05, 0.3, 1, 7.7, 42, 999, 12345):
        assert bucket_value(bucket(value)) == pytest.approx(value, rel=0.1)


def test_check_rows_filter_by_node_and_check(history: History) -> None:
    """Check samples come back per node and check, oldest first."""
    fill(history, "n1", [H] * 3)
    fill(history, "n2", [U] * 2)
    rows = list(history.check_rows("n1", "latency", T0))
    assert [(r[1], r[2], r[4]) for r in rows] == [
        ("n1", "latency", 1.0),
        ("n1", "latency", 2.0),
        ("n1", "latency", 3.0),
    ]
    assert {r[1] for r in history.check_rows(None, None, T0)} == {"n1", "n2"}


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    """A database written by a newer ugro is not touched."""
    path = tmp_path / "history.db"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(Exception, match="newer ugro"):
        History(path)


WRITER = """
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from ugro.model import CheckResult, NodeStatus, NodeVerdict, Status, Tracking
from ugro.store.history import History
from ugro.store.history_records import Sample
h = History(Path(sys.argv[1]))
ok = (CheckResult("ssh", Status.OK, "m", None, None, 12.0),)
i = 0
while True:
    at = datetime(2026, 11, 1, tzinfo=UTC) + timedelta(seconds=i)
    track = Tracking(NodeStatus.HEALTHY, at, 0, 0, 0, at)
    verdicts = [
        NodeVerdict(f"n{k}", "10.0.0.1", NodeStatus.HEALTHY, 100.0, 1.0, at, ok, tracking=track)
        for k in range(20)
    ]
    h.record([Sample(v, 1) for v in verdicts])
    if i == 0:
        print("writing", flush=True)
    i += 1
"""


@pytest.mark.integration
def test_killed_writer_never_corrupts_the_database(tmp_path: Path) -> None:
    """SIGKILL during writes, 20 times: the database stays intact and answers."""
    path = tmp_path / "history.db"
    for _ in range(20):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
        )
        # Killed while it writes, whatever its start-up cost on a busy machine.
        assert writer.stdout is not None
        assert writer.stdout.readline() == "writing\n"
        time.sleep(random.random() * 0.3)
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        writer.stdout.close()
        db = sqlite3.connect(path)
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        db.close()
        with opened(path) as store:
            assert store.summaries("n0", T0, T0 + timedelta(days=1))[0].samples > 0


@pytest.mark.integration
def test_cli_without_history_says_how_to_get_one() -> None:
    """No database yet: exit 1 with one line pointing at the daemon."""
    ran = run_ugro("history")
    assert ran.code == 1
    assert "ugro daemon start" in ran.err


@pytest.mark.integration
def test_cli_shows_changes_summary_chart_json_and_csv(isolated_home: Path) -> None:
    """The table, --json and --csv show the database; bad input is a usage error."""
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(hours=2)
    with opened(isolated_home / "history.db") as store:
        fill(store, "gpu1", [H] * 120 + [U] * 120, start=start)
        store.record(
            [],
            [
                Transition(
                    start + timedelta(hours=1),
                    "gpu1",
                    "healthy",
                    "unhealthy",
                    "gpu: driver not loaded",
                )
            ],
        )
    table = run_ugro("history", "--since", "3h")
    assert table.code == 0, table.err
    assert "healthy → unhealthy" in table.out
    assert "gpu: driver not loaded" in table.out
    assert "gpu1" in table.out
    assert "50%" in table.out
    document = run_ugro("history", "gpu1", "--since", "3h", "--check", "latency", "--json").json()
    assert document["summaries"][0]["availability_pct"] == 50.0
    assert len(document["checks"]) == 240
    assert document["checks"][0]["status"] == "ok"
    assert len(document["score_series"]["gpu1"]) == 20
    csv_out = run_ugro("history", "--csv", "--check", "ssh").out.splitlines()
    assert csv_out[0] == "time,node,check,status,value,duration_ms"
    assert len(csv_out) == 241
    assert run_ugro("history", "--since", "yesterday").code == 2
    unknown = run_ugro("history", "nosuch")
    assert unknown.code == 1
    assert "known: gpu1" in unknown.err


def test_cli_reads_the_history_where_the_config_puts_it(tmp_path: Path) -> None:
    """`ugro history` reads `history.path` from cluster.yaml, where the daemon writes it."""
    from click.testing import CliRunner

    from ugro.cli import main

    elsewhere = tmp_path / "kept" / "history.db"
    elsewhere.parent.mkdir()
    with opened(elsewhere) as store:
        fill(store, "gpu1", [H] * 10, start=datetime.now(UTC) - timedelta(hours=1))
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(
        f"workers:\n  - name: gpu1\n    ip: 127.0.0.1\nhistory:\n  path: {elsewhere}\n",
        encoding="utf-8",
    )
    ran = CliRunner().invoke(main, ["--config", str(cluster), "history", "--json"])
    assert ran.exit_code == 0, ran.output
    assert [s["node"] for s in json.loads(ran.output)["summaries"]] == ["gpu1"]
