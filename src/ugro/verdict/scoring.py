"""Pure verdicts: check results and metrics in, node status, 0–100 score and alerts out.

The formula (README, "Score"): each enabled check carries its weight and earns a credit:
ok all of it, warn half, fail and unknown none. Pressure in the detailed metrics a check
measured (a hot GPU, an overloaded host) takes a share of that check's credit. The score is
the earned share of the enabled weight, times 100. An unreachable node scores 0.

Because pressure only ever scales a check's own credit, and a failing check earns nothing,
a failing check can never raise the score.

The 90 % rule counts the core checks (the phase document's five). Any other check that fails
(an uncorrectable ECC error, an Xid, an unreachable rendezvous) is evidence on its own that
the node cannot train: counted among a dozen checks it would slip under the 90 % line, so it
makes the node unhealthy by itself.
"""

from __future__ import annotations

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


def score(
    checks: tuple[CheckResult, ...], weights: dict[str, float], pressure: list[Pressure]
) -> float:
    """Health score 0–100 (module docstring); 100 needs every check ok and no pressure."""
    total = sum(Fraction(weights[c.name]) for c in checks)
    if not total:
        return 0.0
    lost: dict[str, Fraction] = {}
    for p in pressure:
        lost[p.check] = min(Fraction(1), lost.get(p.check, Fraction(0)) + p.share)
    earned = sum(
        Fraction(weights[c.name]) * CREDIT[c.status] * (1 - lost.get(c.name, Fraction(0)))
        for c in checks
    )
    return round(float(earned / total * 100), 1)


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
        unreachable = unreachable or ssh.message
    pressure = [] if unreachable else pressures(gpus, host)
    health = 0.0 if unreachable else score(checks, weights, pressure)
    if unreachable:
        status = NodeStatus.UNREACHABLE
    elif decisive or rate < Fraction(str(thresholds.pass_rate)):
        status = NodeStatus.UNHEALTHY
    elif (
        any(c.status in (Status.WARN, Status.UNKNOWN) for c in checks)
        or health < thresholds.degraded_score
    ):
        status = NodeStatus.DEGRADED
    else:
        status = NodeStatus.HEALTHY
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
