"""The persisted verdicts: a versioned JSON file that `ugro health` reads instantly.

Writers hold a lock and replace the file atomically (temp file in the same directory,
fsync, rename), so a reader never sees a partial file. A corrupt file is moved aside and
rebuilt, with one log line.

One rule for every writer (the daemon, `ugro check`, launch gating): a verdict never
replaces a newer one of the same node, and a writer may fold what it observed into the
stored verdict under the lock (`Fold`: hysteresis, in `ugro.verdict.hysteresis`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ugro.errors import StateError
from ugro.model import NodeVerdict, number
from ugro.store import atomicfile

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from pathlib import Path

    #: How a writer records a verdict: from the stored one (None: none yet) and the new one,
    #: what to store.
    Fold = Callable[[NodeVerdict | None, NodeVerdict], NodeVerdict]

SCHEMA_VERSION = 1
# A verdict older than this many of the daemon's intervals is shown as stale.
STALE_SWEEPS = 3
DEFAULT_STALE_AFTER_S = STALE_SWEEPS * 30.0

log = logging.getLogger(__name__)

# What parsing a malformed document can raise: besides the usual, float() and int() overflow on
# huge or infinite numbers, and json.loads recurses into deeply nested arrays.
MALFORMED = (ArithmeticError, AttributeError, LookupError, RecursionError, TypeError, ValueError)


@dataclass(frozen=True)
class DaemonInfo:
    """What the monitor daemon says about itself in the state file."""

    pid: int
    started_at: datetime
    running: bool
    interval_s: float
    # Sweeps settled: each judges and persists the node checks that completed together.
    sweeps: int = 0
    # When the last sweep was settled, and how long it took: from the start of its earliest
    # node check until it was judged and alerted on (its verdicts are persisted next).
    last_sweep_at: datetime | None = None
    last_sweep_duration_s: float | None = None
    config: str | None = None
    started_by: str = "foreground"
    # Node checks settled, over every sweep.
    checks: int = 0
    # Failures the daemon contained and logged (a bug, or input nothing anticipated), and
    # log records it could not write (a full disk).
    errors: int = 0
    log_errors: int = 0

    def to_json(self) -> dict[str, Any]:
        """The `daemon` object of the state file."""
        return {
            "pid": self.pid,
            "started_at": self.started_at.isoformat(),
            "running": self.running,
            "interval_s": self.interval_s,
            "sweeps": self.sweeps,
            "last_sweep_at": self.last_sweep_at.isoformat() if self.last_sweep_at else None,
            "last_sweep_duration_s": self.last_sweep_duration_s,
            "config": self.config,
            "started_by": self.started_by,
            "checks": self.checks,
            "errors": self.errors,
            "log_errors": self.log_errors,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DaemonInfo:
        """Inverse of `to_json`."""
        last, duration = data.get("last_sweep_at"), data.get("last_sweep_duration_s")
        return cls(
            pid=int(data["pid"]),
            started_at=datetime.fromisoformat(data["started_at"]),
            running=bool(data["running"]),
            interval_s=number(data["interval_s"], 0),
            sweeps=int(data.get("sweeps", 0)),
            last_sweep_at=datetime.fromisoformat(last) if last else None,
            last_sweep_duration_s=None if duration is None else number(duration, 0),
            config=data.get("config"),
            started_by=str(data.get("started_by", "foreground")),
            checks=int(data.get("checks", 0)),
            errors=int(data.get("errors", 0)),
            log_errors=int(data.get("log_errors", 0)),
        )


@dataclass
class ClusterState:
    """What the state file holds."""

    nodes: dict[str, NodeVerdict] = field(default_factory=dict)
    updated_at: datetime | None = None
    stale_after_s: float = DEFAULT_STALE_AFTER_S
    daemon: DaemonInfo | None = None
    # The daemon's alert book and delivery counters, as ugro.alerts writes them.
    alerts: dict[str, Any] | None = None
    # Nodes whose entry could not be read, with why: left out of `nodes`, never written back.
    rejected: dict[str, str] = field(default_factory=dict)
    # The cluster as the last writer that knew the whole config saw it (the daemon, a full
    # `ugro check`): its node names, and the config file they came from (None: the embedded
    # default). `ugro health` shows every one of them without parsing the config itself.
    # None: written by a ugro that did not record it; the verdicts' nodes are the cluster.
    configured: tuple[str, ...] | None = None
    config: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The file's JSON document."""
        return {
            "schema_version": SCHEMA_VERSION,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
            "stale_after_s": self.stale_after_s,
            "daemon": self.daemon.to_json() if self.daemon else None,
            "alerts": self.alerts,
            "nodes": {name: v.to_json() for name, v in self.nodes.items()},
            "cluster": (
                None
                if self.configured is None
                else {"nodes": list(self.configured), "config": self.config}
            ),
        }

    @classmethod
    def from_json(cls, data: Any) -> ClusterState:  # noqa: ANN401 - whatever json.loads returned
        """Parse the document; raise ValueError/KeyError/TypeError when malformed.

        A node whose entry is malformed or absurd (a 310-digit byte count, NaN, a wrong type)
        is left out and named in `rejected`, with a warning: one node's bad data must not cost
        every reader the whole file.
        """
        if not isinstance(data, dict):
            raise TypeError("the document is not a JSON object")
        updated = data.get("updated_at")
        daemon = data.get("daemon")
        nodes, rejected = {}, {}
        for name, entry in data["nodes"].items():
            try:
                nodes[name] = NodeVerdict.from_json(entry)
            except MALFORMED as exc:
                rejected[str(name)] = f"{type(exc).__name__}: {exc}"
                log.warning("state file: node %r left out, its entry is unusable (%s)", name, exc)
        configured, config = _cluster(data.get("cluster"))
        return cls(
            nodes=nodes,
            updated_at=datetime.fromisoformat(updated) if updated else None,
            stale_after_s=number(data.get("stale_after_s", DEFAULT_STALE_AFTER_S), 0),
            daemon=DaemonInfo.from_json(daemon) if daemon else None,
            alerts=data.get("alerts"),
            rejected=rejected,
            configured=configured,
            config=config,
        )


