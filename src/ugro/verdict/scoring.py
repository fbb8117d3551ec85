"""Pure verdicts: check results and metrics in, node status, 0–100 score and alerts out.

The score (docs/scoring.md) has two parts. The *fitness* is the weighted credit of the
checks: each enabled check carries its weight and earns ok all of it, warn half, fail and
unknown none; pressure in the detailed metrics a check measured (a full GPU, an overloaded
host) takes a share of that check's credit. The fitness is the earned share of the enabled
weight. The *band* is the status's: the score places the fitness inside it, so that every
unreachable node scores below every unhealthy one, below every degraded one, below every
healthy one, and ordering by score is ordering by how able a node is to train:

- healthy 90–100: 90 at the degraded line, 100 with every check ok and no pressure;
- degraded 70–89: 70 + 19 × fitness;
- unhealthy 1–69: a node that only lacks evidence (checks unknown, the pass rate not met
  without any check failing) 35–69, 35 + 34 × fitness; a node with failing checks 1–34,
  1 + 33 × fitness ÷ the number of failing checks, because a failing check (an Xid 79, a
  pending row remap, a full disk) is evidence the node cannot train, whatever its weight;
- unreachable 0.

Because pressure only ever scales a check's own credit, a failing check earns nothing, and
every failure moves a node down a band or deeper into the failing part of its band, a
failing check can never raise the score.

The 90 % rule counts the core checks (the phase document's five). Any other check that fails
(an uncorrectable ECC error, an Xid, an unreachable rendezvous) is evidence on its own that
the node cannot train: counted among a dozen checks it would slip under the 90 % line, so it
makes the node unhealthy by itself.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

from ugro.model import (
    Alert,
    CheckResult,
    DiskSpace,
    GpuMetrics,
    HostMetrics,
    NodeStatus,
    NodeVerdict,
    Status,
    by_message,
)

if TYPE_CHECKING:
    from datetime import datetime

CREDIT = {
    Status.OK: Fraction(1),
    Status.WARN: Fraction(1, 2),
    Status.FAIL: Fraction(0),
    Status.UNKNOWN: Fraction(0),
}

GPU_MEMORY_FULL = 0.9
LOAD_PER_CPU = 2.0
MEMORY_LOW = 0.10
MEMORY_CRITICAL = 0.05


@dataclass(frozen=True, slots=True)
class Pressure:
    """A share of one check's credit lost to a metric under pressure, and the alert it raises."""

    check: str
    share: Fraction
    alert: Alert


def pressures(gpus: tuple[GpuMetrics, ...], host: HostMetrics | None) -> list[Pressure]:
    """Pressure in the detailed metrics: GPU readings weigh on `gpu`, host ones on `ssh`.

    Temperature is not pressure: the `temperature` check judges it, against the node's own
    thresholds.
    """
    found = []
    full = [
        str(g.index)
        for g in gpus
        if (used := _share(g.memory_used_mib, g.memory_total_mib)) is not None
        and used >= GPU_MEMORY_FULL
    ]
    if full:
        text = f"GPU {', '.join(full)}: memory ≥ {GPU_MEMORY_FULL:.0%} used by another process"
        found.append(Pressure("gpu", Fraction(1, 5), Alert("warning", text)))
    if host is not None:
        load = _share(host.load_1m, host.cpus)
        if load is not None and load >= LOAD_PER_CPU:
            text = f"load {host.load_1m:g} on {host.cpus} CPUs"
            found.append(Pressure("ssh", Fraction(1, 5), Alert("warning", text)))
        available = _share(host.memory_available_bytes, host.memory_total_bytes)
        if available is not None:
            if available < MEMORY_CRITICAL:
                text = f"only {available:.0%} of memory available: the node may swap or OOM-kill"
                found.append(Pressure("ssh", Fraction(2, 5), Alert("warning", text)))
            elif available < MEMORY_LOW:
                text = f"only {available:.0%} of memory available"
                found.append(Pressure("ssh", Fraction(1, 5), Alert("warning", text)))
    return found


def _share(part: float | None, whole: float | None) -> float | None:
    """`part / whole`; None when either is missing or the ratio is not a finite number.

    The checks refuse implausible readings; this keeps the verdict total all the same, so a
    reading a check let through (a 400-digit CPU count) cannot take the sweep down.
    """
    if part is None or not whole:
        return None
    try:
        ratio = part / whole
    except OverflowError:
        return None
    return ratio if math.isfinite(ratio) else None


def fitness(
    checks: tuple[CheckResult, ...], weights: dict[str, float], pressure: list[Pressure]
) -> Fraction:
    """The earned share of the enabled weight, 0–1 (module docstring); 1 needs every check ok."""
    if not pressure and all(c.status is Status.OK for c in checks):
        # Every term earned in full, as most nodes' are at most checks: no sum to do.
        return Fraction(1 if any(weights[c.name] for c in checks) else 0)
    total = sum(_exact(weights[c.name]) for c in checks)
    if not total:
        return Fraction(0)
    lost: dict[str, Fraction] = {}
    for p in pressure:
        lost[p.check] = min(Fraction(1), lost.get(p.check, Fraction(0)) + p.share)
    earned = Fraction(0)
    # Exact, and only the arithmetic a term needs: a node check judges a dozen of them.
    for c in checks:
        credit = CREDIT[c.status]
        if not credit:
            continue
        term = _exact(weights[c.name])
        if credit != 1:
            term *= credit
        if c.name in lost:
            term *= 1 - lost[c.name]
        earned += term
    return Fraction(earned / total)


