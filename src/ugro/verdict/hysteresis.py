"""Pure hysteresis: from the status a node showed and its latest check, the status to show now.

A transient blip must not flip a node, and a dead node must not cost a full timeout every
sweep forever:

- a node shown healthy or degraded is shown unhealthy/unreachable only after `fail_after`
  consecutive bad checks, and back only after `recover_after` consecutive good ones; until
  then it is re-checked after `confirm_s` instead of a full interval;
- a node unreachable `backoff_after` checks in a row is retried with exponential backoff,
  doubling from twice the interval up to `max_backoff_s`;
- a node's first check (nothing shown yet) is shown as it is;
- the score moves into the band of the status shown (`scoring.within`).

Every writer of the state file folds its checks in the same way (`recorder`): what `ugro
check` records for a node the daemon keeps goes through this hysteresis too.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from ugro.model import BAD_STATUSES, GOOD_STATUSES, NodeStatus, NodeVerdict, Tracking
from ugro.verdict import scoring

if TYPE_CHECKING:
    from datetime import datetime

    from ugro.config import MonitorSettings
    from ugro.store.state import Fold


@dataclass(frozen=True, slots=True)
class Step:
    """The verdict to show and persist, and how long until the node is checked again.

    `before` is the status shown until now: unknown before a node's first check.
    """

    verdict: NodeVerdict
    delay_s: float
    before: NodeStatus = NodeStatus.UNKNOWN

    @property
    def changed(self) -> bool:
        """Whether the shown status moved: a transition for the history and the log."""
        return self.verdict.status is not self.before

    @property
    def reason(self) -> str:
        """Why the node shows what it shows, in one line: its first alert, if it has one."""
        return self.verdict.alerts[0].text if self.verdict.alerts else "all checks pass"

    @property
    def pending(self) -> bool:
        """Whether the shown status waits for confirmation of the observed one."""
        tracking = self.verdict.tracking
        return tracking is not None and tracking.observed is not self.verdict.status


def advance(
    previous: NodeVerdict | None, observed: NodeVerdict, policy: MonitorSettings, now: datetime
) -> Step:
    """Fold one more check of a node into what is shown (module docstring)."""
    before = previous.tracking if previous else None
    shown_before = previous.status if previous and before else None
    bad = observed.status in BAD_STATUSES
    fail_streak = (before.fail_streak + 1 if before else 1) if bad else 0
    pass_streak = 0 if bad else (before.pass_streak + 1 if before else 1)
    unreachable = observed.status is NodeStatus.UNREACHABLE
    unreachable_streak = (before.unreachable_streak + 1 if before else 1) if unreachable else 0

    unconfirmed_failure = shown_before in GOOD_STATUSES and bad and fail_streak < policy.fail_after
    unconfirmed_recovery = (
        shown_before in BAD_STATUSES and not bad and pass_streak < policy.recover_after
    )
    shown = (
        shown_before
        if shown_before and (unconfirmed_failure or unconfirmed_recovery)
        else observed.status
    )

    if shown is not observed.status:
        delay = policy.confirm_s
    elif unreachable_streak >= policy.backoff_after:
        doublings = unreachable_streak - policy.backoff_after + 1
        delay = min(policy.max_backoff_s, policy.interval_s * 2.0**doublings)
    else:
        delay = policy.interval_s
    since = before.since if before and shown is shown_before else now
    tracking = Tracking(
        observed=observed.status,
        since=since,
        fail_streak=fail_streak,
        pass_streak=pass_streak,
        unreachable_streak=unreachable_streak,
        next_check_at=now + timedelta(seconds=delay),
    )
    # The score stays in the band of the status shown (verdict/scoring.py).
    score = scoring.within(shown, observed.health_score)
    verdict = dataclasses.replace(observed, status=shown, health_score=score, tracking=tracking)
    return Step(verdict, delay, previous.status if previous else NodeStatus.UNKNOWN)


def recorder(policy: MonitorSettings) -> Fold:
    """How a writer other than the daemon records a check (`StateStore.update`'s `fold`).

    A node whose stored verdict carries the daemon's tracking gets the check folded in as
    the daemon folds its own, so a single bad check shows as pending, not as the node's
    status; a node no daemon keeps is stored as checked.
    """

    def fold(stored: NodeVerdict | None, observed: NodeVerdict) -> NodeVerdict:
        if stored is None or stored.tracking is None:
            return observed
        return advance(stored, observed, policy, observed.last_check).verdict

    return fold
