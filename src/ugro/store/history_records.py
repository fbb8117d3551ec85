"""What the history database holds and answers with, and how its values are encoded.

The record types `History` writes and returns (`Sample`, `Transition`, `Event`, `Summary`),
the integer codes sample statuses are stored as, the latency histogram buckets the hourly
rollups count in, and the arithmetic that turns summed samples into a `Summary`. Pure data:
nothing here touches SQLite (`ugro.store.history` does).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ugro.model import BAD_STATUSES, GOOD_STATUSES, NodeStatus

if TYPE_CHECKING:
    from datetime import datetime

    from ugro.model import NodeVerdict

STATUS_CODES = {status: i for i, status in enumerate(NodeStatus)}
# The same sets as stored: sample statuses are codes.
GOOD = frozenset(STATUS_CODES[s] for s in GOOD_STATUSES)
BAD = frozenset(STATUS_CODES[s] for s in BAD_STATUSES)
# Latency histogram buckets grow by 2^(1/4): percentiles are exact to within ±9 %.
BUCKETS_PER_DOUBLING = 4
# Kinds of `events` rows.
EVENT_KINDS = ("cordon", "uncordon", "remediation", "escalation", "breaker", "scheduler")


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of a node's shown status."""

    at: datetime
    node: str
    before: str
    after: str
    reason: str


@dataclass(frozen=True, slots=True)
class Event:
    """Something done to a node, or about it: a cordon, an action run, an escalation."""

    at: datetime
    node: str
    kind: str
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Sample:
    """One node's verdict in one sweep, and how long it holds (until the next check)."""

    verdict: NodeVerdict
    holds_s: float


@dataclass(slots=True)
class Totals:
    """Samples of one node summed so far: counts, weights, scores and a latency histogram."""

    samples: int = 0
    weight_ms: int = 0
    good_ms: int = 0
    bad_ms: int = 0
    score_min: float = math.inf
    score_sum: float = 0.0
    latency: Counter[int] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class Summary:
    """A node over a period: how available, how often it flapped, latency and score."""

    node: str
    samples: int
    availability_pct: float | None
    unhealthy_s: float
    flaps: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    score_min: float | None
    score_mean: float | None


def bucket(latency_ms: float) -> int:
    """The histogram bucket of a latency."""
    return math.floor(math.log2(max(latency_ms, 1e-3)) * BUCKETS_PER_DOUBLING)


def bucket_value(index: int) -> float:
    """A bucket's representative latency (its geometric middle), in ms."""
    return float(2 ** ((index + 0.5) / BUCKETS_PER_DOUBLING))


def summarize(name: str, totals: Totals, flaps: int) -> Summary:
    """The summary of node `name` from its summed samples and its count of flaps."""

    def percentile(q: float) -> float | None:
        count = sum(totals.latency.values())
        if not count:
            return None
        seen = 0
        for b in sorted(totals.latency):
            seen += totals.latency[b]
            if seen >= q * count:
                return round(bucket_value(b), 3)
        return None

    return Summary(
        node=name,
        samples=totals.samples,
        availability_pct=round(100 * totals.good_ms / totals.weight_ms, 2)
        if totals.weight_ms
        else None,
        unhealthy_s=round(totals.bad_ms / 1000, 1),
        flaps=flaps,
        latency_p50_ms=percentile(0.5),
        latency_p95_ms=percentile(0.95),
        score_min=totals.score_min if totals.samples else None,
        score_mean=round(totals.score_sum / totals.samples, 1) if totals.samples else None,
    )
