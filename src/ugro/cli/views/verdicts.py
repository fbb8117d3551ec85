"""What `ugro check` and `ugro health` show: the table for people, the JSON for programs.

The JSON schema (README, "JSON output") is stable: fields are added, never renamed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ugro.cli.views import cell
from ugro.model import NodeStatus
from ugro.text import printable
from ugro.verdict.report import JSON_SCHEMA_VERSION, document
from ugro.verdict.rows import age

__all__ = ["JSON_SCHEMA_VERSION", "document", "findings_text", "print_table", "summary_line"]

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ugro.verdict import drift
    from ugro.verdict.rows import Row


def findings_text(found: Sequence[drift.Finding]) -> list[str]:
    """One line per finding, for the table's footer."""
    return [f"drift: {f.message}" for f in found]


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
