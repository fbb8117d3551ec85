"""The dashboard's JSON documents, built from what the daemon persisted.

`/api/v1/health` is the `ugro health --json` document (`ugro.verdict.report`), data as it
came. The others are made for showing: every string in them has been through
`ugro.text.printable`, so a page (or a script printing them) never shows a node's escape
sequences or control characters; the page itself only ever sets text, never markup.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ugro.alerts.book import report
from ugro.model import NodeStatus
from ugro.text import printable
from ugro.verdict.report import document
from ugro.verdict.rows import NEVER_CHECKED, Row, age, cluster_rows, findings

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from ugro.store.cordons import Cordon
    from ugro.store.history import History
    from ugro.store.state import ClusterState, DaemonInfo

    StaleNote = Callable[[DaemonInfo | None, datetime], str]

SCHEMA_VERSION = 1
# Longest text a document carries per field: a node's message is a sentence, not a log.
TEXT_LIMIT = 500
# Points per chart: more than a phone is wide, and a 7-day chart stays a few kilobytes.
POINTS = 240
# The windows the node page offers; `since=` also takes an ISO 8601 time.
WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}
# What a chart draws: a check's value, by the check that measures it.
CHECK_SERIES = {"latency_ms": "latency", "temperature_c": "temperature"}
TRANSITIONS_SHOWN = 50
_DURATION = re.compile(r"(\d{1,6})([mhd])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


class BadRequest(ValueError):
    """A query the API cannot answer: the message says what was expected."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the documents are built from: the state, cordons and configured nodes, read once."""

    state: ClusterState | None
    cordons: Mapping[str, Cordon]
    # Node names the running config lists; empty when no config is known.
    configured: Sequence[str]
    now: datetime
    # Says why verdicts are stale (`ugro.daemon.service.stale_note`), as `ugro health` does.
    stale_note: StaleNote | None = None

    def rows(self) -> list[Row]:
        """Every node as `ugro health` shows it now: configured ones never checked as unknown."""
        state = self.state
        configured = self.configured or (state.configured if state else None) or None
        daemon = state.daemon if state else None
        return cluster_rows(
            state.nodes if state else {},
            configured,
            self.now,
            stale_after_s=state.stale_after_s if state else None,
            interval_s=daemon.interval_s if daemon else None,
            cordons=self.cordons,
        )


