"""The fleet's verdicts read from Prometheus's HTTP API, as the state file would give them.

Several monitors (shards) or node_exporter textfiles (node-local mode) each export part of
the fleet; Prometheus scrapes them all, so it alone knows every node. `read` asks its
`/api/v1/query` for the exporter's node families in one instant query and rebuilds a
`NodeVerdict` per node, which the CLI shows as it shows the state file's.

What the metrics cannot carry is said, not invented: a check's message is its status and
the monitor (`instance`) that has the details; the node's address is not exported. A node
that two monitors report (shards being resized) is taken from the newer check.

Prometheus's answer is untrusted input like a node's: `ugro.fleet.promapi` reads it bounded,
and every value is checked again here for its range; a series that is not is left out and
counted.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ugro.errors import PrometheusError
from ugro.fleet.promapi import Sample, query, shown_url
from ugro.model import Alert, CheckResult, NodeStatus, NodeVerdict, Status

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ugro.store.cordons import Cordon

# The families a verdict is rebuilt from (ugro.exporter.FAMILIES names them all).
FAMILIES = (
    "ugro_node_status",
    "ugro_node_health_ratio",
    "ugro_node_last_check_timestamp_seconds",
    "ugro_check_status",
    "ugro_node_version_info",
    "ugro_node_cordoned",
)
# Only the status that is set (one series of six), and the rest whole. `or` keeps a right-hand
# series unless one on the left has its labels: none does, the left's all have `status`.
QUERY = (
    'ugro_node_status == 1 or {__name__=~"'
    + "|".join(f for f in FAMILIES if f != "ugro_node_status")
    + '"}'
)
# Monitors scraped in the last hour that are not scraped now: their nodes are missing.
GONE_QUERY = (
    "group by (instance, job) (last_over_time(ugro_build_info[1h])) "
    "unless on (instance, job) group by (instance, job) (ugro_build_info)"
)
# A verdict read from Prometheus older than this is stale, whatever its monitor said: three
# of a node-local HealthCheckInterval of 300 s, a usual one. (A monitor's own staleness,
# after three of its intervals, already arrives as the exported status.)
STALE_AFTER_S = 900.0
# Unix times a verdict may carry: from 2000 to 2100.
_EARLIEST, _LATEST = 946_684_800.0, 4_102_444_800.0


@dataclass(frozen=True)
class Fleet:
    """What Prometheus knows about the fleet now."""

    verdicts: dict[str, NodeVerdict]
    cordons: dict[str, Cordon]
    # For people: monitors that stopped reporting, series that were refused.
    notes: list[str] = field(default_factory=list)
    # Monitors scraped in the last hour and not now: part of the fleet has no verdict.
    missing_monitors: list[str] = field(default_factory=list)


def read(url: str, *, timeout_s: float, now: datetime | None = None) -> Fleet:
    """The fleet's verdicts from the Prometheus at `url`; PrometheusError when unreadable."""
    now = now or datetime.now(UTC)
    samples, unusable = query(url, QUERY, timeout_s=timeout_s)
    gone, _ = query(url, GONE_QUERY, timeout_s=timeout_s)
    fleet = rebuild(samples, now)
    if unusable:
        fleet.notes.append(
            f"{unusable} series from Prometheus left out: not labels and a finite value"
        )
    where = shown_url(url)
    if not fleet.verdicts and not gone:
        raise PrometheusError(
            f"Prometheus at {where} has no ugro verdicts: is it scraping the monitors' "
            "exporters (or node_exporter's textfiles)? See docs/scaling.md"
        )
    for sample in gone:
        monitor = _monitor(sample.labels)
        fleet.missing_monitors.append(monitor)
        fleet.notes.append(
            f"the monitor {monitor} reported within the last hour but not now: "
            "its nodes are missing here (is it running, and is Prometheus scraping it?)"
        )
    return fleet


@dataclass
class _Partial:
    """What one monitor says about one node, gathered from its series."""

    node: str
    monitor: str
    status: NodeStatus | None = None
    ratio: float | None = None
    last_check: float | None = None
    checks: dict[str, Status] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    cordoned: bool = False
    refused: bool = False


