"""What `ugro describe NODE` shows: one node's page for people, its document for programs.

Every value that came from the node (messages, GPU names, versions) or from a file (a cordon
reason) is `printable` on the page; the JSON document carries it exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ugro.cli.views import table
from ugro.cli.views.verdicts import problems
from ugro.text import printable
from ugro.verdict.report import JSON_SCHEMA_VERSION, node_json
from ugro.verdict.rows import age

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from ugro.store.history_records import Transition
    from ugro.verdict.rows import Row

GIB = 2**30


@dataclass(frozen=True)
class Page:
    """Everything shown about one node."""

    row: Row
    transitions: Sequence[Transition]
    # Why there are no transitions to show (no history, or it could not be read).
    history_note: str | None
    sources: str


def _number(value: float | None, unit: str | None) -> str:
    if value is None:
        return "-"
    return f"{value:g} {unit}" if unit else f"{value:g}"


def _section(title: str, header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    """A titled table, indented two spaces; nothing when there is nothing in it."""
    if not body:
        return []
    rendered = table.render(
        header, [[table.Cell(c) for c in row] for row in body], width=None, colour=False
    )
    return ["", f"{title}:", *(f"  {line}" for line in rendered)]


def lines(page: Page) -> list[str]:
    """The page as lines of text."""
    row = page.row
    v = row.verdict
    name = printable(v.name)
    if not row.checked:
        head = [f"{name}: unknown, never checked; `ugro check {name}` checks it now"]
    else:
        head = [
            (
                f"{name} ({printable(v.address)}): {row.status.value}, score {v.health_score:.0f}, "
                f"pass rate {v.pass_rate:.0%}"
            ),
            f"checked {age(row.age_s)} ago, at {v.last_check:%Y-%m-%d %H:%M:%S}Z",
        ]
    said = problems(row)
    out = [*head, *(["", "problems:", *(f"  {p}" for p in said)] if said else [])]
    if v.tracking is not None:
        t = v.tracking
        out += [
            "",
            "tracking (the daemon's hysteresis):",
            (
                f"  observed {t.observed.value} since {t.since:%Y-%m-%d %H:%M:%S}Z; "
                f"failing sweeps in a row {t.fail_streak}, passing {t.pass_streak}, "
                f"unreachable {t.unreachable_streak}; next check {t.next_check_at:%H:%M:%S}Z"
            ),
        ]
    out += _section(
        "checks",
        ("CHECK", "STATUS", "VALUE", "DURATION", "MESSAGE"),
        [
            (c.name, c.status.label, _number(c.value, c.unit), f"{c.duration_ms:.0f} ms", c.message)
            for c in v.checks
        ],
    )
    out += _section(
        "gpus",
        ("GPU", "NAME", "TEMP", "UTIL", "MEMORY", "POWER", "UUID"),
        [
            (
                str(g.index),
                g.name,
                _number(g.temperature_c, "°C"),
                _number(g.utilization_pct, "%"),
                f"{_number(g.memory_used_mib, None)} / {_number(g.memory_total_mib, 'MiB')}",
                f"{_number(g.power_draw_w, None)} / {_number(g.power_limit_w, 'W')}",
                g.uuid,
            )
            for g in v.gpus
        ],
    )
    if v.host is not None:
        h = v.host
        out += [
            "",
            (
                f"host: load {h.load_1m:g} {h.load_5m:g} {h.load_15m:g} on {h.cpus} CPUs; "
                f"{h.memory_available_bytes / GIB:.1f} GiB of {h.memory_total_bytes / GIB:.1f} GiB "
                "memory available"
            ),
        ]
    out += _section(
        "disks",
        ("PATH", "MOUNT", "FREE", "SIZE"),
        [
            (d.path, d.mount, f"{d.free_bytes / GIB:.1f} GiB", f"{d.total_bytes / GIB:.1f} GiB")
            for d in v.disks
        ],
    )
    if v.versions:
        said_versions = ", ".join(f"{k} {val}" for k, val in v.versions.items())
        out += ["", printable(f"versions: {said_versions}")]
    out += _section(
        "recent status changes",
        ("AT", "FROM", "TO", "WHY"),
        [(f"{t.at:%Y-%m-%d %H:%M:%S}Z", t.before, t.after, t.reason) for t in page.transitions],
    )
    if page.history_note:
        out += ["", printable(f"recent status changes: {page.history_note}")]
    # The config's path comes from the state file: untrusted, as the rest.
    return [*out, "", printable(page.sources)]


def document(page: Page, *, now: datetime) -> dict[str, Any]:
    """The `--json` document: the node as `health --json` has it, and its status changes."""
    return {
        "schema_version": JSON_SCHEMA_VERSION,
        "generated_at": now.isoformat(),
        "node": node_json(page.row),
        "transitions": [
            {"at": t.at.isoformat(), "before": t.before, "after": t.after, "reason": t.reason}
            for t in page.transitions
        ],
        "history_note": page.history_note,
    }
