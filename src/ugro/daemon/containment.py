"""Containment: whatever fails while the daemon handles one node is logged, counted, survived.

The daemon stops only on a signal or a config it cannot start with (DESIGN §10). A step that
raises anyway (a bug in ugro, or input nothing anticipated) becomes one line in the log and
the journal, its traceback in the log file (the first time that failure is seen), and one
more in the state file's `daemon.errors` (`ugro_daemon_errors_total`); monitoring goes on.
A node whose check itself failed that way gets an `unknown` verdict that says so.
"""

from __future__ import annotations

import logging
import traceback
from typing import TYPE_CHECKING

from ugro.daemon.logs import TRACEBACKS
from ugro.model import Alert, CheckResult, NodeStatus, NodeVerdict, Status

if TYPE_CHECKING:
    from datetime import datetime

    from ugro.config import Worker

log = logging.getLogger(__name__)
tracebacks = logging.getLogger(TRACEBACKS)


def describe(exc: BaseException) -> str:
    """`Type: message`, even for an exception whose own `__str__` is what is broken."""
    try:
        said = str(exc)
    except Exception:  # noqa: BLE001 - the message is a courtesy; the type is enough
        said = ""
    return f"{type(exc).__name__}: {said}" if said else type(exc).__name__


class Errors:
    """The failures the daemon contained: counted, and each kind's traceback logged once."""

    def __init__(self) -> None:
        """Start with none."""
        self.count = 0
        self._seen: set[tuple[str, str, str]] = set()

    def contain(self, step: str, exc: BaseException, node: str | None = None) -> None:
        """Log and count `exc`, raised while the daemon was `step` (for `node`, if one)."""
        self.count += 1
        what = f"{step} {node}" if node else step
        log.error("%s failed: %s (a bug in ugro: please report it)", what, describe(exc))
        frames = traceback.extract_tb(exc.__traceback__)
        origin = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else ""
        kind = (step, type(exc).__name__, origin)
        if kind not in self._seen:
            self._seen.add(kind)
            tracebacks.error("%s failed; the first such failure:", what, exc_info=exc)


def unchecked(node: Worker, when: datetime, exc: BaseException) -> NodeVerdict:
    """The verdict of a node ugro itself failed to check: `unknown`, every check saying why."""
    why = f"ugro failed checking the node ({describe(exc)}); see the daemon's log"
    return NodeVerdict(
        name=node.name,
        address=node.ip if node.transport == "ssh" else "local",
        status=NodeStatus.UNKNOWN,
        health_score=0.0,
        pass_rate=0.0,
        last_check=when,
        checks=tuple(CheckResult(name, Status.UNKNOWN, why) for name in node.checks),
        alerts=(Alert("warning", why),),
    )