@functools.lru_cache(maxsize=256)
def _exact(value: float) -> Fraction:
    """The float `value` as the exact fraction it holds (cached: a handful of weights)."""
    return Fraction(value)


@functools.lru_cache(maxsize=256)
def _decimal(value: float) -> Fraction:
    """The float `value` as the decimal it is written as: 0.9 is 9/10, not its binary fraction.

    Cached: there are a handful of thresholds, and parsing one takes a regular expression.
    """
    return Fraction(str(value))


# The score each status may take, lowest and highest (module docstring). `unknown` and
# `stale` say nothing about the node, so they have no band; they score 0.
BANDS: dict[NodeStatus, tuple[float, float]] = {
    NodeStatus.HEALTHY: (90.0, 100.0),
    NodeStatus.DEGRADED: (70.0, 89.0),
    NodeStatus.UNHEALTHY: (1.0, 69.0),
    NodeStatus.UNREACHABLE: (0.0, 0.0),
}
# Inside the unhealthy band: from here up, nodes no check of which failed.
DOUBT_FLOOR = 35


def score(status: NodeStatus, fit: Fraction, *, failing: int, degraded_line: Fraction) -> float:
    """The 0–100 score of a node of `status` with fitness `fit` (module docstring).

    `failing` is how many of its checks failed; `degraded_line` the fitness below which a
    node is degraded (`degraded_score` / 100).
    """
    if status is NodeStatus.HEALTHY:
        span = 1 - degraded_line
        placed = 90 + 10 * ((fit - degraded_line) / span if span > 0 else Fraction(1))
    elif status is NodeStatus.DEGRADED:
        placed = 70 + 19 * fit
    elif status is NodeStatus.UNHEALTHY and failing:
        placed = 1 + (DOUBT_FLOOR - 2) * fit / failing
    elif status is NodeStatus.UNHEALTHY:
        placed = DOUBT_FLOOR + 34 * fit
    else:
        return 0.0
    return within(status, round(float(placed), 1))


def within(status: NodeStatus, score: float) -> float:
    """`score` moved into `status`'s band: the nearest end of it when it lies outside.

    Hysteresis shows a status other than the one a check observed while it waits for
    confirmation; the score follows what is shown, at the end of its band nearest to what
    was observed (a healthy node failing unconfirmed is the least healthy of the healthy).
    """
    low, high = BANDS.get(status, (0.0, 0.0))
    return min(high, max(low, score))


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The node's limits for the verdict."""

    pass_rate: float
    degraded_score: float


def verdict(  # noqa: PLR0913 - one verdict needs all of these, and they are keyword-only
    *,
    name: str,
    address: str,
    when: datetime,
    checks: tuple[CheckResult, ...],
    weights: dict[str, float],
    thresholds: Thresholds,
    core: frozenset[str],
    gpus: tuple[GpuMetrics, ...] = (),
    host: HostMetrics | None = None,
    disks: tuple[DiskSpace, ...] = (),
    unreachable: str | None = None,
    versions: dict[str, str] | None = None,
) -> NodeVerdict:
    """Combine one node's check results into its verdict (DESIGN §5).

    `unreachable` is the reason no session could be opened, if none could; a failed `ssh`
    check means the same. The pass rate counts the checks named in `core` (all of them when
    none of those ran); a failure of any other check makes the node unhealthy.
    """
    counted = [c for c in checks if c.name in core] or list(checks)
    passed = sum(1 for c in counted if c.status.passed)
    rate = Fraction(passed, len(counted)) if counted else Fraction(0)
    decisive = any(c.status is Status.FAIL and c.name not in core for c in checks)
    ssh = next((c for c in checks if c.name == "ssh"), None)
    if ssh is not None and ssh.status is Status.FAIL:
        # An empty message must not make a failed ssh check look reachable.
        unreachable = unreachable or ssh.message or "the ssh check failed"
    pressure = [] if unreachable else pressures(gpus, host)
    fit = fitness(checks, weights, pressure)
    line = _decimal(thresholds.degraded_score) / 100
    if unreachable:
        status = NodeStatus.UNREACHABLE
    elif decisive or rate < _decimal(thresholds.pass_rate):
        status = NodeStatus.UNHEALTHY
    # Healthy means every check ok: a failing check the pass rate tolerates still degrades.
    elif any(c.status is not Status.OK for c in checks) or fit < line:
        status = NodeStatus.DEGRADED
    else:
        status = NodeStatus.HEALTHY
    failing = sum(1 for c in checks if c.status is Status.FAIL)
    health = score(status, fit, failing=failing, degraded_line=line)
    return NodeVerdict(
        name=name,
        address=address,
        status=status,
        health_score=health,
        pass_rate=round(float(rate), 4),
        last_check=when,
        checks=checks,
        gpus=gpus,
        host=host,
        disks=disks,
        alerts=_alerts(checks, pressure, unreachable=unreachable),
        versions=dict(versions or {}),
    )


def _alerts(
    checks: tuple[CheckResult, ...], pressure: list[Pressure], *, unreachable: str | None
) -> tuple[Alert, ...]:
    if unreachable:
        return (Alert("critical", f"unreachable: {unreachable}"),)
    # One line for checks that say the same: "ecc, remap, …: not read: … (see the gpu check)".
    said = by_message(checks, lambda c: "critical" if c.status is Status.FAIL else "warning")
    alerts = [
        Alert(sev, f"{', '.join(names)}: {message}") for (sev, message), names in said.items()
    ]
    return (*alerts, *(p.alert for p in pressure))
