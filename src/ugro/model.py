"""The values that flow from a check to the state file: statuses, results, verdicts.

Kept free of third-party imports: `ugro health` loads this module and nothing heavy.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from _typeshed import DataclassInstance

_Key = TypeVar("_Key")
_Record = TypeVar("_Record", bound="DataclassInstance")

# The largest magnitude a number read back from a file may have: a signed 64-bit counter's,
# which bounds every byte count, reading and duration ugro stores.
LIMIT = 2**63


class Status(enum.IntEnum):
    """A check's outcome, numbered as Nagios numbers its plugin states."""

    OK = 0
    WARN = 1
    FAIL = 2
    UNKNOWN = 3

    @property
    def label(self) -> str:
        """Lower-case name used in JSON and tables."""
        return self.name.lower()

    @property
    def passed(self) -> bool:
        """Whether the check counts towards the pass rate (ok and warn do)."""
        return self in (Status.OK, Status.WARN)


class NodeStatus(enum.StrEnum):
    """A node's verdict; `exit_code` maps it onto the Nagios scale."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"
    UNREACHABLE = "unreachable"
    UNKNOWN = "unknown"
    STALE = "stale"

    @property
    def exit_code(self) -> int:
        """Nagios code: 0 healthy, 1 degraded, 2 unhealthy/unreachable, 3 unknown/stale."""
        return _EXIT_CODES[self]


# Shown bad: the node cannot train. Hysteresis confirms a move between these sets, recovery
# cordons the bad, and the history counts time spent in each.
BAD_STATUSES = frozenset({NodeStatus.UNHEALTHY, NodeStatus.UNREACHABLE})
GOOD_STATUSES = frozenset({NodeStatus.HEALTHY, NodeStatus.DEGRADED})

# The node name of what concerns the whole cluster rather than one node: the cordon breaker,
# many nodes down at once. Such alerts pass every sink's `nodes` filter.
CLUSTER = "cluster"

_EXIT_CODES = {
    NodeStatus.HEALTHY: 0,
    NodeStatus.DEGRADED: 1,
    NodeStatus.UNHEALTHY: 2,
    NodeStatus.UNREACHABLE: 2,
    NodeStatus.UNKNOWN: 3,
    NodeStatus.STALE: 3,
}

# Severity order for "the worst" of several codes: a known problem (2) outranks not knowing (3),
# which outranks a warning (1).
_SEVERITY = {0: 0, 1: 1, 3: 2, 2: 3}


def worst_exit_code(codes: list[int]) -> int:
    """The code a command exits with for several nodes; 3 when there are none."""
    if not codes:
        return 3
    return max(codes, key=_SEVERITY.__getitem__)


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What a command on a node returned; modelled on asyncssh's completed process."""

    exit_status: int | None
    stdout: str = ""
    stderr: str = ""
    exit_signal: str | None = None
    # The command printed more than the transport reads (ugro.subprocesses.STDOUT_LIMIT,
    # STDERR_LIMIT): it kept the first bytes of each stream and stopped the command, so the
    # exit status is unknown (None).
    truncated: bool = False

    def said(self, *, first: bool = False, limit: int = 200) -> str:
        """`: <line>`, a line of what a failed command printed (stderr, else stdout), or "".

        The last line is usually the error; `first` takes the first instead, for tools that
        print the cause first. Cut to `limit` characters: it goes into a message.
        """
        lines = (self.stderr or self.stdout).strip().splitlines()
        return f": {lines[0 if first else -1][:limit]}" if lines else ""


@dataclass(frozen=True, slots=True)
class GpuMetrics:
    """One GPU's readings from nvidia-smi; None where the driver reports N/A."""

    index: int
    uuid: str
    name: str
    temperature_c: float | None
    utilization_pct: float | None
    memory_used_mib: float | None
    memory_total_mib: float | None
    power_draw_w: float | None
    power_limit_w: float | None


@dataclass(frozen=True, slots=True)
class HostMetrics:
    """Load and memory of a node's operating system."""

    load_1m: float
    load_5m: float
    load_15m: float
    cpus: int
    memory_total_bytes: int
    memory_available_bytes: int