def shown(value: Any) -> Any:  # noqa: ANN401 - any JSON value
    """`value` with every string (keys too) made printable, for a person to read."""
    if isinstance(value, str):
        return printable(value, limit=TEXT_LIMIT)
    if isinstance(value, dict):
        return {shown(k): shown(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [shown(v) for v in value]
    return value


def _shown(document: dict[str, Any]) -> dict[str, Any]:
    """A whole document `shown`."""
    result: dict[str, Any] = shown(document)
    return result


def notes(snapshot: Snapshot, rows: Sequence[Row]) -> list[str]:
    """What `ugro health` notes about `rows`: why verdicts are stale, when any is."""
    if snapshot.stale_note and any(r.status is NodeStatus.STALE for r in rows):
        state = snapshot.state
        return [snapshot.stale_note(state.daemon if state else None, snapshot.now)]
    return []


def health(snapshot: Snapshot, source: str) -> dict[str, Any]:
    """The `ugro health --json` document."""
    rows = snapshot.rows()
    return document(rows, source=source, now=snapshot.now, notes=notes(snapshot, rows))


def problem(row: Row) -> str:
    """A node's main problem in a few words: what a tile shows and what groups nodes."""
    v = row.verdict
    if row.status is NodeStatus.STALE:
        return f"not checked for {age(row.age_s)} ({v.status.value} then)"
    if v.alerts:
        return v.alerts[0].text
    failing = v.failing()
    return f"{failing[0].name}: {failing[0].message}" if failing else ""


def overview(snapshot: Snapshot, source: str) -> dict[str, Any]:
    """The cluster overview: every node's tile, counts, shared problems, cordons and alerts."""
    rows = snapshot.rows()
    tiles = [_tile(row) for row in rows]
    # Worst first, then by name: what needs a person comes first on a page of 1000 tiles.
    order = {s.value: i for i, s in enumerate(_WORST_FIRST)}
    tiles.sort(key=lambda t: (order[t["status"]], t["name"]))
    counts = {s.value: 0 for s in _WORST_FIRST}
    groups: dict[str, list[str]] = {}
    for tile in tiles:
        counts[tile["status"]] += 1
        if tile["problem"]:
            groups.setdefault(tile["problem"], []).append(tile["name"])
    state = snapshot.state
    book = report(state.alerts or {}) if state else report({})
    daemon = state.daemon if state else None
    return _shown(
        {
            "schema_version": SCHEMA_VERSION,
            "source": source,
            "generated_at": snapshot.now.isoformat(),
            "updated_at": state.updated_at.isoformat() if state and state.updated_at else None,
            "daemon": {
                "running": daemon.running,
                "interval_s": daemon.interval_s,
                "last_sweep_at": daemon.last_sweep_at.isoformat() if daemon.last_sweep_at else None,
            }
            if daemon
            else None,
            "counts": counts,
            "nodes": tiles,
            # Problems shared by several nodes: one cause, named once.
            "groups": [
                {"problem": text, "nodes": names}
                for text, names in sorted(groups.items(), key=lambda g: -len(g[1]))
                if len(names) > 1
            ],
            "cordoned": [c.to_json() for c in snapshot.cordons.values()],
            "firing": [_alert(a) for a in book["firing"]],
            "findings": [f.message for f in findings(rows)],
            "notes": notes(snapshot, rows),
        }
    )


def _tile(row: Row) -> dict[str, Any]:
    """A node's tile on the overview; a node never checked has no score or age."""
    checked = row.checked
    return {
        "name": row.verdict.name,
        "status": row.status.value,
        "checked_status": row.verdict.status.value if checked else None,
        "score": round(row.verdict.health_score) if checked else None,
        "age_s": round(row.age_s, 1) if checked else None,
        "age": age(row.age_s) if checked else None,
        "problem": problem(row) if checked else NEVER_CHECKED,
        "cordon": row.cordon.describe() if row.cordon else None,
    }


_WORST_FIRST = (
    NodeStatus.UNREACHABLE,
    NodeStatus.UNHEALTHY,
    NodeStatus.STALE,
    NodeStatus.UNKNOWN,
    NodeStatus.DEGRADED,
    NodeStatus.HEALTHY,
)


def _alert(alert: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "severity": alert.get("severity"),
        "node": alert.get("node"),
        "summary": alert.get("summary"),
        "started_at": alert.get("started_at"),
    }


def node(snapshot: Snapshot, name: str, history: History | None) -> dict[str, Any] | None:
    """One node's page: checks, GPUs, versions and drift, cordon, transitions; None if unknown."""
    rows = {row.verdict.name: row for row in snapshot.rows()}
    row = rows.get(name)
    if row is None:
        return None
    cordon = snapshot.cordons.get(name)
    entry: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "name": name,
        "generated_at": snapshot.now.isoformat(),
        "cordon": cordon.to_json() if cordon else None,
        "transitions": [],
    }
    if history is not None:
        since = snapshot.now - WINDOWS["7d"]
        entry["transitions"] = [
            {"at": t.at.isoformat(), "before": t.before, "after": t.after, "reason": t.reason}
            for t in history.transitions(name, since)[-TRANSITIONS_SHOWN:]
        ]
    if not row.checked:
        entry.update(status=NodeStatus.UNKNOWN.value, problem=NEVER_CHECKED, checked=False)
        return _shown(entry)
    v = row.verdict
    entry.update(
        {
            **v.to_json(),
            "name": name,
            "checked": True,
            "status": row.status.value,
            "checked_status": v.status.value,
            "age_s": round(row.age_s, 1),
            "age": age(row.age_s),
            "problem": problem(row),
            # A list, in check order: the state file keys them by name.
            "checks": [
                {
                    "name": c.name,
                    "status": c.status.label,
                    "value": c.value,
                    "unit": c.unit,
                    "message": c.message,
                    "duration_ms": c.duration_ms,
                }
                for c in v.checks
            ],
            "drift": [f.message for f in findings(list(rows.values())) if name in f.odd],
        }
    )
    return _shown(entry)


def window(text: str | None, now: datetime) -> datetime:
    """The start of `since=`: 1h, 24h, 7d (any count of m, h, d) or an ISO 8601 time."""
    if not text:
        return now - WINDOWS["24h"]
    if match := _DURATION.fullmatch(text):
        count, unit = match.groups()
        return now - timedelta(**{_UNITS[unit]: int(count)})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(
            "since: expected a window such as 1h, 24h or 7d, or an ISO 8601 time"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def series(
    snapshot: Snapshot, name: str | None, since_text: str | None, history: History | None
) -> dict[str, Any] | None:
    """The node's charts over [since, now]: score, latency and hottest GPU; None if unknown."""
    if not name:
        raise BadRequest("node: expected ?node=NAME")
    known = snapshot.state.nodes if snapshot.state else {}
    if name not in known and name not in snapshot.configured:
        return None
    now = snapshot.now
    since = window(since_text, now)
    if since >= now:
        raise BadRequest("since: expected a time in the past")
    lines: dict[str, list[list[float]]] = {"score": [], **{key: [] for key in CHECK_SERIES}}
    if history is not None:
        step = (now - since) / POINTS
        scores = history.score_series(name, since, now, POINTS)
        lines["score"] = [
            [_ms(since + step * i), round(value, 1)]
            for i, value in enumerate(scores)
            if value is not None
        ]
        for key, check in CHECK_SERIES.items():
            lines[key] = [
                [_ms(at), round(value, 2)]
                for at, value in history.check_series(name, check, since, now, POINTS)
            ]
    return _shown(
        {
            "schema_version": SCHEMA_VERSION,
            "node": name,
            "since": since.isoformat(),
            "until": now.isoformat(),
            "history": history is not None,
            "series": lines,
        }
    )


def alerts(snapshot: Snapshot) -> dict[str, Any]:
    """Firing and recently resolved alerts, and delivery per sink (as `ugro alerts --json`)."""
    state = snapshot.state
    return _shown(report(state.alerts or {}) if state else report({}))


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
