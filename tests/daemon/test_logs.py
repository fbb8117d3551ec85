"""The daemon's log handlers when nothing can be written: counted, said once, no tracebacks.

`/dev/full` fails every write with ENOSPC, as a full disk does; the real full filesystem
(a tmpfs) is in the daemon's integration tests.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ugro.config import MonitorSettings
from ugro.daemon import containment, logs

if TYPE_CHECKING:
    from collections.abc import Iterator

FULL = Path("/dev/full")


@pytest.fixture(autouse=True)
def ugro_logger() -> Iterator[logging.Logger]:
    """The `ugro` logger, restored after the test reconfigured it."""
    logger = logging.getLogger("ugro")
    saved = (list(logger.handlers), logger.propagate, logger.level)
    yield logger
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        # Closing flushes what /dev/full refused once more, or a stream the test closed.
        with contextlib.suppress(OSError, ValueError):
            handler.close()
    logger.handlers[:], logger.propagate, logger.level = saved[0], saved[1], saved[2]


def test_a_full_log_file_is_counted_and_said_once(capsys: pytest.CaptureFixture[str]) -> None:
    """Every record the log file refuses is counted; stderr gets one short line, no traceback."""
    logs.setup_logging(MonitorSettings(), FULL, to_stderr=True)
    log = logging.getLogger("ugro.daemon.test")

    for i in range(20):
        log.warning("record %d", i)

    assert logs.failures() == 20
    err = capsys.readouterr().err
    said = [line for line in err.splitlines() if line.startswith("ugro: cannot write the log")]
    assert said == [
        (
            f"ugro: cannot write the log ({FULL}): [Errno 28] No space left on device; "
            "further log errors are counted (`ugro daemon status`), not shown"
        )
    ]
    assert "Logging error" not in err
    assert "Traceback" not in err
    assert "record 19" in err, "stderr still carries the log"


def test_stderr_on_the_full_disk_too_is_silent(monkeypatch: pytest.MonkeyPatch) -> None:
    """With stderr itself full (`daemon start` sends it to the log), nothing raises or loops."""
    # Unbuffered: each write fails at once, and closing has nothing left to fail on.
    with io.TextIOWrapper(FULL.open("wb", buffering=0), write_through=True) as full:
        monkeypatch.setattr("sys.stderr", full)
        logs.setup_logging(MonitorSettings(), FULL, to_stderr=True)
        for i in range(5):
            logging.getLogger("ugro.daemon.test").error("record %d", i)
        # Both handlers fail every record.
        assert logs.failures() == 10


def test_a_contained_traceback_goes_to_the_file_not_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A contained failure: one line on stderr, the traceback in the log file, once per kind."""
    path = tmp_path / "monitor.log"
    logs.setup_logging(MonitorSettings(), path, to_stderr=True)
    errors = containment.Errors()

    empty: dict[str, int] = {}
    for node in ("n1", "n2"):
        try:
            empty["missing"]
        except KeyError as exc:
            errors.contain("judging", exc, node)

    assert errors.count == 2
    err = capsys.readouterr().err
    assert "judging n1 failed: KeyError: 'missing' (a bug in ugro: please report it)" in err
    assert "judging n2 failed" in err
    assert "Traceback" not in err
    text = path.read_text(encoding="utf-8")
    assert text.count("Traceback (most recent call last)") == 1, text
    assert "judging n1 failed; the first such failure:" in text
