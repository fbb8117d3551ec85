"""What `ugro history` shows: status changes, per-node summaries and a score chart.

Kept apart from `ugro.store.history`, which only stores and queries: this module only formats.
"""

from __future__ import annotations

import csv
import sys
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ugro.cli.views import cell

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from ugro.store.history_records import Event, Summary, Transition

BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float | None], low: float = 0, high: float = 100) -> str:
    """Scores as a row of bars; a blank where nothing was checked."""
    out = []
    for value in values:
        if value is None:
            out.append(" ")
            continue
        share = (min(max(value, low), high) - low) / (high - low)
        out.append(BARS[min(len(BARS) - 1, int(share * len(BARS)))])
    return "".join(out)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def _number(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:g}{unit}"


CheckRow = tuple[datetime, str, str, int, float | None, int]
CHECK_ROWS = 50


@dataclass(frozen=True)
class Period:
    """What the history says about [since, until]."""

    since: datetime
    until: datetime
    transitions: Sequence[Transition]
    summaries: Sequence[Summary]
    charts: dict[str, list[float | None]]
    checks: Sequence[CheckRow] = ()
    # What was done: cordons, uncordons, remediation, escalations, the cordon breaker.
    events: Sequence[Event] = ()


def print_report(period: Period) -> None:
    """Transitions, summaries with a score chart, and check samples, for a terminal."""
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    span = _duration((period.until - period.since).total_seconds())
    console.print(f"since {period.since:%Y-%m-%d %H:%M} UTC ({span})")
    if period.transitions:
        changes = Table(title="status changes", box=None, header_style="bold", title_justify="left")
        for column in ("TIME (UTC)", "NODE", "CHANGE", "REASON"):
            changes.add_column(column, overflow="fold")
        for t in period.transitions:
            # The reason quotes the checks' messages, which quote the node: data, never markup.
            changes.add_row(
                f"{t.at:%m-%d %H:%M:%S}",
                cell(t.node),
                cell(f"{t.before} → {t.after}"),
                cell(t.reason),
            )
        console.print(changes)
    else:
        console.print("no status changes")
    if period.events:
        console.print(_events_table(period.events))
    table = Table(
        title="summary", box=None, header_style="bold", title_justify="left", padding=(0, 1, 0, 0)
    )
    for column in ("NODE", "UP", "DOWN", "FLAPS", "LATENCY p50/p95", "SCORE min/mean"):
        table.add_column(column, no_wrap=True, justify="left" if column == "NODE" else "right")
    table.add_column("SCORE", no_wrap=True)
    for s in period.summaries:
        table.add_row(
            cell(s.node),
            _number(s.availability_pct, "%"),
            _duration(s.unhealthy_s),
            str(s.flaps),
            f"{_number(s.latency_p50_ms)}/{_number(s.latency_p95_ms)}ms",
            f"{_number(s.score_min)}/{_number(s.score_mean)}",
            sparkline(period.charts.get(s.node, [])),
        )
    console.print(table)
    if period.checks:
        samples = Table(
            title="check samples (latest)", box=None, header_style="bold", title_justify="left"
        )
        for column in ("TIME (UTC)", "NODE", "CHECK", "STATUS", "VALUE", "DURATION"):
            samples.add_column(column, no_wrap=True)
        for at, node, check, status, value, duration in period.checks[-CHECK_ROWS:]:
            samples.add_row(
                f"{at:%m-%d %H:%M:%S}",
                cell(node),
                cell(check),
                _label(status),
                _number(value),
                f"{duration} ms",
            )
        console.print(samples)


def _events_table(events: Sequence[Event]) -> Any:  # noqa: ANN401 - a rich Table
    from rich.table import Table

    table = Table(title="events", box=None, header_style="bold", title_justify="left")
    for column in ("TIME (UTC)", "NODE", "EVENT", "DETAIL"):
        table.add_column(column, overflow="fold")
    for e in events:
        table.add_row(
            f"{e.at:%m-%d %H:%M:%S}", cell(e.node), cell(e.kind), cell(describe_event(e.detail))
        )
    return table


def _action(detail: dict[str, Any]) -> list[str]:
    if "action" not in detail:
        return []
    mode = "would run" if detail.get("dry_run") else "ran"
    parts = [f"{mode} {detail['action']} ({detail.get('where')}): {detail.get('command')}"]
    if detail.get("error"):
        parts.append(str(detail["error"]))
    elif "exit_status" in detail:
        parts.append(f"exit {detail['exit_status']} in {detail.get('duration_s', 0):g} s")
    return parts


def describe_event(detail: dict[str, Any]) -> str:
    """An event's detail in one line: who, what and why, and how it went."""
    parts = _action(detail)
    if "state" in detail:
        parts.append(str(detail["state"]))
    if detail.get("user") or detail.get("by"):
        parts.append(f"by {detail.get('user') or detail.get('by')}")
    parts.extend(str(detail[key]) for key in ("reason", "why") if detail.get(key))
    lifted = detail.get("lifted")
    if isinstance(lifted, dict):
        parts.append(f"lifted {lifted.get('by')}'s cordon: {lifted.get('reason')}")
    if detail.get("held"):
        parts.append("held: " + ", ".join(map(str, detail["held"])))
    said = detail.get("scheduler")
    if isinstance(said, dict) and said.get("name") != "none":
        parts.append(f"{said.get('name')}: {said.get('error') or said.get('note') or 'ok'}")
    return "; ".join(parts) or "-"


def _label(status: int) -> str:
    from ugro.model import Status

    return Status(status).label


def document(period: Period) -> dict[str, Any]:
    """The `--json` document."""
    return {
        "schema_version": 1,
        "since": period.since.isoformat(),
        "until": period.until.isoformat(),
        "transitions": [{**asdict(t), "at": t.at.isoformat()} for t in period.transitions],
        "summaries": [asdict(s) for s in period.summaries],
        "score_series": period.charts,
        "events": [
            {"at": e.at.isoformat(), "node": e.node, "kind": e.kind, "detail": e.detail}
            for e in period.events
        ],
        "checks": [
            {
                "at": at.isoformat(),
                "node": n,
                "check": c,
                "status": _label(st),
                "value": v,
                "duration_ms": d,
            }
            for at, n, c, st, v, d in period.checks
        ],
    }


def write_csv(rows: Iterable[CheckRow]) -> None:
    """Check samples as CSV on stdout, one row per check and sweep."""
    writer = csv.writer(sys.stdout)
    writer.writerow(["time", "node", "check", "status", "value", "duration_ms"])
    for at, node, check, status, value, duration in rows:
        writer.writerow(
            [at.isoformat(), node, check, _label(status), "" if value is None else value, duration]
        )
