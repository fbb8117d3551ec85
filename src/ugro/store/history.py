"""History of verdicts in SQLite: every sweep's samples, status changes, and hourly rollups.

Layout (README, "History"):

- `node_samples` and `check_samples` hold every sweep's per-node status and score and
  per-check status, value and duration, keyed (node, [check,] ts) WITHOUT ROWID, so a range of
  one node's samples is one B-tree range and needs no separate index;
- `transitions` holds each change of a node's shown status, with the reason;
- `events` holds what was done to a node (cordon, uncordon, remediation, escalation; the
  cordon breaker under the node name `cluster`), with a JSON detail;
- `node_hours` and `latency_hours` roll samples up per node and hour as they are written, so a
  summary of 30 days × 100 nodes reads 72,000 small rows instead of 8.6 million samples.

Each sample carries the time until the node's next planned check (`weight_ms`): a status
holds until then, which is what availability and "time unhealthy" add up.

This module owns the database: schema, writes, retention and the queries. The records it takes
and returns, status codes and latency buckets are in `ugro.store.history_records`.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ugro import paths
from ugro.errors import UgroError
from ugro.model import BAD_STATUSES, CLUSTER, NodeStatus
from ugro.store import atomicfile, history_schema
from ugro.store.history_records import (
    BAD,
    GOOD,
    STATUS_CODES,
    Event,
    Totals,
    Transition,
    bucket,
    summarize,
)
from ugro.store.history_schema import SCHEMA, SCHEMA_VERSION

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

    from ugro.config import HistorySettings
    from ugro.store.history_records import Sample, Summary

HOUR_MS = 3_600_000


def path_for(settings: HistorySettings) -> Path:
    """Where the history database of `settings` lives: `history.path`, or the default."""
    return Path(settings.path).expanduser() if settings.path else paths.history_file()


def _ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def _time(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


class History:
    """The history database; one connection, used from one thread at a time."""

    def __init__(self, path: Path) -> None:
        """Open (creating if needed) the database at `path`."""
        self.path = path
        try:
            # SQLite follows links and creates 0644: the file is made here first, 0600 and
            # not through a link, and its journals take its mode.
            os.close(atomicfile.open_private(path, os.O_RDWR))
            self._db = sqlite3.connect(path, timeout=10, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise UgroError(f"{path}: cannot open the history database: {exc}") from exc
        try:
            self._open()
        except BaseException:
            self._db.close()
            raise
        self._ids: dict[tuple[str, str], int] = {}

    def _open(self) -> None:
        """Check the database is ugro's and readable by this version, and set it up."""
        try:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise UgroError(
                    f"{self.path}: written by a newer ugro (schema {version}); upgrade ugro"
                )
            # Checked before anything is created: another program's database stays as it was.
            found = history_schema.layout(self._db)
            if any(
                found[table] != columns
                for table, columns in history_schema.expected().items()
                if table in found
            ):
                raise UgroError(
                    f"{self.path}: not ugro's history database (its tables differ); "
                    "move it aside, or set history.path"
                )
            self._db.execute("PRAGMA journal_mode=WAL")
            # WAL with synchronous=NORMAL survives a killed daemon; only a power cut may
            # lose the last commits, never corrupt the file.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise UgroError(f"{self.path}: cannot open the history database: {exc}") from exc

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def _id(self, kind: str, name: str) -> int:
        key = (kind, name)
        if key not in self._ids:
            self._db.execute("INSERT OR IGNORE INTO names (kind, name) VALUES (?, ?)", key)
            row = self._db.execute(
                "SELECT id FROM names WHERE kind = ? AND name = ?", key
            ).fetchone()
            self._ids[key] = int(row[0])
        return self._ids[key]

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One transaction; if it fails, the names it added are gone, and so are their ids."""
        try:
            with self._db:
                yield
        except BaseException:
            self._ids.clear()
            raise

    def _lookup(self, kind: str, name: str) -> int | None:
        row = self._db.execute(
            "SELECT id FROM names WHERE kind = ? AND name = ?", (kind, name)
        ).fetchone()
        return int(row[0]) if row else None

    def record(self, samples: Sequence[Sample], transitions: Sequence[Transition] = ()) -> None:
        """Store one sweep in one transaction: samples, rollups and status changes.

        sqlite3 raises OverflowError for an integer beyond 64 bits: a database error like any
        other, raised as UgroError (the sweep makes every value a float, so none should come).
        """
        try:
            with self._transaction():
                for sample in samples:
                    self._record_sample(sample)
                for t in transitions:
                    self._db.execute(
                        "INSERT OR REPLACE INTO transitions VALUES (?, ?, ?, ?, ?)",
                        (self._id("node", t.node), _ms(t.at), t.before, t.after, t.reason),
                    )
        except (sqlite3.Error, OverflowError) as exc:
            raise UgroError(f"{self.path}: cannot record history: {exc}") from exc

    def record_events(self, events: Sequence[Event]) -> None:
        """Append events in one transaction."""
        try:
            with self._transaction():
                for e in events:
                    self._db.execute(
                        "INSERT INTO events (node, ts, kind, detail) VALUES (?, ?, ?, ?)",
                        (
                            self._id("cluster" if e.node == CLUSTER else "node", e.node),
                            _ms(e.at),
                            e.kind,
                            # ASCII: a reason typed with a stray byte holds a lone
                            # surrogate, which SQLite cannot store as text.
                            json.dumps(e.detail, default=str, allow_nan=False),
                        ),
                    )
        except sqlite3.Error as exc:
            raise UgroError(f"{self.path}: cannot record events: {exc}") from exc

    def events(self, node: str | None, since: datetime) -> list[Event]:
        """Events since `since`, oldest first (the cluster's own with every node's)."""
        query = """SELECT n.name, e.ts, e.kind, e.detail
                   FROM events e JOIN names n ON n.id = e.node WHERE e.ts >= ?"""
        args: list[object] = [_ms(since)]
        if node is not None:
            query += " AND (n.kind = 'cluster' OR n.name = ?)"
            args.append(node)
        rows = self._db.execute(query + " ORDER BY e.ts, e.id", args).fetchall()
        return [Event(_time(ts), name, kind, json.loads(detail)) for name, ts, kind, detail in rows]

    def _record_sample(self, sample: Sample) -> None:
        v = sample.verdict
        node = self._id("node", v.name)
        ts = _ms(v.last_check)
        status = STATUS_CODES[v.status]
        observed = STATUS_CODES[v.tracking.observed if v.tracking else v.status]
        weight = round(sample.holds_s * 1000)
        self._db.execute(
            "INSERT OR REPLACE INTO node_samples VALUES (?, ?, ?, ?, ?, ?)",
            (node, ts, status, observed, v.health_score, weight),
        )
        for c in v.checks:
            self._db.execute(
                "INSERT OR REPLACE INTO check_samples VALUES (?, ?, ?, ?, ?, ?)",
                (node, self._id("check", c.name), ts, int(c.status), c.value, round(c.duration_ms)),
            )
        hour = ts // HOUR_MS
        self._db.execute(
            """INSERT INTO node_hours VALUES (?, ?, 1, ?, ?, ?, ?, ?)
               ON CONFLICT (node, hour) DO UPDATE SET
                 samples = samples + 1, weight_ms = weight_ms + excluded.weight_ms,
                 good_ms = good_ms + excluded.good_ms, bad_ms = bad_ms + excluded.bad_ms,
                 score_min = min(score_min, excluded.score_min),
                 score_sum = score_sum + excluded.score_sum""",
            (
                node,
                hour,
                weight,
                weight if status in GOOD else 0,
                weight if status in BAD else 0,
                v.health_score,
                v.health_score,
            ),
        )
        latency = next((c.value for c in v.checks if c.name == "latency"), None)
        if latency is not None:
            self._db.execute(
                """INSERT INTO latency_hours VALUES (?, ?, ?, 1)
                   ON CONFLICT (node, hour, bucket) DO UPDATE SET n = n + 1""",
                (node, hour, bucket(latency)),
            )

    def prune(self, before: datetime) -> int:
        """Delete everything older than `before`; return how many samples went."""
        cutoff = _ms(before)
        hour = cutoff // HOUR_MS
        try:
            with self._db:
                gone = self._db.execute("DELETE FROM node_samples WHERE ts < ?", (cutoff,)).rowcount
                self._db.execute("DELETE FROM check_samples WHERE ts < ?", (cutoff,))
                self._db.execute("DELETE FROM transitions WHERE ts < ?", (cutoff,))
                self._db.execute("DELETE FROM events WHERE ts < ?", (cutoff,))
                self._db.execute("DELETE FROM node_hours WHERE hour < ?", (hour,))
                self._db.execute("DELETE FROM latency_hours WHERE hour < ?", (hour,))
        except sqlite3.Error as exc:
            raise UgroError(f"{self.path}: cannot prune history: {exc}") from exc
        return int(gone)

    def nodes(self) -> list[str]:
        """Every node the history knows, by name."""
        rows = self._db.execute("SELECT name FROM names WHERE kind = 'node' ORDER BY name")
        return [str(r[0]) for r in rows]

    def transitions(self, node: str | None, since: datetime) -> list[Transition]:
        """Status changes since `since`, oldest first."""
        query = """SELECT n.name, t.ts, t.from_status, t.to_status, t.reason
                   FROM transitions t JOIN names n ON n.id = t.node WHERE t.ts >= ?"""
        args: list[object] = [_ms(since)]
        if node is not None:
            query += " AND n.name = ?"
            args.append(node)
        rows = self._db.execute(query + " ORDER BY t.ts", args).fetchall()
        return [Transition(_time(ts), name, a, b, reason) for name, ts, a, b, reason in rows]

    def summaries(self, node: str | None, since: datetime, now: datetime) -> list[Summary]:
        """Per-node summary of [since, now]: whole hours from rollups, the edges from samples."""
        names = [node] if node is not None else self.nodes()
        start, end = _ms(since), _ms(now)
        first_hour = -(-start // HOUR_MS)
        last_hour = end // HOUR_MS
        out = []
        for name in names:
            node_id = self._lookup("node", name)
            totals = Totals()
            if node_id is not None:
                if first_hour < last_hour:
                    self._add_hours(totals, node_id, first_hour, last_hour)
                    edges = [(start, first_hour * HOUR_MS), (last_hour * HOUR_MS, end + 1)]
                else:
                    edges = [(start, end + 1)]
                for lo, hi in edges:
                    self._add_samples(totals, node_id, lo, hi)
            flaps = sum(
                1
                for t in self.transitions(name, since)
                if (NodeStatus(t.before) in BAD_STATUSES) != (NodeStatus(t.after) in BAD_STATUSES)
                and NodeStatus(t.before) is not NodeStatus.UNKNOWN
            )
            out.append(summarize(name, totals, flaps))
        return out

    def _add_hours(self, totals: Totals, node: int, first: int, last: int) -> None:
        row = self._db.execute(
            """SELECT sum(samples), sum(weight_ms), sum(good_ms), sum(bad_ms), min(score_min),
                      sum(score_sum)
               FROM node_hours WHERE node = ? AND hour >= ? AND hour < ?""",
            (node, first, last),
        ).fetchone()
        if row[0]:
            totals.samples += row[0]
            totals.weight_ms += row[1]
            totals.good_ms += row[2]
            totals.bad_ms += row[3]
            totals.score_min = min(totals.score_min, row[4])
            totals.score_sum += row[5]
        for b, n in self._db.execute(
            """SELECT bucket, sum(n) FROM latency_hours
               WHERE node = ? AND hour >= ? AND hour < ? GROUP BY bucket""",
            (node, first, last),
        ):
            totals.latency[b] += n

    def _add_samples(self, totals: Totals, node: int, lo: int, hi: int) -> None:
        for status, score, weight in self._db.execute(
            """SELECT status, score, weight_ms FROM node_samples
               WHERE node = ? AND ts >= ? AND ts < ?""",
            (node, lo, hi),
        ):
            totals.samples += 1
            totals.weight_ms += weight
            totals.good_ms += weight if status in GOOD else 0
            totals.bad_ms += weight if status in BAD else 0
            totals.score_min = min(totals.score_min, score)
            totals.score_sum += score
        latency = self._lookup("check", "latency")
        if latency is None:
            return
        for (value,) in self._db.execute(
            """SELECT value FROM check_samples WHERE node = ? AND check_id = ? AND ts >= ?
               AND ts < ? AND value IS NOT NULL""",
            (node, latency, lo, hi),
        ):
            totals.latency[bucket(value)] += 1

    def score_series(
        self, node: str, since: datetime, now: datetime, points: int
    ) -> list[float | None]:
        """Mean score in `points` equal slices of [since, now]; None where nothing was seen."""
        node_id = self._lookup("node", node)
        slots: list[float | None] = [None] * points
        if node_id is None:
            return slots
        start, width = _ms(since), max(1, (_ms(now) - _ms(since)) // points)
        if width >= HOUR_MS:
            rows: Iterable[tuple[int, float]] = self._db.execute(
                """SELECT (hour * ? - ?) / ?, sum(score_sum) / sum(samples) FROM node_hours
                   WHERE node = ? AND hour * ? >= ? GROUP BY 1""",
                (HOUR_MS, start, width, node_id, HOUR_MS, start),
            )
        else:
            rows = self._db.execute(
                """SELECT (ts - ?) / ?, avg(score) FROM node_samples
                   WHERE node = ? AND ts >= ? GROUP BY 1""",
                (start, width, node_id, start),
            )
        for slot, mean in rows:
            if 0 <= slot < points:
                slots[int(slot)] = float(mean)
        return slots

    def check_series(
        self, node: str, check: str, since: datetime, now: datetime, points: int
    ) -> list[tuple[datetime, float]]:
        """Mean value of `check` in `points` equal slices of [since, now], where it had one."""
        node_id, check_id = self._lookup("node", node), self._lookup("check", check)
        if node_id is None or check_id is None:
            return []
        start, width = _ms(since), max(1, (_ms(now) - _ms(since)) // points)
        rows = self._db.execute(
            """SELECT (ts - ?) / ?, avg(value) FROM check_samples
               WHERE node = ? AND check_id = ? AND ts >= ? AND value IS NOT NULL
               GROUP BY 1 ORDER BY 1""",
            (start, width, node_id, check_id, start),
        )
        return [
            (_time(start + int(slot) * width), float(mean))
            for slot, mean in rows
            if 0 <= slot < points
        ]

    def check_rows(
        self, node: str | None, check: str | None, since: datetime
    ) -> Iterator[tuple[datetime, str, str, int, float | None, int]]:
        """(time, node, check, status, value, duration_ms) per check sample, oldest first."""
        query = """SELECT s.ts, n.name, c.name, s.status, s.value, s.duration_ms
                   FROM check_samples s JOIN names n ON n.id = s.node
                   JOIN names c ON c.id = s.check_id WHERE s.ts >= ?"""
        args: list[object] = [_ms(since)]
        if node is not None:
            query += " AND n.name = ?"
            args.append(node)
        if check is not None:
            query += " AND c.name = ?"
            args.append(check)
        for ts, name, check_name, status, value, duration in self._db.execute(
            query + " ORDER BY s.ts, n.name, c.name", args
        ):
            yield _time(ts), name, check_name, status, value, duration


@contextlib.contextmanager
def opened(path: Path) -> Iterator[History]:
    """The history database at `path`, closed afterwards."""
    history = History(path)
    try:
        yield history
    finally:
        history.close()
