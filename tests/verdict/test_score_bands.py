"""The score agrees with the status: bands, and within a band, ability to train (issue #15)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from ugro.checks import registry
from ugro.config import CORE_CHECKS, DEFAULT_CHECKS, MonitorSettings
from ugro.model import CheckResult, GpuMetrics, HostMetrics, NodeStatus, NodeVerdict, Status
from ugro.verdict import scoring
from ugro.verdict.hysteresis import advance

WEIGHTS = {name: check.weight for name, check in registry().items()}
WHEN = datetime(2026, 11, 28, tzinfo=UTC)
DEFAULT = scoring.Thresholds(pass_rate=0.9, degraded_score=80)
POLICY = MonitorSettings(
    interval_s=30, confirm_s=5, fail_after=2, recover_after=2, backoff_after=3, max_backoff_s=300
)


def judge(
    but: dict[str, Status] | None = None,
    *,
    gpus: tuple[GpuMetrics, ...] = (),
    host: HostMetrics | None = None,
) -> NodeVerdict:
    """The verdict of a node running the default checks, all ok except those in `but`."""
    checks = tuple(
        CheckResult(name, (but or {}).get(name, Status.OK), f"{name} says so")
        for name in DEFAULT_CHECKS
    )
    return scoring.verdict(
        name="n",
        address="10.0.0.1",
        when=WHEN,
        checks=checks,
        weights=WEIGHTS,
        thresholds=DEFAULT,
        core=frozenset(CORE_CHECKS),
        gpus=gpus,
        host=host,
    )


def in_band(v: NodeVerdict) -> bool:
    """Whether the verdict's score lies in its status's band."""
    low, high = scoring.BANDS[v.status]
    return low <= v.health_score <= high


def test_xid_79_scores_low() -> None:
    """A GPU fallen off the bus (one failing Xid check of weight 5) scored 96.3; now ≤ 34."""
    v = judge({"xid": Status.FAIL})
    assert v.status is NodeStatus.UNHEALTHY
    assert v.health_score <= 34  # the failing part of the unhealthy band


def test_pending_row_remap_scores_low() -> None:
    """A pending row remap (the GPU needs a reset before it can train) scores ≤ 34 too."""
    v = judge({"remap": Status.FAIL})
    assert v.status is NodeStatus.UNHEALTHY
    assert v.health_score <= 34  # the failing part of the unhealthy band


def test_hot_gpu_is_degraded_and_scores_below_90() -> None:
    """A hot GPU (temperature warns) scored 98.1 though degraded; now within 70–89."""
    v = judge({"temperature": Status.WARN})
    assert v.status is NodeStatus.DEGRADED
    assert 70 <= v.health_score <= 89  # the degraded band


def test_the_issues_nodes_order_by_ability_to_train() -> None:
    """Two failures < one failure < only lacking evidence < degraded < healthy."""
    two = judge({"xid": Status.FAIL, "remap": Status.FAIL})
    xid = judge({"xid": Status.FAIL})
    doubt = judge({"torch": Status.UNKNOWN})
    hot = judge({"temperature": Status.WARN})
    fine = judge()
    assert doubt.status is NodeStatus.UNHEALTHY
    scores = [v.health_score for v in (two, xid, doubt, hot, fine)]
    assert scores == sorted(scores)
    assert len(set(scores)) == len(scores)
    assert fine.health_score == 100  # every check ok, no pressure


def test_unreachable_is_zero() -> None:
    """A node no session reached scores 0, the bottom of every ordering."""
    v = judge({"ssh": Status.FAIL})
    assert (v.status, v.health_score) == (NodeStatus.UNREACHABLE, 0.0)


def test_the_healthy_band_starts_at_the_degraded_line() -> None:
    """A healthy node under exactly the degraded line's pressure scores 90, no less."""
    v = scoring.verdict(
        name="n",
        address="a",
        when=WHEN,
        checks=(CheckResult("gpu", Status.OK, ""),),
        weights={"gpu": 1.0},
        thresholds=DEFAULT,
        core=frozenset({"gpu"}),
        gpus=(GpuMetrics(0, "GPU-x", "H100", 40, 5, 79_000, 80_000, 50, 450),),
    )
    assert (v.status, v.health_score) == (NodeStatus.HEALTHY, 90.0)


statuses = st.dictionaries(st.sampled_from(DEFAULT_CHECKS), st.sampled_from(list(Status)))
gpu_readings = st.lists(
    st.builds(
        GpuMetrics,
        index=st.integers(0, 7),
        uuid=st.just("GPU-x"),
        name=st.just("H100"),
        temperature_c=st.none(),
        utilization_pct=st.none(),
        memory_used_mib=st.floats(0, 80_000),
        memory_total_mib=st.just(80_000.0),
        power_draw_w=st.none(),
        power_limit_w=st.none(),
    ),
    max_size=2,
).map(tuple)
host_readings = st.one_of(
    st.none(),
    st.builds(
        HostMetrics,
        load_1m=st.floats(0, 500),
        load_5m=st.just(1.0),
        load_15m=st.just(1.0),
        cpus=st.integers(1, 256),
        memory_total_bytes=st.just(2**36),
        memory_available_bytes=st.integers(0, 2**36),
    ),
)


@given(statuses, gpu_readings, host_readings)
def test_the_band_always_matches_the_status(
    but: dict[str, Status], gpus: tuple[GpuMetrics, ...], host: HostMetrics | None
) -> None:
    """Whatever the checks and the pressure, the score lies in the band of the status."""
    assert in_band(judge(but, gpus=gpus, host=host))


@given(st.lists(statuses, min_size=1, max_size=12))
def test_the_band_matches_the_status_hysteresis_shows(seq: list[dict[str, Status]]) -> None:
    """While hysteresis shows another status than the one observed, the score follows it."""
    shown: NodeVerdict | None = None
    for i, but in enumerate(seq):
        shown = advance(shown, judge(but), POLICY, WHEN + timedelta(seconds=i)).verdict
        assert in_band(shown)


def test_a_silent_failed_ssh_check_is_still_unreachable() -> None:
    """A failed ssh check with an empty message means unreachable, score 0, like any other."""
    v = scoring.verdict(
        name="n",
        address="a",
        when=WHEN,
        checks=(CheckResult("ssh", Status.FAIL, ""), CheckResult("gpu", Status.OK, "")),
        weights=WEIGHTS,
        thresholds=DEFAULT,
        core=frozenset(CORE_CHECKS),
    )
    assert (v.status, v.health_score) == (NodeStatus.UNREACHABLE, 0.0)
