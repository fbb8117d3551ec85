"""The daemon's log: where it goes, and what it says about each sweep.

One line per status change, per check awaiting confirmation, per backoff, per alert and per
sweep: enough to follow a node's story in the journal without the history database. One event
is one line, whatever a node sent: every handler formats with `ugro.text.LineFormatter`.

A log that cannot be written (a full disk) never stops the daemon nor floods stderr: its
handlers count what they could not write and say so once, in one line.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from ugro import paths
from ugro.errors import UgroError
from ugro.model import BAD_STATUSES
from ugro.store import atomicfile
from ugro.text import LineFormatter

if TYPE_CHECKING:
    import io
    from collections.abc import Iterable, Mapping, Sequence

    from ugro.alerts.book import AlertEvent
    from ugro.config import MonitorSettings
    from ugro.model import NodeVerdict
    from ugro.verdict.hysteresis import Step

log = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"
# Tracebacks of contained failures go to this logger: to the log file, not to stderr.
TRACEBACKS = "ugro.traceback"


class _Failures:
    """Log records the handlers could not write, counted; the first one said on stderr."""

    count = 0

    @classmethod
    def record(cls, handler: logging.Handler) -> None:
        cls.count += 1
        if cls.count > 1:
            return
        exc = sys.exc_info()[1]
        where = getattr(handler, "baseFilename", "stderr")
        # The one line this costs; stderr may be the very file that is full.
        try:  # noqa: SIM105 - contextlib would be imported for this one line
            sys.stderr.write(
                f"ugro: cannot write the log ({where}): {exc}; "
                "further log errors are counted (`ugro daemon status`), not shown\n"
            )
        except Exception:  # noqa: BLE001, S110 - nowhere left to say it
            pass


def _private(path: str, flags: int) -> int:
    """Open the log file 0600, never through a symbolic link (an `open` opener)."""
    return atomicfile.open_private(Path(path), flags)


class _QuietFile(logging.handlers.RotatingFileHandler):
    """The log file; a record it cannot write is counted, never a traceback on stderr."""

    def _open(self) -> io.TextIOWrapper:
        """Open the file as `logging` would, but 0600 and not through a symbolic link."""
        # Appending, as a rotating handler always does.
        return open(self.baseFilename, "a", encoding=self.encoding, opener=_private)

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        """Count the failure (`log_errors`) instead of printing it."""
        del record
        _Failures.record(self)


class _QuietStream(logging.StreamHandler[TextIO]):
    """Stderr (the journal); a record it cannot write is counted, never a traceback."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        """Count the failure (`log_errors`) instead of printing it."""
        del record
        _Failures.record(self)


def _no_traceback(record: logging.LogRecord) -> bool:
    """Whether stderr takes `record`: not the tracebacks, which the log file keeps."""
    return not record.name.startswith(TRACEBACKS)


def failures() -> int:
    """How many log records could not be written since logging was set up."""
    return _Failures.count


def setup_logging(settings: MonitorSettings, log_file: Path | None, *, to_stderr: bool) -> Path:
    """Log to a size-rotated file and, unless told otherwise, to stderr (the journal)."""
    path = log_file or (
        Path(settings.log_file).expanduser() if settings.log_file else paths.log_file()
    )
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        handler: logging.Handler = _QuietFile(
            path,
            maxBytes=settings.log_max_bytes,
            backupCount=settings.log_backups,
            encoding="utf-8",
        )
    except OSError as exc:
        raise UgroError(f"cannot open the log file {path}: {exc.strerror}") from exc
    handlers = [handler]
    if to_stderr:
        stderr = _QuietStream()
        stderr.addFilter(_no_traceback)
        handlers.append(stderr)
    root = logging.getLogger("ugro")
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    for h in handlers:
        h.setFormatter(LineFormatter(LOG_FORMAT))
        root.addHandler(h)
    root.setLevel(settings.log_level.upper())
    root.propagate = False
    _Failures.count = 0
    return path


def step(done: Step, policy: MonitorSettings) -> None:
    """Log what hysteresis made of a node's check: a change, a confirmation due, a backoff."""
    verdict = done.verdict
    tracking = verdict.tracking
    if tracking is None:
        return
    if done.changed:
        level = logging.WARNING if verdict.status in BAD_STATUSES else logging.INFO
        log.log(
            level,
            "%s: %s -> %s (%s)",
            verdict.name,
            done.before.value,
            verdict.status.value,
            done.reason,
        )
    if done.pending:
        streak = tracking.fail_streak or tracking.pass_streak
        needed = policy.fail_after if tracking.fail_streak else policy.recover_after
        log.info(
            "%s: observed %s (%d of %d), confirming in %g s (%s)",
            verdict.name,
            tracking.observed.value,
            streak,
            needed,
            done.delay_s,
            done.reason,
        )
    elif tracking.unreachable_streak >= policy.backoff_after:
        log.info(
            "%s: unreachable %d times in a row; next try in %g s",
            verdict.name,
            tracking.unreachable_streak,
            done.delay_s,
        )


def alerts(events: Sequence[AlertEvent]) -> None:
    """Log each alert event: a resolution as information, the others as warnings."""
    for event in events:
        level = logging.INFO if event.kind == "resolved" else logging.WARNING
        log.log(level, "alert %s: %s", event.kind, event.title())


def summary(shown: Mapping[str, NodeVerdict], nodes: Iterable[str]) -> str:
    """How many of `nodes` show each status ("healthy 4, unhealthy 1")."""
    counts = Counter(shown[n].status.value for n in nodes if n in shown)
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))


def sweep(number: int, nodes: int, duration_s: float, cluster: str) -> None:
    """Log the end of a sweep: how many nodes it checked, how long it took, the cluster now."""
    log.info(
        "sweep %d: %d node%s in %.2f s; cluster: %s",
        number,
        nodes,
        "" if nodes == 1 else "s",
        duration_s,
        cluster,
    )
