"""Files several processes rewrite: an exclusive lock, and replacement by rename.

A reader never sees a partial file: the new content goes to a temp file in the same
directory, is fsynced and renamed over the old one, and the directory is fsynced so the
rename survives a crash.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ugro.errors import StateError

if TYPE_CHECKING:
    from collections.abc import Iterator


def read(path: Path) -> bytes | None:
    """The file's bytes; None when there is no file; StateError when it cannot be read."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"{path}: cannot read: {exc.strerror}") from exc


def write(path: Path, data: bytes) -> None:
    """Replace `path` with `data`, mode 0600; StateError, and no temp file left, on failure."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise StateError(f"{path}: cannot write: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            Path(tmp).unlink()
        raise StateError(f"{path}: cannot write: {exc.strerror}") from exc
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def remove_leftovers(path: Path) -> None:
    """Delete temp files a writer killed before its rename left next to `path`."""
    for leftover in path.parent.glob(f".{path.name}.*.tmp"):
        leftover.unlink(missing_ok=True)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the exclusive lock that guards `path` (a `.lock` file beside it)."""
    lock = path.with_name(path.name + ".lock")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        handle = lock.open("a")
    except OSError as exc:
        raise StateError(f"{lock}: cannot lock: {exc.strerror}") from exc
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
