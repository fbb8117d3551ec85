"""What `ugro check` and `ugro health` show: the table for people, the JSON for programs.

The JSON schema (README, "JSON output") is stable: fields are added, never renamed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ugro.cli.views import cell
from ugro.model import NodeStatus
from ugro.text import printable
from ugro.verdict.rows import Row, age, exit_code, findings

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ugro.verdict import drift

# The version of every `--json` document about verdicts (check, health, preflight).
JSON_SCHEMA_VERSION = 1


def findings_text(found: Sequence[drift.Finding]) -> list[str]:
    """One line per finding, for the table's footer."""
    return [f"drift: {f.message}" for f in found]


def document(
    rows: Sequence[Row],
    *,
    source: str,
    now: datetime | None = None,
    notes: Sequence[str] = (),
    found: Sequence[drift.Finding] | None = None,
) -> dict[str, Any]:
    """The `--json` document; `found` defaults to the findings of `rows`."""
    now = now or datetime.now(UTC)
    found = findings(rows) if found is None else found
    summary: dict[str, int] = {}
    for row in rows:
        summary[row.status.value] = summary.get(row.status.value, 0) + 1
    return {
        "schema_version": JSON_SCHEMA_VERSION,
        "source": source,
        "generated_at": now.isoformat(),
        "exit_code": exit_code(rows),
        "summary": summary,
        "notes": list(notes),
        "findings": [f.to_json() for f in found],
        "nodes": [
            {
                **row.verdict.to_json(),
                "status": row.status.value,
                "checked_status": row.verdict.status.value,
                "age_s": round(row.age_s, 1),
                "cordon": row.cordon.to_json() if row.cordon else None,
            }
            for row in rows
        ],
    }


_STYLE = {
    NodeStatus.HEALTHY: "green",
    NodeStatus.DEGRADED: "yellow",
    NodeStatus.UNHEALTHY: "red",
    NodeStatus.UNREACHABLE: "bold red",
    NodeStatus.UNKNOWN: "magenta",
    NodeStatus.STALE: "magenta",
}


def print_table(rows: Sequence[Row], *, footer: str | None = None) -> None:
    """A table of nodes with the reasons for every problem, for a terminal."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("NODE", "STATUS", "SCORE", "CHECKED", "PROBLEMS"):
        table.add_column(
            column, no_wrap=column != "PROBLEMS", justify="right" if column == "SCORE" else "left"
        )
    for row in rows:
        v = row.verdict
        # One line per problem, whatever the node printed: messages quote its output.
        problems = "\n".join(printable(a.text) for a in v.alerts) or "-"
        if row.status is NodeStatus.STALE:
            problems = f"last checked {age(row.age_s)} ago ({v.status.value} then)\n" + problems
        status = Text(row.status.value, style=_STYLE[row.status])
        if row.cordon is not None:
            own = [] if problems == "-" else [problems]
            problems = "\n".join([printable(f"CORDONED {row.cordon.describe()}"), *own])
            status.append("\ncordoned", style="bold yellow")
        table.add_row(
            cell(v.name),
            status,
            f"{v.health_score:.0f}",
            f"{age(row.age_s)} ago",
            # Text, not markup: messages quote what nodes printed, brackets included.
            cell(problems, multiline=True),
        )
    console = Console(highlight=False)
    console.print(table)
    if footer:
        # Node names, and versions the nodes reported.
        console.print(cell(footer, multiline=True))


def summary_line(rows: Sequence[Row]) -> str:
    """'3 nodes: 2 healthy, 1 unreachable'."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status.value] = counts.get(row.status.value, 0) + 1
    parts = ", ".join(f"{n} {status}" for status, n in counts.items())
    cordoned = [r.verdict.name for r in rows if r.cordon is not None]
    aside = f"; cordoned: {', '.join(cordoned)}" if cordoned else ""
    return f"{len(rows)} node{'s' if len(rows) != 1 else ''}: {parts}{aside}"
