"""Hysteresis and backoff: a blip never flips a node, a dead node is not probed forever."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from ugro.config import MonitorSettings
from ugro.model import BAD_STATUSES as BAD
from ugro.model import GOOD_STATUSES as GOOD
from ugro.model import NodeStatus, NodeVerdict
from ugro.verdict.hysteresis import advance, recorder

POLICY = MonitorSettings(
    interval_s=30, confirm_s=5, fail_after=2, recover_after=2, backoff_after=3, max_backoff_s=300
)
T0 = datetime(2026, 11, 28, tzinfo=UTC)


def observed(status: NodeStatus) -> NodeVerdict:
    """A fresh check's verdict with this status."""
    return NodeVerdict("n", "10.0.0.1", status, 100.0, 1.0, T0, ())


def replay(
    statuses: list[NodeStatus], policy: MonitorSettings = POLICY
) -> list[tuple[NodeStatus, float]]:
    """The shown status and the delay to the next check after each observation."""
    shown: NodeVerdict | None = None
    out = []
    for i, status in enumerate(statuses):
        step = advance(shown, observed(status), policy, T0 + timedelta(seconds=i))
        shown = step.verdict
        out.append((shown.status, step.delay_s))
    return out


H, U, X, D = NodeStatus.HEALTHY, NodeStatus.UNHEALTHY, NodeStatus.UNREACHABLE, NodeStatus.DEGRADED


def test_first_check_is_shown_as_it_is() -> None:
    """With nothing shown yet there is nothing to protect: the first verdict shows at once."""
    assert replay([U]) == [(U, 30)]


def test_failure_needs_confirmation_checked_soon() -> None:
    """Healthy shows unhealthy only on the second failing check, re-checked after confirm_s."""
    assert replay([H, U, U]) == [(H, 30), (H, 5), (U, 30)]


def test_single_blip_never_flips() -> None:
    """One failing check between passing ones leaves the node healthy."""
    assert [s for s, _ in replay([H, U, H, U, H])] == [H] * 5


def test_recovery_needs_confirmation() -> None:
    """An unhealthy node shows healthy again only after recover_after passing checks."""
    assert replay([U, H, H]) == [(U, 30), (U, 5), (H, 30)]


def test_moves_within_good_or_bad_are_immediate() -> None:
    """Moves healthy ↔ degraded and unhealthy ↔ unreachable need no confirmation."""
    assert [s for s, _ in replay([H, D, H])] == [H, D, H]
    assert [s for s, _ in replay([U, X, U])] == [U, X, U]


def test_unreachable_backs_off_then_recovers_at_the_next_try() -> None:
    """From the third unreachable check the delay doubles to max_backoff_s; success resets it."""
    steps = replay([H, X, X, X, X, X, X, H, H])
    assert steps[:7] == [(H, 30), (H, 5), (X, 30), (X, 60), (X, 120), (X, 240), (X, 300)]
    assert steps[7:] == [(X, 5), (H, 30)]


def test_tracking_is_recorded() -> None:
    """The state says what was observed, the streaks, since when, and when the next check is."""
    shown = advance(None, observed(H), POLICY, T0).verdict
    step = advance(shown, observed(U), POLICY, T0 + timedelta(seconds=30))
    tracking = step.verdict.tracking
    assert tracking is not None
    assert step.pending
    assert (tracking.observed, tracking.fail_streak, tracking.pass_streak) == (U, 1, 0)
    assert tracking.since == T0
    assert tracking.next_check_at == T0 + timedelta(seconds=35)


statuses = st.lists(st.sampled_from([H, D, U, X]), min_size=1, max_size=30)


@given(statuses)
def test_shown_bad_only_after_fail_after_bad_in_a_row(seq: list[NodeStatus]) -> None:
    """Once something is shown, it turns bad only at the end of a run of fail_after bad checks."""
    shown = replay(seq)
    for i in range(1, len(seq)):
        if shown[i - 1][0] in GOOD and shown[i][0] in BAD:
            assert all(s in BAD for s in seq[i - POLICY.fail_after + 1 : i + 1])
        if shown[i - 1][0] in BAD and shown[i][0] in GOOD:
            assert all(s in GOOD for s in seq[i - POLICY.recover_after + 1 : i + 1])


@given(statuses)
def test_delays_stay_within_bounds(seq: list[NodeStatus]) -> None:
    """Every delay is confirm_s, interval_s or a backoff within max_backoff_s."""
    for _, delay in replay(seq):
        assert POLICY.confirm_s <= delay <= POLICY.max_backoff_s


def test_recorder_folds_a_check_into_a_node_the_daemon_keeps() -> None:
    """`ugro check` on a node with tracking: one bad check is pending, as in the daemon."""
    fold = recorder(POLICY)
    kept = advance(None, observed(H), POLICY, T0).verdict
    later = dataclasses.replace(observed(X), last_check=T0 + timedelta(seconds=1))

    recorded = fold(kept, later)

    assert recorded.status is H, "one unreachable check does not flip the node"
    assert recorded.tracking is not None
    assert recorded.tracking.observed is X
    assert recorded.tracking.fail_streak == 1
    assert fold(recorded, later).status is X, "the second one confirms it"


def test_recorder_stores_a_node_no_daemon_keeps_as_checked() -> None:
    """Without tracking (no daemon ever kept the node), a check is stored as it is."""
    fold = recorder(POLICY)
    assert fold(None, observed(U)) == observed(U)
    assert fold(observed(H), observed(U)) == observed(U)
