"""`ugro daemon run` with a Scheduler that records its calls, for the recovery tests.

Run as `python tests/recording_scheduler.py CONFIG RECORD`: every drain and resume is appended
to RECORD as a JSON line. Nodes named in $UGRO_TEST_REFUSE (comma-separated) have their drain
refused with a SchedulerError, as a scheduler that does not know them would, as many times as
$UGRO_TEST_REFUSALS says (default: always). $UGRO_TEST_SCHEDULER_RETRY_S shortens the wait
before a refused call is tried again.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ugro.daemon import loop as daemon
from ugro.errors import SchedulerError
from ugro.recovery import cordoning


class RecordingScheduler:
    """A Scheduler (ugro.recovery.scheduler) that writes down what it is told."""

    name = "recorder"

    def __init__(self, record: Path) -> None:
        """Append calls to `record`."""
        self.record = record
        self.refuse = set(filter(None, os.environ.get("UGRO_TEST_REFUSE", "").split(",")))
        self.refusals = int(os.environ.get("UGRO_TEST_REFUSALS", "-1"))

    def _write(self, entry: dict[str, str]) -> None:
        with self.record.open("a", encoding="utf-8") as out:
            out.write(json.dumps(entry) + "\n")

    def drain(self, node: str, reason: str) -> None:
        """Record the drain, or refuse it."""
        self._write({"call": "drain", "node": node, "reason": reason})
        if node in self.refuse and self.refusals != 0:
            self.refusals -= 1
            raise SchedulerError(f"node {node} is not known to the recorder")

    def resume(self, node: str) -> bool:
        """Record the resume."""
        self._write({"call": "resume", "node": node})
        return True


class Recorder:
    """A Scheduler that records its calls in memory and refuses some nodes, for in-process tests."""

    name = "recorder"

    def __init__(self, refuse: frozenset[str] = frozenset(), *, ours: bool = True) -> None:
        """Refuse drains and resumes of `refuse`; `ours=False`: the drains are not ugro's."""
        self.calls: list[tuple[str, ...]] = []
        self.refuse = refuse
        self.ours = ours

    def drain(self, node: str, reason: str) -> None:
        """Record; refuse the nodes in `refuse`."""
        self.calls.append(("drain", node, reason))
        if node in self.refuse:
            raise SchedulerError(f"Invalid node name specified: {node}")

    def resume(self, node: str) -> bool:
        """Record; refuse the nodes in `refuse`."""
        self.calls.append(("resume", node))
        if node in self.refuse:
            raise SchedulerError(f"Invalid node name specified: {node}")
        return self.ours


def calls(record: Path) -> list[dict[str, str]]:
    """What the scheduler was told so far."""
    try:
        text = record.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines()]


if __name__ == "__main__":
    config, record = Path(sys.argv[1]), Path(sys.argv[2])
    if "UGRO_TEST_SCHEDULER_RETRY_S" in os.environ:
        cordoning.SCHEDULER_RETRY_S = float(os.environ["UGRO_TEST_SCHEDULER_RETRY_S"])
    sys.exit(
        daemon.run(config, log_file=None, to_stderr=True, scheduler=RecordingScheduler(record))
    )
