"""Verdicts as shown now: how old each is, whether it is stale, and what that means.

A `Row` is what the CLI shows, the exporter exports and launch gating judges, so all three
agree on what is stale; `exit_code` is the Nagios code of a set of rows, `findings` what is
wrong with the cluster as a whole. The rendering lives in `ugro.cli.views.verdicts`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from ugro.model import NodeStatus, NodeVerdict, worst_exit_code
from ugro.verdict import drift

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from ugro.store.cordons import Cordon

#: What a configured node without a verdict is, wherever it is shown.
NEVER_CHECKED = "never checked"
# The time a never-checked row's stand-in verdict carries: no surface shows it.
_NEVER = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Row:
    """A verdict as shown now: its age, and `stale` when it is too old to trust."""

    verdict: NodeVerdict
    status: NodeStatus
    age_s: float
    # Kept out of the healthy set by a person or by the daemon (ugro.store.cordons).
    cordon: Cordon | None = None
    # False for a configured node that has no verdict yet: `verdict` only names it then.
    checked: bool = True

    @classmethod
    def of(
        cls,
        verdict: NodeVerdict,
        now: datetime,
        stale_after_s: float | None = None,
        interval_s: float | None = None,
        cordons: Mapping[str, Cordon] | None = None,
    ) -> Row:
        """Show `verdict` at `now`; older than `stale_after_s` it is stale.

        A node the daemon deliberately checks less often (backoff) is stale only when its
        next check is overdue by as much as a normal node's would be.
        """
        age = max(0.0, (now - verdict.last_check).total_seconds())
        stale = False
        if stale_after_s is not None:
            deadline = verdict.last_check + timedelta(seconds=stale_after_s)
            if verdict.tracking and interval_s:
                overdue = timedelta(seconds=stale_after_s - interval_s)
                deadline = max(deadline, verdict.tracking.next_check_at + overdue)
            stale = now > deadline
        cordon = (cordons or {}).get(verdict.name)
        return cls(verdict, NodeStatus.STALE if stale else verdict.status, age, cordon)

    @classmethod
    def unchecked(cls, name: str, cordons: Mapping[str, Cordon] | None = None) -> Row:
        """A configured node that has never been checked: unknown (Nagios 3)."""
        stand_in = NodeVerdict(
            name=name,
            address="",
            status=NodeStatus.UNKNOWN,
            health_score=0.0,
            pass_rate=0.0,
            last_check=_NEVER,
            checks=(),
        )
        return cls(stand_in, NodeStatus.UNKNOWN, 0.0, (cordons or {}).get(name), checked=False)


def cluster_rows(  # noqa: PLR0913 - what a row needs, passed through
    verdicts: Mapping[str, NodeVerdict],
    configured: Iterable[str] | None,
    now: datetime,
    *,
    stale_after_s: float | None = None,
    interval_s: float | None = None,
    cordons: Mapping[str, Cordon] | None = None,
) -> list[Row]:
    """Every node of the cluster as shown now, in name order (gpu2 before gpu10).

    A configured node without a verdict is `unknown`, never checked; a verdict of a node no
    longer configured is left out. `configured` None: the cluster is the nodes with verdicts.
    """
    names = verdicts.keys() if configured is None else set(configured)
    return [
        Row.of(verdicts[name], now, stale_after_s, interval_s, cordons)
        if name in verdicts
        else Row.unchecked(name, cordons)
        for name in sorted(names, key=natural)
    ]


_DIGITS = re.compile(r"(\d+)")


def natural(name: str) -> tuple[tuple[int, int, str, str], ...]:
    """A sort key that orders names as people count: gpu2 before gpu10.

    Numbers compare by their digits (length, then value), never converted: a name is
    untrusted, and int() refuses thousands of digits.
    """
    key = []
    for part in _DIGITS.split(name):
        if part.isdecimal():
            value = part.lstrip("0")
            key.append((0, len(value), value, part))
        elif part:
            key.append((1, 0, part, part))
    return tuple(key)


def exit_code(rows: Sequence[Row]) -> int:
    """The worst node's Nagios code (3 for an empty cluster)."""
    return worst_exit_code([r.status.exit_code for r in rows])


def findings(rows: Sequence[Row]) -> list[drift.Finding]:
    """What is wrong with the cluster as a whole: version drift among the reachable nodes."""
    return drift.version_drift(
        {
            row.verdict.name: row.verdict.versions
            for row in rows
            if row.verdict.status is not NodeStatus.UNREACHABLE
        }
    )


def age(seconds: float) -> str:
    """A duration as people say it: 45s, 12m, 3h, 2d."""
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f}m"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86400:.0f}d"
