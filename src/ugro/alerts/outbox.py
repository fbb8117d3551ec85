"""A sink's undelivered events on disk, so that a stop or a kill loses no page.

The dispatcher keeps, per sink, the events it has not yet delivered and the firings the sink
did accept; both are written atomically (`ugro.store.atomicfile`, mode 0600) beside the state
file whenever they change, and read back when the daemon starts. An event leaves the outbox
only once the sink accepted it, or once its retries ran out: delivery is at least once.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ugro.alerts.book import AlertEvent
from ugro.errors import StateError
from ugro.store import atomicfile
from ugro.store.episodes import WriteEpisode

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["Outbox", "Sent", "sent_key"]

log = logging.getLogger(__name__)

#: One firing as a sink knows it: (node, key, started_at); a resolved needs its firing here.
Sent = tuple[str, str, str]


def sent_key(event: AlertEvent) -> Sent:
    """The firing `event` belongs to."""
    return (event.node, event.key, event.started_at.isoformat())


@dataclass
class Outbox:
    """One sink's pending events and delivered firings, kept in `path` (None: in memory)."""

    path: Path | None
    pending: list[AlertEvent] = field(default_factory=list)
    delivered: set[Sent] = field(default_factory=set)
    # A full disk fails every save: said once when saves start failing, once when they work.
    writes: WriteEpisode = field(default_factory=lambda: WriteEpisode("an alert outbox"))

    @classmethod
    def beside(cls, directory: Path | None, sink: str) -> Outbox:
        """The outbox of the sink named `sink` in `directory`, with what it holds on disk."""
        if directory is None:
            return cls(None)
        # Sink names are free text: keep the file name to safe characters, and unambiguous.
        safe = re.sub(r"[^A-Za-z0-9_-]", lambda m: f"%{ord(m.group()):02x}", sink)
        box = cls(directory / f"alerts-outbox.{safe}.json")
        box.load()
        return box

    def load(self) -> None:
        """Read what an earlier daemon left; a file that cannot be read is logged and ignored."""
        if self.path is None:
            return
        try:
            raw = atomicfile.read(self.path)
            if raw is None:
                return
            data = json.loads(raw)
            self.pending = [_event(e) for e in data.get("pending", [])]
            self.delivered = {(str(n), str(k), str(s)) for n, k, s in data.get("delivered", [])}
        except (StateError, ValueError, TypeError, KeyError, AttributeError) as exc:
            log.warning("%s: ignoring an unreadable alert outbox: %s", self.path, exc)
            self.pending, self.delivered = [], set()

    def save(self) -> None:
        """Write the outbox; a failure is logged: delivery goes on from memory."""
        if self.path is None:
            return
        data = {
            "pending": [_to_json(e) for e in self.pending],
            "delivered": sorted(self.delivered),
        }
        try:
            atomicfile.write(self.path, json.dumps(data, allow_nan=False).encode())
        except StateError as exc:
            self.writes.failed(f"{exc}; a restart may lose its events")
        else:
            self.writes.written()

    def sent(self, event: AlertEvent) -> None:
        """Record that the sink accepted `event`."""
        if event.kind in ("firing", "reminder"):
            self.delivered.add(sent_key(event))
        elif event.kind == "resolved":
            self.delivered.discard(sent_key(event))

    def owes(self, event: AlertEvent) -> bool:
        """Whether the sink should get `event`: never a resolved for a firing it did not get."""
        return event.kind != "resolved" or sent_key(event) in self.delivered

    def forget(self, event: AlertEvent) -> None:
        """Drop `event` (delivered, given up or not owed) from the pending ones."""
        for i, waiting in enumerate(self.pending):
            if waiting is event:
                del self.pending[i]
                return


def _to_json(event: AlertEvent) -> dict[str, Any]:
    return {
        "kind": event.kind,
        "node": event.node,
        "key": event.key,
        "severity": event.severity,
        "summary": event.summary,
        "details": list(event.details),
        "started_at": event.started_at.isoformat(),
        "cluster": event.cluster,
        "resolved_at": event.resolved_at.isoformat() if event.resolved_at else None,
        "check": event.check,
    }


def _event(data: dict[str, Any]) -> AlertEvent:
    if data["kind"] not in ("firing", "reminder", "resolved") or data["severity"] not in (
        "warning",
        "critical",
    ):
        raise ValueError(f"not an alert event: {data['kind']!r}, {data['severity']!r}")
    resolved = data.get("resolved_at")
    return AlertEvent(
        kind=data["kind"],
        node=str(data["node"]),
        key=str(data["key"]),
        severity=data["severity"],
        summary=str(data["summary"]),
        details=tuple(str(d) for d in data["details"]),
        started_at=datetime.fromisoformat(data["started_at"]),
        cluster=str(data["cluster"]),
        resolved_at=datetime.fromisoformat(resolved) if resolved else None,
        check=data.get("check"),
    )
