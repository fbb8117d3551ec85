"""Writes that fail for a while (a full disk): said once when they start failing, once when not.

A daemon on a full state disk goes on monitoring; a log line every sweep would only fill the
log (often on that same disk) and bury the one line that says what is wrong.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


class WriteEpisode:
    """One file the daemon writes every sweep, and whether its writes are failing now."""

    def __init__(self, what: str) -> None:
        """Say `what` is written ("the state", "the history") in the log lines."""
        self.what = what
        # Failed writes since the last one that succeeded: 0 while writes succeed.
        self.failures = 0

    def failed(self, reason: object) -> None:
        """A write failed: the log says so when it is the first since one succeeded."""
        if not self.failures:
            log.error("cannot write %s: %s (monitoring goes on)", self.what, reason)
        self.failures += 1

    def written(self) -> None:
        """A write succeeded: the log says so when writes were failing."""
        if self.failures:
            log.warning("%s is written again, after %d failed writes", self.what, self.failures)
        self.failures = 0
