"""`--format nagios`: one status line with perfdata, as a Nagios or Icinga plugin prints it.

    UGRO CRITICAL - 2 of 5 nodes unhealthy or unreachable: gpu3 (…), gpu4 (…) | healthy=3;;;0;5 …

The service state is the exit code (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN). The text before
`|` is for people and quotes nodes, so it is printable, one line, and holds no `|` of its
own; after it, one count per status, labelled as the plugin guidelines ask.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ugro.cli.views import verdicts
from ugro.model import NodeStatus
from ugro.text import printable
from ugro.verdict.rows import exit_code

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ugro.verdict.rows import Row

#: The service state of each exit code, as Nagios names it.
STATES = ("OK", "WARNING", "CRITICAL", "UNKNOWN")
# Nodes named in the status line; the rest are counted ("+7 more"). Nagios keeps the first
# line of a plugin's output short (a web page column, an SMS, a mail subject).
NAMED = 5
# One node's problem as quoted in the line.
PROBLEM_CHARS = 60
# Which nodes the line names for each state, and how it calls them.
_CULPRITS = {
    1: ({NodeStatus.DEGRADED}, "degraded"),
    2: ({NodeStatus.UNHEALTHY, NodeStatus.UNREACHABLE}, "unhealthy or unreachable"),
    3: ({NodeStatus.UNKNOWN, NodeStatus.STALE}, "unknown or stale"),
}


def _plain(text: str, limit: int | None = None) -> str:
    """`text` for the status line: printable, one line, and no `|` (which starts perfdata)."""
    return printable(text, limit=limit).replace("|", "/")


def perfdata(rows: Sequence[Row]) -> str:
    """`healthy=3;;;0;5 degraded=0;;;0;5 …`: every status counted, with its range."""
    total = len(rows)
    counts = dict.fromkeys(NodeStatus, 0)
    for row in rows:
        counts[row.status] += 1
    return " ".join(f"{s.value}={n};;;0;{total}" for s, n in counts.items())


def line(rows: Sequence[Row]) -> str:
    """The status line with its perfdata."""
    code = exit_code(rows)
    total = len(rows)
    if not rows:
        return f"UGRO UNKNOWN - no nodes | {perfdata(rows)}"
    if code == 0:
        return f"UGRO OK - {total} of {total} nodes healthy | {perfdata(rows)}"
    statuses, called = _CULPRITS[code]
    culprits = [r for r in rows if r.status in statuses]
    named = []
    for row in culprits[:NAMED]:
        said = verdicts.problems(row)
        why = f" ({_plain(said[0], PROBLEM_CHARS)})" if said else ""
        named.append(f"{_plain(row.verdict.name)}{why}")
    if len(culprits) > NAMED:
        named.append(f"+{len(culprits) - NAMED} more")
    summary = f"{len(culprits)} of {total} nodes {called}: {', '.join(named)}"
    return f"UGRO {STATES[code]} - {summary} | {perfdata(rows)}"


def failure(reason: str) -> str:
    """The line of a check that reached no verdict (no state, a bad config): UNKNOWN."""
    return f"UGRO UNKNOWN - {_plain(reason)}"