@dataclass(frozen=True, slots=True)
class DiskSpace:
    """Free space under one configured path, as df reports it."""

    path: str
    mount: str
    free_bytes: int
    total_bytes: int


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What a check's pure `evaluate` concludes from one command result."""

    status: Status
    message: str
    value: float | None = None
    unit: str | None = None
    gpus: tuple[GpuMetrics, ...] = ()
    host: HostMetrics | None = None
    disks: tuple[DiskSpace, ...] = ()
    # Software versions the check saw ("driver", "cuda", "torch", "nccl", "python"), for drift.
    versions: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's outcome on one node, as persisted and shown."""

    name: str
    status: Status
    message: str
    value: float | None = None
    unit: str | None = None
    duration_ms: float = 0.0


def by_message(
    checks: Iterable[CheckResult], key: Callable[[CheckResult], _Key]
) -> dict[tuple[_Key, str], list[str]]:
    """The names of the checks that are not ok, grouped by `key` and message, in check order.

    Checks that say the same thing are said once: six GPU health checks that could not read
    a broken driver are one alert, not six.
    """
    same: dict[tuple[_Key, str], list[str]] = {}
    for c in checks:
        if c.status is not Status.OK:
            same.setdefault((key(c), c.message), []).append(c.name)
    return same


@dataclass(frozen=True, slots=True)
class Alert:
    """A problem a person should know about, as it stands after this check."""

    severity: str
    text: str


@dataclass(frozen=True, slots=True)
class Tracking:
    """What the daemon's hysteresis knows about a node besides its latest check."""

    observed: NodeStatus
    since: datetime
    fail_streak: int
    pass_streak: int
    unreachable_streak: int
    next_check_at: datetime

    def to_json(self) -> dict[str, Any]:
        """The `tracking` object of a node in the state file."""
        return {
            "observed": self.observed.value,
            "since": self.since.isoformat(),
            "fail_streak": self.fail_streak,
            "pass_streak": self.pass_streak,
            "unreachable_streak": self.unreachable_streak,
            "next_check_at": self.next_check_at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Tracking:
        """Inverse of `to_json`."""
        return cls(
            observed=NodeStatus(data["observed"]),
            since=parse_utc(data["since"]),
            fail_streak=int(data["fail_streak"]),
            pass_streak=int(data["pass_streak"]),
            unreachable_streak=int(data["unreachable_streak"]),
            next_check_at=parse_utc(data["next_check_at"]),
        )


def parse_utc(text: str) -> datetime:
    """An ISO 8601 time from a file ugro wrote; ValueError unless it carries its UTC offset.

    A time without an offset is refused rather than guessed: ugro never writes one.
    """
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"time {text!r} has no UTC offset")
    return value


def as_utc(moment: datetime) -> datetime:
    """`moment` as an aware UTC time, for APIs that want UTC (ugro's naive times are UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def number(value: object, low: float = -LIMIT, high: float = LIMIT) -> float:
    """`value` as a float when it is a finite number in [low, high]; TypeError or ValueError.

    For numbers read back from a file: JSON allows a 310-digit integer, on which float()
    overflows, and NaN, which no comparison or metric can use.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    # Compared before converting: exact for big integers, and false for NaN.
    if not low <= value <= high:
        raise ValueError(f"{value!r:.40} is not a number in [{low:g}, {high:g}]")
    return float(value)


