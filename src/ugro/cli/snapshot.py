"""What `ugro health` shows: every configured node as of now, from the state file.

The configured nodes come from the state file, which the daemon and a full `ugro check`
write with the config's node names; the config itself is read only when one is named
(`--config` or `$UGRO_CONFIG`), so a plain `ugro health` parses no YAML and stays instant
(DESIGN §1: "no config parsing beyond what it must show").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ugro.model import NodeStatus
from ugro.verdict.rows import Row, cluster_rows, findings

if TYPE_CHECKING:
    from pathlib import Path

    from ugro.verdict import drift

#: The footer's word for a cluster with no config file (the embedded default).
NO_CONFIG = "none (this machine alone)"


@dataclass(frozen=True)
class Snapshot:
    """The cluster as `ugro health` shows it now."""

    rows: list[Row]
    now: datetime
    # Where the nodes and their verdicts came from, for the footer.
    config: str
    state: Path
    notes: list[str] = field(default_factory=list)
    found: list[drift.Finding] = field(default_factory=list)
    # Nothing to show: no verdict, and no configured node known either.
    empty: bool = False

    @property
    def sources(self) -> str:
        """The footer's line naming the files: "config: …; state: …"."""
        return f"config: {self.config}; state: {self.state}"


def take(config_path: Path | None) -> Snapshot:
    """Read the state (and the config, when one is named) and judge every node as of now.

    Raises StateError when the state file cannot be read, ConfigError when the named config
    cannot (a missing file: "no such file").
    """
    from ugro import paths
    from ugro.cli.app import cordon_store, state_store

    state = state_store().read()
    now = datetime.now(UTC)
    configured: tuple[str, ...] | list[str] | None
    _, named = paths.resolve_config(config_path)
    if named:
        from ugro import config

        cfg = config.load(config_path)
        configured, source = [n.name for n in cfg.nodes], str(cfg.source)
    elif state is not None and state.configured is not None:
        configured, source = state.configured, state.config or NO_CONFIG
    else:
        configured, source = None, "not recorded yet (the next `ugro check` records it)"
    store_path = paths.state_file()
    if (state is None or not state.nodes) and not configured:
        return Snapshot([], now, source, store_path, empty=True)
    verdicts = state.nodes if state else {}
    daemon = state.daemon if state else None
    rows = cluster_rows(
        verdicts,
        configured,
        now,
        stale_after_s=state.stale_after_s if state else None,
        interval_s=daemon.interval_s if daemon else None,
        cordons=cordon_store().read(),
    )
    notes = []
    if any(r.status is NodeStatus.STALE for r in rows):
        # The daemon's own module, and psutil with it, only when there is something to explain.
        from ugro.daemon.service import stale_note

        notes.append(stale_note(daemon, now))
    return Snapshot(rows, now, source, store_path, notes, findings(rows))
