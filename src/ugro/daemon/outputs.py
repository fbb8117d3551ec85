"""Where a settled sweep goes besides the state file: the history and the alert sinks.

Built from the config when the daemon starts or reloads; neither can stop monitoring.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ugro import paths
from ugro.alerts import sinks
from ugro.alerts.delivery import Dispatcher
from ugro.errors import UgroError
from ugro.store.history import History, path_for

if TYPE_CHECKING:
    from ugro.config import Config
    from ugro.store.history_records import Sample, Transition

log = logging.getLogger(__name__)


def history(cfg: Config) -> History | None:
    """The history database, or None when it is off or cannot be used: monitoring goes on."""
    if not cfg.history.enabled:
        return None
    try:
        return History(path_for(cfg.history))
    except UgroError as exc:
        log.error("monitoring without a history: %s", exc)  # noqa: TRY400 - the message is complete
        return None


def record_each(
    history: History, samples: list[Sample], changes: list[Transition]
) -> list[tuple[str, Exception]]:
    """Record each node's sample and changes on its own; the nodes that failed, and why."""
    failed = []
    for sample in samples:
        name = sample.verdict.name
        try:
            history.record([sample], [t for t in changes if t.node == name])
        except Exception as exc:  # noqa: BLE001 - reported by the caller, node by node
            failed.append((name, exc))
    return failed


def dispatcher(cfg: Config) -> Dispatcher:
    """Delivery to the configured sinks; a sink that cannot be built stops the start.

    Each sink's outbox lies beside the state file, so a restart delivers what a stop left.
    """
    return Dispatcher(
        [(settings, sinks.build(settings)) for settings in cfg.alerts.sinks],
        outbox_dir=paths.state_file().parent,
    )
