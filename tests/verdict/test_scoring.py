"""The verdict rules of DESIGN §5: tables for the exact cases, properties for the invariants."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from ugro.config import CORE_CHECKS
from ugro.model import (
    CheckResult,
    GpuMetrics,
    HostMetrics,
    NodeStatus,
    NodeVerdict,
    Status,
    worst_exit_code,
)
from ugro.verdict import scoring

NAMES = ("ssh", "gpu", "torch", "disk", "latency")
WEIGHTS = {"ssh": 25.0, "gpu": 25.0, "torch": 20.0, "disk": 15.0, "latency": 15.0}
WHEN = datetime(2026, 11, 28, tzinfo=UTC)
DEFAULT = scoring.Thresholds(pass_rate=0.9, degraded_score=80)
CORE = frozenset(CORE_CHECKS)


def results(*statuses: Status) -> tuple[CheckResult, ...]:
    """Check results named in order ssh, gpu, torch, disk, latency."""
    return tuple(
        CheckResult(name, status, f"{name} {status.label}")
        for name, status in zip(NAMES, statuses, strict=False)
    )


def judge(
    checks: tuple[CheckResult, ...],
    *,
    gpus: tuple[GpuMetrics, ...] = (),
    host: HostMetrics | None = None,
    unreachable: str | None = None,
) -> NodeVerdict:
    """The verdict for one node with the default thresholds."""
    return scoring.verdict(
        name="n",
        address="127.0.0.1",
        when=WHEN,
        checks=checks,
        weights=WEIGHTS,
        thresholds=DEFAULT,
        core=CORE,
        gpus=gpus,
        host=host,
        unreachable=unreachable,
    )


def gpu(temperature: float | None = 40, used: float = 1000, total: float = 24564) -> GpuMetrics:
    """A GPU reading."""
    return GpuMetrics(0, "GPU-x", "NVIDIA GeForce RTX 4090", temperature, 5, used, total, 50, 450)


def host(load: float = 1, cpus: int = 16, available: float = 0.8) -> HostMetrics:
    """A host reading."""
    total = 64 * 2**30
    return HostMetrics(load, load, load, cpus, total, int(total * available))


OK5 = results(*[Status.OK] * 5)


def test_all_ok_no_pressure_is_100_and_healthy() -> None:
    """Every check ok and no pressure scores exactly 100."""
    v = judge(OK5, gpus=(gpu(),), host=host())
    assert (v.status, v.health_score, v.pass_rate, v.alerts) == (NodeStatus.HEALTHY, 100.0, 1.0, ())


def test_four_of_five_is_unhealthy() -> None:
    """The 90 % rule exactly: with five checks, four passing is unhealthy."""
    v = judge(results(Status.OK, Status.OK, Status.OK, Status.FAIL, Status.OK))
    assert v.status is NodeStatus.UNHEALTHY
    assert v.pass_rate == 0.8
    assert v.health_score == 29.1  # 1 + 33 × 0.85: a failing check, in the unhealthy band


def test_nine_of_ten_is_exactly_enough() -> None:
    """pass_rate is compared exactly: 9/10 meets 0.9 (no float rounding), so only degraded."""
    checks = tuple(
        CheckResult(f"c{i}", Status.FAIL if i == 0 else Status.OK, "") for i in range(10)
    )
    weights = {f"c{i}": 10.0 for i in range(10)}
    v = scoring.verdict(
        name="n",
        address="a",
        when=WHEN,
        checks=checks,
        weights=weights,
        thresholds=DEFAULT,
        core=frozenset(weights),
    )
    assert v.status is NodeStatus.DEGRADED


def test_a_failing_diagnostic_check_is_decisive() -> None:
    """A failing check outside the core five makes the node unhealthy although 5/6 pass."""
    checks = (*results(*[Status.OK] * 5), CheckResult("ecc", Status.FAIL, "uncorrectable"))
    weights = {**WEIGHTS, "ecc": 5.0}
    v = scoring.verdict(
        name="n",
        address="a",
        when=WHEN,
        checks=checks,
        weights=weights,
        thresholds=DEFAULT,
        core=CORE,
    )
    assert (v.status, v.pass_rate) == (NodeStatus.UNHEALTHY, 1.0)


def test_a_warning_diagnostic_check_only_degrades() -> None:
    """A diagnostic check that warns leaves the node degraded, not unhealthy."""
    checks = (*results(*[Status.OK] * 5), CheckResult("pcie", Status.WARN, "x8 of x16"))
    weights = {**WEIGHTS, "pcie": 5.0}
    v = scoring.verdict(
        name="n",
        address="a",
        when=WHEN,
        checks=checks,
        weights=weights,
        thresholds=DEFAULT,
        core=CORE,
    )
    assert v.status is NodeStatus.DEGRADED


def test_unreachable_scores_zero_with_one_alert() -> None:
    """A failed ssh check makes the node unreachable, score 0, one alert (not five)."""
    checks = (
        CheckResult("ssh", Status.FAIL, "connection refused"),
        *results(*[Status.UNKNOWN] * 5)[1:],
    )
    v = judge(checks, unreachable="connection refused")
    assert (v.status, v.health_score) == (NodeStatus.UNREACHABLE, 0.0)
    assert [a.text for a in v.alerts] == ["unreachable: connection refused"]


def test_warn_passes_but_lowers_the_score() -> None:
    """A warning counts as passing, marks the node degraded and costs half its weight."""
    v = judge(results(Status.OK, Status.WARN, Status.OK, Status.OK, Status.OK))
    assert v.status is NodeStatus.DEGRADED
    assert v.pass_rate == 1.0
    assert v.health_score == 86.6  # 70 + 19 × 0.875


def test_temperature_is_left_to_the_temperature_check() -> None:
    """A hot GPU costs no points here: the temperature check judges it, by the node's limits."""
    v = judge(OK5, gpus=(gpu(temperature=95),))
    assert (v.health_score, v.status, v.alerts) == (100.0, NodeStatus.HEALTHY, ())