def rebuild(samples: Iterable[Sample], now: datetime) -> Fleet:
    """Node verdicts from the exporter's series; the newer check where monitors disagree."""
    partials: dict[tuple[str, str], _Partial] = {}
    for s in samples:
        node = s.labels.get("node")
        name = s.labels.get("__name__")
        if not node or name not in _TAKERS:
            continue
        monitor = _monitor(s.labels)
        part = partials.setdefault((node, monitor), _Partial(node, monitor))
        if not _take(part, name, s):
            part.refused = True
    newest: dict[str, _Partial] = {}
    refused: set[str] = set()
    for part in partials.values():
        if part.refused or part.status is None or part.last_check is None or part.ratio is None:
            refused.add(part.node)
            continue
        held = newest.get(part.node)
        if held is None or (held.last_check or 0) < part.last_check:
            newest[part.node] = part
    fleet = Fleet(
        verdicts={
            n: _verdict(p, p.status, p.ratio, p.last_check)
            for n, p in sorted(newest.items())
            if p.status is not None and p.ratio is not None and p.last_check is not None
        },
        cordons={n: _cordon(p, now) for n, p in sorted(newest.items()) if p.cordoned},
    )
    refused -= set(newest)
    if refused:
        names = ", ".join(sorted(refused)[:10]) + (", ..." if len(refused) > 10 else "")
        fleet.notes.append(
            f"left out {len(refused)} node(s) whose series are incomplete or hold values "
            f"ugro's exporter does not write: {names}"
        )
    return fleet


def _take(part: _Partial, name: str, s: Sample) -> bool:
    """Fold one sample into `part`; False when its value or labels are out of range."""
    return _TAKERS[name](part, s.labels, s.value)


def _status(part: _Partial, labels: dict[str, str], value: float) -> bool:
    # One-hot: the series that is 1 names the status.
    try:
        status = NodeStatus(labels.get("status", ""))
    except ValueError:
        return False
    if value == 1:
        part.status = status
    return True


def _ratio(part: _Partial, _labels: dict[str, str], value: float) -> bool:
    part.ratio = value
    return 0 <= value <= 1


def _last_check(part: _Partial, _labels: dict[str, str], value: float) -> bool:
    part.last_check = value
    return _EARLIEST <= value <= _LATEST


def _check(part: _Partial, labels: dict[str, str], value: float) -> bool:
    check = labels.get("check")
    if not check or value not in (0, 1, 2, 3):
        return False
    part.checks[check] = Status(int(value))
    return True


def _version(part: _Partial, labels: dict[str, str], _value: float) -> bool:
    component, version = labels.get("component"), labels.get("version")
    if not component or version is None:
        return False
    part.versions[component] = version
    return True


def _cordoned(part: _Partial, _labels: dict[str, str], value: float) -> bool:
    part.cordoned = value == 1
    return value in (0, 1)


_TAKERS = {
    "ugro_node_status": _status,
    "ugro_node_health_ratio": _ratio,
    "ugro_node_last_check_timestamp_seconds": _last_check,
    "ugro_check_status": _check,
    "ugro_node_version_info": _version,
    "ugro_node_cordoned": _cordoned,
}


def _monitor(labels: dict[str, str]) -> str:
    """Which exporter a series came from, as Prometheus's target labels name it."""
    instance, job = labels.get("instance", "?"), labels.get("job")
    return f"{instance} (job {job})" if job else instance


def _verdict(part: _Partial, status: NodeStatus, ratio: float, last_check: float) -> NodeVerdict:
    """The node's verdict as its monitor exported it: `part` with its status, score and time."""
    core = [s for name, s in part.checks.items() if name in _core_checks()]
    passed = sum(s.passed for s in core)
    where = f"details on the monitor {part.monitor}"
    checks = tuple(
        CheckResult(name, result, f"{result.label} ({where})")
        for name, result in sorted(part.checks.items())
    )
    alerts = tuple(
        Alert("warning" if c.status is Status.WARN else "critical", f"{c.name}: {c.message}")
        for c in checks
        if c.status is not Status.OK
    )
    return NodeVerdict(
        name=part.node,
        # Not exported: the monitors know it.
        address="",
        status=status,
        health_score=round(ratio * 100, 1),
        pass_rate=passed / len(core) if core else 0.0,
        last_check=datetime.fromtimestamp(last_check, UTC),
        checks=checks,
        alerts=alerts,
        versions=dict(sorted(part.versions.items())),
    )


@functools.cache
def _core_checks() -> frozenset[str]:
    """The names of the five core checks the pass rate counts."""
    from ugro.checks import registry

    return frozenset(name for name, check in registry().items() if check.core)


def _cordon(part: _Partial, now: datetime) -> Cordon:
    """A cordon as far as Prometheus knows it: who placed it and why are on the monitor."""
    from ugro.store.cordons import Cordon

    return Cordon(
        node=part.node,
        by="ugro",
        reason=f"reported by the monitor {part.monitor} (`ugro cordon` there says why)",
        since=now,
    )