def _integer(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    if not -LIMIT <= value <= LIMIT:
        raise ValueError(f"{value!r:.40} is not an integer in [{-LIMIT:g}, {LIMIT:g}]")
    return value


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


_PARSERS: dict[str, Callable[[object], object]] = {"int": _integer, "float": number, "str": _text}


def _record(kind: type[_Record], data: dict[str, Any]) -> _Record:
    """One of the flat records above from a file, each field checked against its declared type.

    Unknown keys are ignored; a missing key is a KeyError, a wrong or absurd value a ValueError
    that names the field.
    """
    values: dict[str, object] = {}
    for name, parse, nullable in _layout(kind):
        value = data[name]
        if value is None and nullable:
            values[name] = None
            continue
        try:
            values[name] = parse(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{kind.__name__}.{name}: {exc}") from exc
    return kind(**values)


# Each flat record's fields as (name, parser, whether None is allowed), worked out once: a
# state file of 1000 nodes holds ten thousand records, and `ugro health` reads them all.
_LAYOUTS: dict[type, tuple[tuple[str, Callable[[object], object], bool], ...]] = {}


def _layout(
    kind: type[DataclassInstance],
) -> tuple[tuple[str, Callable[[object], object], bool], ...]:
    """`kind`'s fields as `_record` reads them."""
    layout = _LAYOUTS.get(kind)
    if layout is None:
        layout = tuple(
            (f.name, _PARSERS[str(f.type).removesuffix(" | None")], str(f.type).endswith(" | None"))
            for f in fields(kind)
        )
        _LAYOUTS[kind] = layout
    return layout


def _flat(record: DataclassInstance) -> dict[str, Any]:
    """A flat record as a dict: what `asdict` gives for one, without its deep copying."""
    return {name: getattr(record, name) for name, _, _ in _layout(type(record))}


@dataclass(frozen=True, slots=True)
class NodeVerdict:
    """Everything ugro concluded about one node in one check."""

    name: str
    address: str
    status: NodeStatus
    health_score: float
    pass_rate: float
    last_check: datetime
    checks: tuple[CheckResult, ...]
    gpus: tuple[GpuMetrics, ...] = ()
    host: HostMetrics | None = None
    disks: tuple[DiskSpace, ...] = ()
    alerts: tuple[Alert, ...] = field(default=())
    tracking: Tracking | None = None
    versions: dict[str, str] = field(default_factory=dict)

    def failing(self) -> tuple[CheckResult, ...]:
        """Checks that did not pass, in check order."""
        return tuple(c for c in self.checks if not c.status.passed)

    def to_json(self) -> dict[str, Any]:
        """The node's entry in the state file and in `--json` output."""
        return {
            "name": self.name,
            "address": self.address,
            "status": self.status.value,
            "health_score": self.health_score,
            "pass_rate": self.pass_rate,
            "last_check": self.last_check.isoformat(),
            "checks": {
                c.name: {
                    "status": c.status.label,
                    "message": c.message,
                    "value": c.value,
                    "unit": c.unit,
                    "duration_ms": c.duration_ms,
                }
                for c in self.checks
            },
            "gpus": [_flat(g) for g in self.gpus],
            "host": _flat(self.host) if self.host else None,
            "disks": [_flat(d) for d in self.disks],
            "alerts": [_flat(a) for a in self.alerts],
            "tracking": self.tracking.to_json() if self.tracking else None,
            "versions": self.versions,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NodeVerdict:
        """Inverse of `to_json`; raises AttributeError, KeyError, TypeError or ValueError.

        The file is untrusted input: every number must be finite and in range, every name a
        string, or the node is refused here rather than failing whoever renders it.
        """
        host = data.get("host")
        tracking = data.get("tracking")
        return cls(
            name=_text(data["name"]),
            address=_text(data["address"]),
            status=NodeStatus(data["status"]),
            health_score=number(data["health_score"], 0, 100),
            pass_rate=number(data["pass_rate"], 0, 1),
            last_check=parse_utc(data["last_check"]),
            checks=tuple(
                CheckResult(
                    name=_text(name),
                    status=Status[c["status"].upper()],
                    message=_text(c["message"]),
                    value=None if c["value"] is None else number(c["value"]),
                    unit=None if c["unit"] is None else _text(c["unit"]),
                    duration_ms=number(c["duration_ms"], 0),
                )
                for name, c in data["checks"].items()
            ),
            gpus=tuple(_record(GpuMetrics, g) for g in data["gpus"]),
            host=_record(HostMetrics, host) if host else None,
            disks=tuple(_record(DiskSpace, d) for d in data.get("disks", ())),
            alerts=tuple(_record(Alert, a) for a in data["alerts"]),
            tracking=Tracking.from_json(tracking) if tracking else None,
            versions={str(k): str(v) for k, v in data.get("versions", {}).items()},
        )