def test_pressure_below_the_degraded_line() -> None:
    """Pressure (full GPU memory; overloaded, short of memory) below the line degrades a node."""
    v = scoring.verdict(
        name="n",
        address="127.0.0.1",
        when=WHEN,
        checks=OK5,
        weights=WEIGHTS,
        thresholds=scoring.Thresholds(pass_rate=0.9, degraded_score=85),
        core=CORE,
        gpus=(gpu(used=24000),),
        host=host(load=80, cpus=16, available=0.03),
    )
    assert v.health_score == 85.2  # 70 + 19 × 0.8
    assert v.status is NodeStatus.DEGRADED


def test_unknown_counts_as_not_passing() -> None:
    """Missing data is never a silent pass."""
    v = judge(results(Status.OK, Status.UNKNOWN, Status.OK, Status.OK, Status.OK))
    assert v.status is NodeStatus.UNHEALTHY
    assert v.alerts[0].severity == "warning"


statuses = st.sampled_from(list(Status))
gpu_readings = st.tuples(
    st.builds(gpu, temperature=st.one_of(st.none(), st.floats(0, 120)), used=st.floats(0, 24564))
).map(tuple)
host_readings = st.one_of(
    st.none(),
    st.builds(host, load=st.floats(0, 500), cpus=st.integers(1, 256), available=st.floats(0, 1)),
)


@given(st.lists(statuses, min_size=1, max_size=5), gpu_readings, host_readings)
def test_score_is_bounded(
    checks: list[Status], gpus: tuple[GpuMetrics, ...], h: HostMetrics | None
) -> None:
    """The score is always within 0–100."""
    v = judge(results(*checks), gpus=gpus, host=h)
    assert 0 <= v.health_score <= 100


@given(st.lists(statuses, min_size=5, max_size=5), st.integers(0, 4), gpu_readings, host_readings)
def test_a_failing_check_never_raises_the_score(
    checks: list[Status], index: int, gpus: tuple[GpuMetrics, ...], h: HostMetrics | None
) -> None:
    """Turning any check to fail (losing the metrics it brought) never raises the score."""
    before = judge(results(*checks), gpus=gpus, host=h)
    worse = list(checks)
    worse[index] = Status.FAIL
    after = judge(
        results(*worse),
        gpus=() if index == 1 else gpus,
        host=None if index == 0 else h,
    )
    assert after.health_score <= before.health_score


@given(st.lists(statuses, min_size=5, max_size=5))
def test_status_follows_the_first_matching_rule(checks: list[Status]) -> None:
    """unreachable, then unhealthy below the pass rate, then degraded on a warning, else healthy."""
    v = judge(results(*checks))
    passed = sum(s.passed for s in checks)
    if checks[0] is Status.FAIL:
        assert v.status is NodeStatus.UNREACHABLE
        assert v.health_score == 0
    elif passed < 4.5:
        assert v.status is NodeStatus.UNHEALTHY
    elif Status.WARN in checks:
        assert v.status is NodeStatus.DEGRADED
    else:
        assert v.status is NodeStatus.HEALTHY
        assert v.health_score == 100


@given(st.lists(st.sampled_from(list(NodeStatus)), max_size=6))
def test_worst_exit_code_ranks_problems_first(node_statuses: list[NodeStatus]) -> None:
    """The command's exit code is 2 when any node is bad, else 3 if any unknown, else 1, else 0."""
    codes = [s.exit_code for s in node_statuses]
    expected = 3 if not codes else 2 if 2 in codes else 3 if 3 in codes else 1 if 1 in codes else 0
    assert worst_exit_code(codes) == expected


def test_docs_worked_example() -> None:
    """docs/scoring.md's example: gpu warns, disk fails, a GPU's memory full: 24.1, unhealthy."""
    checks = results(Status.OK, Status.WARN, Status.OK, Status.FAIL, Status.OK)
    v = judge(checks, gpus=(gpu(used=24000),), host=host())
    assert (v.health_score, v.status) == (24.1, NodeStatus.UNHEALTHY)


def test_checks_that_say_the_same_are_one_alert() -> None:
    """Several checks with one message (a broken driver behind them all) make one alert."""
    said = "not read: the NVIDIA driver is not loaded (exit 9) (see the gpu check)"
    checks = (
        *results(Status.OK, Status.FAIL, Status.OK, Status.OK, Status.OK),
        CheckResult("ecc", Status.UNKNOWN, said),
        CheckResult("pcie", Status.UNKNOWN, said),
    )
    weights = {**WEIGHTS, "ecc": 5.0, "pcie": 5.0}
    v = scoring.verdict(
        name="n",
        address="a",
        when=WHEN,
        checks=checks,
        weights=weights,
        thresholds=DEFAULT,
        core=CORE,
    )
    assert [a.text for a in v.alerts][1:] == [f"ecc, pcie: {said}"]
