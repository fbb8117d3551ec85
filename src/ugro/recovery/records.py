"""remediation.json: how often each node's actions ran, and which nodes remediation gave up on.

The file lives beside the cordons file and is written atomically after every change, so a
restarted daemon neither forgets how often it already tried nor retries a node it gave up
on. Not in the history database: that can be turned off, moved or pruned, while these
counters are part of what the daemon must remember.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ugro import paths
from ugro.errors import StateError
from ugro.recovery import plan as recovery
from ugro.recovery.plan import NodeRemediation
from ugro.store import atomicfile
from ugro.store.state import MALFORMED

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from ugro.config import RecoverySettings
    from ugro.recovery.plan import Attempt, Escalation

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1


class RemediationStore:
    """remediation.json: each node's attempts and escalation; the daemon is its only writer."""

    def __init__(self, path: Path | None = None) -> None:
        """Use `path`, by default paths.remediation_file()."""
        self.path = path or paths.remediation_file()

    def read(self) -> dict[str, NodeRemediation]:
        """Every node's record; empty without a file; StateError when unreadable or corrupt."""
        raw = atomicfile.read(self.path)
        if raw is None:
            return {}
        try:
            return _parse(json.loads(raw))
        except MALFORMED as exc:
            raise StateError(f"{self.path}: corrupt ({type(exc).__name__}: {exc})") from exc

    def write(self, records: Mapping[str, NodeRemediation]) -> None:
        """Replace the file with `records`."""
        document = {
            "schema_version": SCHEMA_VERSION,
            "updated_at": datetime.now(UTC).isoformat(),
            "nodes": {node: r.to_json() for node, r in sorted(records.items())},
        }
        atomicfile.write(self.path, json.dumps(document, indent=1, allow_nan=False).encode())


def _parse(document: Any) -> dict[str, NodeRemediation]:  # noqa: ANN401 - parsed JSON
    version = document.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ValueError(f"unknown schema version {version!r}")
    return {str(node): NodeRemediation.from_json(data) for node, data in document["nodes"].items()}


class Ledger:
    """The daemon's remediation records in memory, saved to its `RemediationStore`."""

    def __init__(self, store: RemediationStore) -> None:
        """Keep the records of `store`; empty until `load`."""
        self.store = store
        self.records: dict[str, NodeRemediation] = {}

    def load(self) -> None:
        """Continue from the file; an unreadable one is moved aside, with a warning.

        An attempt that was running when the last daemon stopped counts as made.
        """
        try:
            records = self.store.read()
        except StateError as exc:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            aside = self.store.path.with_name(f"{self.store.path.name}.corrupt-{stamp}")
            with contextlib.suppress(OSError):
                self.store.path.rename(aside)
            log.warning("starting without remediation attempts: %s; moved to %s", exc, aside)
            return
        self.records = {
            node: replace(
                rem,
                attempts={
                    name: tuple(replace(a, done=True) for a in tries)
                    for name, tries in rem.attempts.items()
                },
            )
            for node, rem in records.items()
        }

    def attempt(self, node: str, action: str, attempt: Attempt) -> None:
        """Count `attempt` of `action` on `node`."""
        rem = self.records.get(node, NodeRemediation())
        tries = (*rem.attempts.get(action, ()), attempt)
        self.records[node] = replace(rem, attempts={**rem.attempts, action: tries})

    def finish(self, node: str, action: str, started_at: datetime, exit_status: int | None) -> None:
        """Mark the attempt started at `started_at` done, with how it exited."""
        rem = self.records.get(node)
        if rem is None:
            return
        tries = tuple(
            replace(a, exit_status=exit_status, done=True) if a.at == started_at else a
            for a in rem.attempts.get(action, ())
        )
        self.records[node] = replace(rem, attempts={**rem.attempts, action: tries})

    def escalate(self, node: str, escalation: Escalation) -> None:
        """Remediation gave up on `node`: no more actions until a person lifts its cordon."""
        rem = self.records.get(node, NodeRemediation())
        self.records[node] = replace(rem, escalated=escalation)

    def mark_cordoned(self, node: str) -> None:
        """The escalated `node` is under a cordon now."""
        rem = self.records[node]
        if rem.escalated is not None:
            self.records[node] = replace(rem, escalated=replace(rem.escalated, cordoned=True))

    def clear(self, node: str) -> None:
        """Forget `node`'s attempts and escalation: a person lifted its escalated cordon."""
        self.records.pop(node, None)

    def prune(self, settings: RecoverySettings, now: datetime) -> None:
        """Forget attempts older than their action's window and cooldown."""
        self.records = recovery.prune(self.records, settings, now)

    async def save(self) -> None:
        """Write the records, off the event loop; a failure is logged, and the next save retries."""
        try:
            await asyncio.to_thread(self.store.write, dict(self.records))
        except StateError as exc:
            log.error("remediation attempts not saved: %s", exc)  # noqa: TRY400 - complete
