"""The daemon's pid file: locked for as long as the daemon runs, so a second one refuses.

The lock, not the file's existence, says whether a daemon runs: a file left by a killed
daemon is unlocked, and its pid may by now belong to another program.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from typing import TYPE_CHECKING, TextIO

from ugro.errors import UgroError
from ugro.store import atomicfile

if TYPE_CHECKING:
    from pathlib import Path


class AlreadyRunning(UgroError):
    """Another daemon holds the pid file's lock."""


class PidLock:
    """Holds the pid file's lock and the daemon's pid in it."""

    def __init__(self, path: Path) -> None:
        """Use the pid file at `path`; nothing happens until `acquire`."""
        self.path = path
        self._handle: TextIO | None = None

    def acquire(self, patience_s: float = 1.0) -> None:
        """Lock the file and write our pid; raise AlreadyRunning if another daemon holds it.

        A reader (`ugro daemon status`) may hold the lock for an instant while it removes a
        stale file, hence the short patience.
        """
        deadline = time.monotonic() + patience_s
        handle = _open(self.path)
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > deadline:
                    handle.close()
                    pid = read_pid(self.path)
                    raise AlreadyRunning(
                        f"a ugro daemon is already running (pid {pid or '?'}, pid file "
                        f"{self.path}); stop it with `ugro daemon stop`"
                    ) from exc
                time.sleep(0.05)
                continue
            # A stale-file cleaner may have unlinked the file we opened while we waited:
            # the lock then guards nothing, so start again on the file now at the path.
            if _same_file(handle, self.path):
                break
            handle.close()
            handle = _open(self.path)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        os.fsync(handle.fileno())
        self._handle = handle

    def release(self) -> None:
        """Remove the file and drop the lock."""
        if self._handle is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._handle.close()
        self._handle = None


def _open(path: Path) -> TextIO:
    """The pid file, created 0600; StateError when a symbolic link stands in its place."""
    return os.fdopen(atomicfile.open_private(path, os.O_RDWR), "r+", encoding="ascii")


def _same_file(handle: TextIO, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(handle.fileno()), path.stat())
    except FileNotFoundError:
        return False


def read_pid(path: Path) -> int | None:
    """The pid in the file, or None when there is no file or no number in it."""
    try:
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), encoding="ascii") as handle:
            text = handle.read().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def remove_if_stale(path: Path) -> bool:
    """Remove the pid file when no daemon holds its lock; True when it was removed.

    A symbolic link in its place is not ours to lock nor to remove: it stays, and the next
    daemon refuses to start over it.
    """
    try:
        handle = os.fdopen(os.open(path, os.O_RDWR | os.O_NOFOLLOW), "r+", encoding="ascii")
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ELOOP):
            return False
        raise
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        path.unlink(missing_ok=True)
        return True