def _cluster(data: object) -> tuple[tuple[str, ...] | None, str | None]:
    """The `cluster` object's node names and config path; (None, None) when absent or unusable.

    Unusable is not corrupt: the verdicts are still good, and the nodes they name stand in
    for the configured ones until the next full check rewrites the list (one warning).
    """
    if data is None:
        return None, None
    names = data.get("nodes") if isinstance(data, dict) else None
    config = data.get("config") if isinstance(data, dict) else None
    if (
        not isinstance(names, list)
        or not all(isinstance(n, str) for n in names)
        or not isinstance(config, str | None)
    ):
        log.warning("state file: the configured nodes' list is unusable; showing the checked ones")
        return None, None
    return tuple(names), config


class StateStore:
    """Reads and atomically rewrites one state file."""

    def __init__(self, path: Path) -> None:
        """Use the state file at `path`; nothing is touched until read or written."""
        self.path = path
        # The file as this store last wrote it (inode, mtime, size), to notice other writers,
        # and the state it holds.
        self._written: tuple[int, int, int] | None = None
        self._last: ClusterState | None = None
        # Each node's entry as last written, with the verdict it was made from.
        self._entries: dict[str, tuple[NodeVerdict, str]] = {}

    def read(self) -> ClusterState | None:
        """The current state, or None when there is none yet; never modifies the file.

        A corrupt file raises StateError: only a writer, holding the lock, moves it aside.
        """
        return self._read(repair=False)

    def _read(self, *, repair: bool) -> ClusterState | None:
        raw = atomicfile.read(self.path)
        if raw is None:
            return None
        try:
            return ClusterState.from_json(self._document(raw))
        except MALFORMED as exc:
            why = f"{type(exc).__name__}: {exc}"
            if not repair:
                raise StateError(
                    f"{self.path}: corrupt ({why}); "
                    "the next `ugro check` moves it aside and rebuilds it"
                ) from exc
            self._quarantine(why)
            return None

    def update(  # noqa: PLR0913 - every writer's say, by keyword
        self,
        verdicts: Iterable[NodeVerdict],
        *,
        keep: Iterable[str] | None = None,
        daemon: DaemonInfo | None = None,
        alerts: dict[str, Any] | None = None,
        fold: Fold | None = None,
        config: str | None = None,
    ) -> ClusterState:
        """Store new verdicts, under the writers' lock; the state as written.

        A verdict whose node has a newer one stored is left out (module docstring); `fold`
        makes what is stored from the stored verdict and the new one, under the lock.
        Nodes not in `verdicts` are kept when their name is in `keep`, dropped otherwise;
        `keep=None` keeps every node (a check of a few nodes leaves the others alone).
        `keep` is the configured cluster, and is recorded as such with the `config` it came
        from (the daemon's own, when it passes `daemon`).
        The daemon passes `daemon`, which also sets staleness to three of its intervals;
        other writers leave both as they were.
        """
        with atomicfile.locked(self.path):
            # A writer killed between creating its temp file and the rename left it behind.
            atomicfile.remove_leftovers(self.path)
            state = self._own() or self._read(repair=True) or ClusterState()
            if keep is not None:
                state.configured = tuple(sorted(keep))
                kept = set(state.configured)
                state.nodes = {n: v for n, v in state.nodes.items() if n in kept}
                state.config = config if daemon is None else daemon.config
            now = datetime.now(UTC)
            for v in verdicts:
                stored = state.nodes.get(v.name)
                if stored is not None and newer(stored, v, now):
                    continue
                state.nodes[v.name] = fold(stored, v) if fold else v
            if alerts is not None:
                state.alerts = alerts
            if daemon is not None:
                state.daemon = daemon
                state.stale_after_s = STALE_SWEEPS * daemon.interval_s
            state.updated_at = now
            self._write(state)
            self._written = signature(self.path)
            self._last = state
            return state

    def _own(self) -> ClusterState | None:
        """A copy of the state this store last wrote, while the file is still that one.

        The daemon rewrites the file several times an interval and is mostly its only writer:
        parsing back what it wrote itself was two fifths of its settling.
        """
        if self._last is None or self.changed():
            return None
        return dataclasses.replace(self._last, nodes=dict(self._last.nodes))

    def changed(self) -> bool:
        """Whether the file is not the one this store last wrote: another writer replaced it."""
        return signature(self.path) != self._written

    def _document(self, raw: bytes) -> Any:  # noqa: ANN401 - parsed JSON
        """The parsed document; ValueError when it is not one this version can read.

        Numbers no float or 64-bit integer holds, and NaN or Infinity, are read as they are:
        `ClusterState.from_json` refuses them node by node, so one node's bad entry costs
        that node, not the file.
        """
        try:
            document = json.loads(raw)
        except RecursionError as exc:
            raise ValueError("nested too deep") from exc
        version = document.get("schema_version") if isinstance(document, dict) else None
        if isinstance(version, int) and version > SCHEMA_VERSION:
            raise StateError(
                f"{self.path}: written by a newer ugro (schema {version}, this one reads "
                f"{SCHEMA_VERSION}); upgrade ugro"
            )
        if version != SCHEMA_VERSION:
            raise ValueError(f"unknown schema version {version!r}")
        return document

    def _quarantine(self, why: str) -> None:
        """Move a corrupt file aside so it can be inspected, and say so once."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        try:
            self.path.rename(aside)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StateError(
                f"{self.path}: corrupt ({why}) and cannot be moved aside: {exc.strerror}"
            ) from exc
        log.warning(
            "state file %s was corrupt (%s); moved to %s and rebuilt", self.path, why, aside
        )

    def _write(self, state: ClusterState) -> None:
        # A settle brings new verdicts for the nodes checked since the last one; every other
        # node's entry is the one written last time, which is not encoded again.
        entries = {}
        for name, verdict in state.nodes.items():
            entry = self._entries.get(name)
            if entry is None or entry[0] is not verdict:
                entry = (verdict, _json(verdict.to_json()))
            entries[name] = entry
        self._entries = entries
        document = dataclasses.replace(state, nodes={}).to_json()
        atomicfile.write(self.path, encode(document, {n: e for n, (_, e) in entries.items()}))


def encode(document: dict[str, Any], nodes: Mapping[str, str] | None = None) -> bytes:
    """The state file's bytes: a key a line, and each node on a line of its own.

    Readable and greppable by node, and written by json's C encoder: indented JSON takes the
    pure-Python one, which was a tenth of the daemon's CPU at 100 nodes every 10 s. `nodes`,
    when given, are the nodes' entries already encoded, in place of the document's own.
    """
    if nodes is None:
        nodes = {name: _json(node) for name, node in (document.get("nodes") or {}).items()}
    members = []
    for key, value in document.items():
        if key == "nodes" and nodes:
            lines = ",\n".join(f"  {_json(name)}: {entry}" for name, entry in nodes.items())
            members.append(f" {_json(key)}: {{\n{lines}\n }}")
        else:
            members.append(f" {_json(key)}: {_json(value)}")
    return ("{\n" + ",\n".join(members) + "\n}\n").encode()


def _json(value: object) -> str:
    """`value` as one line of JSON; ValueError for a number JSON has no word for (NaN)."""
    return json.dumps(value, allow_nan=False)


def newer(stored: NodeVerdict, new: NodeVerdict, now: datetime) -> bool:
    """Whether `stored` was checked after `new`, and so stays (the writers' rule).

    One dated in the future does not count: the clock was set back, and refusing every
    verdict until it catches up would leave the node stale for that long.
    """
    return new.last_check < stored.last_check <= now


def signature(path: Path) -> tuple[int, int, int] | None:
    """What tells one version of a file from another: every write is a new inode."""
    try:
        found = path.stat()
    except OSError:
        return None
    return found.st_ino, found.st_mtime_ns, found.st_size
