"""Cordons: nodes kept out of the healthy set, with who cordoned them, why and since when.

The file is shared by the CLI (`ugro cordon`, `ugro uncordon`) and the daemon (automatic
cordons), so every change is a read-modify-write under the file's lock. It lives with the
history, not in the cache: a cordon is an operator's decision, and clearing a cache must
not undo it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from ugro import paths
from ugro.errors import StateError
from ugro.model import parse_utc
from ugro.store import atomicfile
from ugro.store.state import MALFORMED

if TYPE_CHECKING:
    from pathlib import Path

SCHEMA_VERSION = 1

# `ugro` cordons are the daemon's own, and only those does it lift by itself.
By = Literal["ugro", "manual"]


@dataclass(frozen=True, slots=True)
class Cordon:
    """One cordoned node."""

    node: str
    by: By
    reason: str
    since: datetime
    # The login that ran `ugro cordon`, or None for the daemon.
    user: str | None = None
    # Placed because remediation failed: the daemon never lifts it; a person must.
    escalated: bool = False

    @property
    def lifts_itself(self) -> bool:
        """Whether the daemon lifts this cordon when the node recovers."""
        return self.by == "ugro" and not self.escalated

    def describe(self) -> str:
        """Who placed it, when and why, for messages."""
        who = f"{self.user} (manual)" if self.by == "manual" and self.user else self.by
        kind = ", escalated" if self.escalated else ""
        return f"by {who}{kind} since {self.since:%Y-%m-%d %H:%M:%S}Z: {self.reason}"

    def to_json(self) -> dict[str, Any]:
        """The node's entry in the cordons file and in `--json` output."""
        return {
            "node": self.node,
            "by": self.by,
            "user": self.user,
            "reason": self.reason,
            "since": self.since.isoformat(),
            "escalated": self.escalated,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Cordon:
        """Inverse of `to_json`; raises KeyError, TypeError or ValueError."""
        by = data["by"]
        if by not in ("ugro", "manual"):
            raise ValueError(f"unknown cordon origin {by!r}")
        since = parse_utc(data["since"])
        return cls(
            node=str(data["node"]),
            by=by,
            reason=str(data["reason"]),
            since=since,
            user=data.get("user"),
            escalated=bool(data.get("escalated", False)),
        )


class CordonStore:
    """Reads and changes the cordons file; every change holds the lock."""

    def __init__(self, path: Path | None = None) -> None:
        """Use `path`, by default the cordons file of paths.cordons_file()."""
        self.path = path or paths.cordons_file()

    def read(self) -> dict[str, Cordon]:
        """Cordons by node name; empty when there is no file; StateError when corrupt.

        A corrupt file is never rebuilt silently: it holds operators' decisions, so it is
        reported and left for a person to fix.
        """
        raw = atomicfile.read(self.path)
        if raw is None:
            return {}
        try:
            cordons = self._parse(raw)
        except MALFORMED as exc:
            raise StateError(
                f"{self.path}: corrupt ({type(exc).__name__}: {exc}); fix or remove it "
                "(removing it uncordons every node)"
            ) from exc
        return {c.node: c for c in cordons}

    def _parse(self, raw: bytes) -> list[Cordon]:
        document = json.loads(raw)
        version = document.get("schema_version")
        if isinstance(version, int) and version > SCHEMA_VERSION:
            raise StateError(
                f"{self.path}: written by a newer ugro (schema {version}); upgrade ugro"
            )
        if version != SCHEMA_VERSION:
            raise ValueError(f"unknown schema version {version!r}")
        return [Cordon.from_json(c) for c in document["cordons"].values()]

    def cordon(self, cordon: Cordon, *, replace_ugro: bool = False) -> Cordon | None:
        """Cordon a node unless it already is; return the cordon that was in place, if any.

        With `replace_ugro`, a cordon the daemon placed is replaced (a person taking it
        over, or remediation escalating it); a person's cordon is never replaced.
        """
        with atomicfile.locked(self.path):
            cordons = self.read()
            existing = cordons.get(cordon.node)
            if existing is not None and not (replace_ugro and existing.by == "ugro"):
                return existing
            cordons[cordon.node] = cordon
            self._write(cordons)
            return existing

    def reword(self, node: str, reason: str, *, user: str) -> Cordon | None:
        """Give a person's cordon of `node` a new reason; return the cordon as it was.

        None, and nothing written, when the node has no cordon a person placed or its reason
        is `reason` already. The cordon keeps its `since`: the node has been out since then;
        `user` becomes who last said why.
        """
        with atomicfile.locked(self.path):
            cordons = self.read()
            existing = cordons.get(node)
            if existing is None or existing.by != "manual" or existing.reason == reason:
                return None
            cordons[node] = replace(existing, reason=reason, user=user)
            self._write(cordons)
            return existing

    def uncordon(self, node: str, *, only_by: By | None = None) -> Cordon | None:
        """Lift a node's cordon and return it; None when it had none or `only_by` differs.

        The daemon passes `only_by="ugro"`, so it never lifts a cordon a person placed, nor
        an escalated one (remediation gave up: a person must look).
        """
        with atomicfile.locked(self.path):
            cordons = self.read()
            existing = cordons.get(node)
            if existing is None or (only_by is not None and existing.by != only_by):
                return None
            if only_by == "ugro" and existing.escalated:
                return None
            del cordons[node]
            self._write(cordons)
            return existing

    def _write(self, cordons: dict[str, Cordon]) -> None:
        document = {
            "schema_version": SCHEMA_VERSION,
            "updated_at": datetime.now(UTC).isoformat(),
            "cordons": {name: c.to_json() for name, c in sorted(cordons.items())},
        }
        atomicfile.write(self.path, json.dumps(document, indent=1, allow_nan=False).encode())
