"""The alert records and their persistence: what the engine said, and what it remembers.

An `AlertEvent` is one message to deliver; an `ActiveAlert` is one alert as kept between
sweeps, and the `AlertBook` holds them all, saved in the state file through `book_to_json`
and `book_from_json`. The alert keys raised from outside the verdicts (by recovery) and their
`ExternalCondition` live here too, so that their raisers need not import the engine.

An event's summary and details quote what nodes printed. Kept as they came in the book, they
are made `printable` (one line each) where an event becomes a message: `title`, `body` and
`to_json`. The machine fields (node, key, check, severity, times) are sent as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from ugro.text import printable

Severity = Literal["warning", "critical"]
Kind = Literal["firing", "reminder", "resolved", "test"]
SEVERITY_RANK = {"warning": 1, "critical": 2}


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One message to deliver: an alert firing, reminding, resolving, or a test."""

    kind: Kind
    node: str
    key: str
    severity: Severity
    summary: str
    details: tuple[str, ...]
    started_at: datetime
    cluster: str
    resolved_at: datetime | None = None
    check: str | None = None
    # A node's alert: every check of the node that is not ok (one message per episode).
    checks: tuple[str, ...] = ()

    @property
    def alertname(self) -> str:
        """A CamelCase name for Alertmanager, from the key ("check:gpu" -> "UgroCheckGpu")."""
        words = self.key.replace(":", "_").replace("-", "_").split("_")
        return "Ugro" + "".join(w.capitalize() for w in words if w)

    def title(self) -> str:
        """A one-line headline for chat, email and the log."""
        prefix = {"firing": "", "reminder": "still: ", "resolved": "resolved: ", "test": "test: "}
        return printable(
            f"[{self.severity.upper()}] {prefix[self.kind]}{self.node}: {self.summary}"
        )

    def body(self) -> str:
        """The headline's details, one per line."""
        lines = [*self.lines(), f"since {self.started_at:%Y-%m-%d %H:%M:%S} UTC"]
        if self.resolved_at:
            lines.append(f"resolved {self.resolved_at:%Y-%m-%d %H:%M:%S} UTC")
        return "\n".join(lines)

    def lines(self) -> list[str]:
        """The details, each printable on one line: a detail cannot pass for another."""
        return [printable(detail) for detail in self.details]

    def to_json(self) -> dict[str, Any]:
        """The event as sent to webhooks and commands; summary and details printable."""
        return {
            "kind": self.kind,
            "cluster": self.cluster,
            "node": self.node,
            "key": self.key,
            "alertname": self.alertname,
            "check": self.check,
            "checks": list(self.checks),
            "severity": self.severity,
            "summary": printable(self.summary),
            "details": self.lines(),
            "started_at": self.started_at.isoformat(),
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
        }


@dataclass(frozen=True, slots=True)
class ActiveAlert:
    """An alert that is firing (or recently resolved), as kept in the state file."""

    node: str
    key: str
    severity: Severity
    summary: str
    details: tuple[str, ...]
    started_at: datetime
    last_sent_at: datetime
    check: str | None = None
    grouped: bool = False
    resolved_at: datetime | None = None
    # Whether its firing was sent: a held alert that was announced still owes its resolution.
    announced: bool = False
    # Whether it grew worse than what was sent while it was held: sent again when released.
    escalated: bool = False
    # A node's alert: the checks that are not ok.
    checks: tuple[str, ...] = ()

    def event(self, kind: Kind, cluster: str) -> AlertEvent:
        """The message for this alert."""
        return AlertEvent(
            kind=kind,
            node=self.node,
            key=self.key,
            severity=self.severity,
            summary=self.summary,
            details=self.details,
            started_at=self.started_at,
            cluster=cluster,
            resolved_at=self.resolved_at,
            check=self.check,
            checks=self.checks,
        )

    def to_json(self) -> dict[str, Any]:
        """The alert in the state file."""
        return {
            "node": self.node,
            "key": self.key,
            "severity": self.severity,
            "summary": self.summary,
            "details": list(self.details),
            "started_at": self.started_at.isoformat(),
            "last_sent_at": self.last_sent_at.isoformat(),
            "check": self.check,
            "checks": list(self.checks),
            "grouped": self.grouped,
            "announced": self.announced,
            "escalated": self.escalated,
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ActiveAlert:
        """Inverse of `to_json`."""
        resolved = data.get("resolved_at")
        return cls(
            node=data["node"],
            key=data["key"],
            severity=data["severity"],
            summary=data["summary"],
            details=tuple(data["details"]),
            started_at=datetime.fromisoformat(data["started_at"]),
            last_sent_at=datetime.fromisoformat(data["last_sent_at"]),
            check=data.get("check"),
            checks=tuple(data.get("checks", ())),
            grouped=bool(data.get("grouped", False)),
            announced=bool(data.get("announced", False)),
            escalated=bool(data.get("escalated", False)),
            resolved_at=datetime.fromisoformat(resolved) if resolved else None,
        )


@dataclass
class AlertBook:
    """Firing alerts by (node, key), recently resolved ones, and each node's status changes."""

    firing: dict[tuple[str, str], ActiveAlert] = field(default_factory=dict)
    resolved: list[ActiveAlert] = field(default_factory=list)
    changes: dict[str, list[datetime]] = field(default_factory=dict)

    def replace_alert(self, alert: ActiveAlert, **changes: Any) -> ActiveAlert:  # noqa: ANN401
        """Store `alert` with `changes` applied, and return it."""
        updated = replace(alert, **changes)
        self.firing[(alert.node, alert.key)] = updated
        return updated


DOWN_KEYS = ("unreachable", "unhealthy")
GROUP_KEY = "nodes_down"
# Raised by recovery (ugro.recovery.recoverer), not from a verdict: a node's sweep leaves them be.
BREAKER_KEY = "cordon_breaker"
ESCALATION_KEY = "remediation_failed"
SCHEDULER_KEY = "scheduler_out_of_sync"
EXTERNAL_KEYS = frozenset({BREAKER_KEY, ESCALATION_KEY, SCHEDULER_KEY})


@dataclass(frozen=True, slots=True)
class ExternalCondition:
    """A problem found outside the verdicts (the cordon breaker, a failed remediation)."""

    node: str
    key: str
    severity: Severity
    summary: str
    details: tuple[str, ...] = ()


def report(book: dict[str, Any]) -> dict[str, Any]:
    """What `ugro alerts --json` prints and the dashboard serves, from the state's `alerts`.

    Firing and resolved alerts, and per-sink delivery counters.
    """
    return {
        "schema_version": 1,
        "firing": book.get("firing", []),
        "resolved": book.get("resolved", []),
        "delivery": book.get("delivery", {}),
    }


def book_to_json(book: AlertBook) -> dict[str, Any]:
    """The alert book as kept in the state file."""
    return {
        "firing": [a.to_json() for a in book.firing.values()],
        "resolved": [a.to_json() for a in book.resolved],
        "changes": {node: [t.isoformat() for t in times] for node, times in book.changes.items()},
    }


def book_from_json(data: dict[str, Any]) -> AlertBook:
    """Inverse of `book_to_json`."""
    firing = [ActiveAlert.from_json(a) for a in data.get("firing", [])]
    return AlertBook(
        firing={(a.node, a.key): a for a in firing},
        resolved=[ActiveAlert.from_json(a) for a in data.get("resolved", [])],
        changes={
            n: [datetime.fromisoformat(t) for t in ts] for n, ts in data.get("changes", {}).items()
        },
    )
