"""Scoring is total and never calls a node healthy on what it could not judge."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from ugro.config import CORE_CHECKS
from ugro.model import CheckResult, GpuMetrics, HostMetrics, NodeStatus, NodeVerdict, Status
from ugro.verdict import scoring

WEIGHTS = {"ssh": 25.0, "gpu": 25.0, "torch": 20.0, "disk": 15.0, "latency": 15.0, "ecc": 5.0}
WHEN = datetime(2026, 11, 28, tzinfo=UTC)
THRESHOLDS = scoring.Thresholds(pass_rate=0.9, degraded_score=80)


def all_ok(*, but: dict[str, Status] | None = None) -> tuple[CheckResult, ...]:
    """Every check of WEIGHTS ok, except those in `but`."""
    return tuple(CheckResult(name, (but or {}).get(name, Status.OK), "fine") for name in WEIGHTS)


def judge(
    checks: tuple[CheckResult, ...],
    gpus: tuple[GpuMetrics, ...] = (),
    host: HostMetrics | None = None,
) -> NodeVerdict:
    """The verdict of one node with the default thresholds."""
    return scoring.verdict(
        name="n",
        address="10.0.0.1",
        when=WHEN,
        checks=checks,
        weights=WEIGHTS,
        thresholds=THRESHOLDS,
        core=frozenset(CORE_CHECKS),
        gpus=gpus,
        host=host,
    )


def test_an_unknown_check_keeps_a_node_from_healthy() -> None:
    """One unknown GPU health check scores 96 but makes the node degraded, not healthy."""
    verdict = judge(all_ok(but={"ecc": Status.UNKNOWN}))
    assert verdict.health_score > THRESHOLDS.degraded_score
    assert verdict.status is NodeStatus.DEGRADED


def test_all_known_and_ok_is_healthy() -> None:
    """The baseline: every check ok is healthy."""
    assert judge(all_ok()).status is NodeStatus.HEALTHY


#: Any number a reading's field may hold, including those no check lets through.
ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(10**400), 10**400)
ANY_INT = st.integers(-(10**400), 10**400)


@settings(max_examples=200, deadline=None)
@given(
    gpus=st.lists(
        st.builds(
            GpuMetrics,
            index=st.integers(0, 7),
            uuid=st.just("GPU-1"),
            name=st.just("NVIDIA"),
            temperature_c=ANY_FLOAT | st.none(),
            utilization_pct=ANY_FLOAT | st.none(),
            memory_used_mib=ANY_FLOAT | st.none(),
            memory_total_mib=ANY_FLOAT | st.none(),
            power_draw_w=ANY_FLOAT | st.none(),
            power_limit_w=ANY_FLOAT | st.none(),
        ),
        max_size=3,
    ),
    host=st.none()
    | st.builds(
        HostMetrics,
        load_1m=st.floats(allow_nan=True, allow_infinity=True),
        load_5m=st.floats(allow_nan=True, allow_infinity=True),
        load_15m=st.floats(allow_nan=True, allow_infinity=True),
        cpus=ANY_INT,
        memory_total_bytes=ANY_INT,
        memory_available_bytes=ANY_INT,
    ),
)
def test_no_metric_can_crash_a_verdict(gpus: list[GpuMetrics], host: HostMetrics | None) -> None:
    """Absurd metrics (a 400-digit CPU count, nan memory) never raise, and the score is finite."""
    verdict = judge(all_ok(), tuple(gpus), host)
    assert math.isfinite(verdict.health_score)
    assert 0 <= verdict.health_score <= 100
