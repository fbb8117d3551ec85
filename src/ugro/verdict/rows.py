"""Verdicts as shown now: how old each is, whether it is stale, and what that means.

A `Row` is what the CLI shows, the exporter exports and launch gating judges, so all three
agree on what is stale; `exit_code` is the Nagios code of a set of rows, `findings` what is
wrong with the cluster as a whole. The rendering lives in `ugro.cli.views.verdicts`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from ugro.model import NodeStatus, NodeVerdict, worst_exit_code
from ugro.verdict import drift

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from ugro.store.cordons import Cordon


@dataclass(frozen=True, slots=True)
class Row:
    """A verdict as shown now: its age, and `stale` when it is too old to trust."""

    verdict: NodeVerdict
    status: NodeStatus
    age_s: float
    # Kept out of the healthy set by a person or by the daemon (ugro.store.cordons).
    cordon: Cordon | None = None

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
