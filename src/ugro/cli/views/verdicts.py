"""What `ugro check` and `ugro health` show: the table for people, the JSON for programs.

The JSON schema (README, "JSON output") is stable: fields are added, never renamed.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TextIO

from ugro.cli.views import grouping, print_json, table
from ugro.model import NodeStatus
from ugro.text import printable
from ugro.verdict.report import document
from ugro.verdict.rows import NEVER_CHECKED, Row, age

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

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
HEADER = ("NODE", "STATUS", "SCORE", "CHECKED", "PROBLEM")
# Alerts by importance: what stops training first.
_SEVERITY = {"critical": 0, "warning": 1}


def problems(row: Row) -> list[str]:
    """What is wrong with the node as shown now, the most important first; printable."""
    v = row.verdict
    said: list[str] = []
    if not row.checked:
        said.append(NEVER_CHECKED)
    elif row.status is NodeStatus.STALE:
        # No age in it: nodes that went stale together say it alike, and group.
        said.append(f"stale: {v.status.value} when last checked")
    alerts = sorted(v.alerts, key=lambda a: _SEVERITY.get(a.severity, len(_SEVERITY)))
    said.extend(a.text for a in alerts)
    if row.cordon is not None:
        said.append(f"cordoned {row.cordon.describe()}")
    return [printable(p) for p in said]


def status_text(row: Row) -> str:
    """The STATUS cell: the status, and `,cordoned` as kubectl says `,SchedulingDisabled`."""
    return f"{row.status.value},cordoned" if row.cordon is not None else row.status.value


def table_lines(
    rows: Sequence[Row],
    *,
    width: int | None,
    wide: bool,
    colour: bool,
    said: Sequence[list[str]] | None = None,
) -> list[str]:
    """One line per node: the most important problem, cut to `width`, and how many more.

    `wide` shows every problem, uncut; `width` None (a pipe) cuts nothing. `said` is each
    row's `problems`, when the caller has them already.
    """
    body = []
    for row, found in zip(rows, said or [problems(r) for r in rows], strict=True):
        v = row.verdict
        if wide:
            problem = table.Cell("; ".join(found) or "-")
        else:
            more = f"+{len(found) - 1} more" if len(found) > 1 else ""
            problem = table.Cell(found[0] if found else "-", tail=more)
        body.append(
            [
                table.Cell(v.name),
                table.Cell(status_text(row), _STYLE[row.status]),
                table.Cell(f"{v.health_score:.0f}" if row.checked else "-"),
                table.Cell(f"{age(row.age_s)} ago" if row.checked else "never"),
                problem,
            ]
        )
    return table.render(
        HEADER, body, width=None if wide else width, colour=colour, right=frozenset({2})
    )


def group_lines(
    rows: Sequence[Row], *, width: int | None, said: Sequence[list[str]] | None = None
) -> list[str]:
    """The problems several nodes share, once each: "12 nodes unreachable — …: host5…host16".

    `said` is each row's `problems`, when the caller has them already.
    """
    first = []
    for row, found in zip(rows, said or [problems(r) for r in rows], strict=True):
        if found:
            first.append((row.verdict.name, row.status.value, found[0]))
    lines = []
    for status, problem, nodes in grouping.shared(first):
        # "unreachable: connection refused" under "12 nodes unreachable" says it twice.
        what = problem.removeprefix(f"{status}: ")
        named = grouping.compress(printable(node) for node in nodes)
        line = f"{len(nodes)} nodes {status} — {what}: {named}"
        lines.append(line if width is None else table.cut(line, width))
    return lines


def page(
    rows: Sequence[Row],
    *,
    footer: Sequence[str],
    width: int | None,
    wide: bool = False,
    colour: bool = False,
) -> list[str]:
    """The table, the problems nodes share under it, and the footer, as lines.

    With a `width` (a terminal), every line fits in it; without (a pipe), nothing is cut.
    """
    said = [problems(row) for row in rows]
    lines = table_lines(rows, width=width, wide=wide, colour=colour, said=said)
    groups = [] if wide else group_lines(rows, width=width, said=said)
    if groups:
        lines += ["", *groups]
    if footer:
        # Node names, and versions the nodes reported.
        said_below = printable("\n".join(footer), multiline=True).split("\n")
        lines += ["", *(line if width is None else table.cut(line, width) for line in said_below)]
    return lines


def print_table(
    rows: Sequence[Row],
    *,
    footer: str | None = None,
    wide: bool = False,
    stream: TextIO | None = None,
) -> None:
    """The node table for people on `stream` (stdout), fitted to it when it is a terminal."""
    out = stream or sys.stdout
    lines = page(
        rows,
        footer=[footer] if footer else [],
        width=table.terminal_width(out),
        wide=wide,
        colour=table.colour_wanted(out),
    )
    out.write("\n".join(lines) + "\n")


def summary_line(rows: Sequence[Row]) -> str:
    """'3 nodes: 2 healthy, 1 unreachable'."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status.value] = counts.get(row.status.value, 0) + 1
    parts = ", ".join(f"{n} {status}" for status, n in counts.items())
    never = sum(not r.checked for r in rows)
    if never:
        parts += f" ({never} {NEVER_CHECKED})"
    cordoned = [r.verdict.name for r in rows if r.cordon is not None]
    aside = f"; cordoned: {grouping.compress(cordoned)}" if cordoned else ""
    return f"{len(rows)} node{'s' if len(rows) != 1 else ''}: {parts}{aside}"


def show(  # noqa: PLR0913 - one surface, four formats
    rows: Sequence[Row],
    *,
    output: str,
    source: str,
    now: datetime,
    notes: Sequence[str],
    found: Sequence[drift.Finding],
    sources: str,
) -> None:
    """Print the verdicts in `output` format (`ugro.cli.output.FORMATS`)."""
    if output == "json":
        print_json(document(rows, source=source, now=now, notes=notes, found=found))
    elif output == "nagios":
        from ugro.cli.views import nagios

        print(nagios.line(rows))  # noqa: T201 - the command's output
    else:
        footer = [
            summary_line(rows),
            *notes,
            *findings_text(found),
            *([sources] if sources else []),
        ]
        print_table(rows, footer="\n".join(footer), wide=output == "wide")
