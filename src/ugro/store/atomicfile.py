"""Files several processes rewrite: an exclusive lock, and replacement by rename.

A reader never sees a partial file: the new content goes to a temp file in the same
directory, is fsynced and renamed over the old one, and the directory is fsynced so the
rename survives a crash.

Every file ugro keeps is its own user's: created 0600 in 0700 directories, and never opened
through a symbolic link, which in a shared `$UGRO_HOME` someone else could have planted
(renaming over a link replaces the link, never its target).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ugro.errors import NotWritten, StateError

if TYPE_CHECKING:
    from collections.abc import Iterator


# A temp file this old is a killed writer's: no live writer takes a minute to write and rename.
LEFTOVER_AGE_S = 60.0


def link_refused(path: Path) -> StateError:
    """The error for a symbolic link found where ugro keeps one of its own files."""
    return StateError(
        f"{path} is a symbolic link, which ugro did not create and does not follow (in a "
        "shared directory someone may have planted it): remove it, and check who can write "
        "to that directory"
    )


def open_private(path: Path, flags: int) -> int:
    """A descriptor on `path` for ugro's own file: created 0600, never through a link.

    StateError when `path` is a symbolic link; other OSErrors as they are.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        return os.open(path, flags | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise link_refused(path) from exc
        raise


def refuse_link(path: Path) -> None:
    """StateError when `path` is a symbolic link (for files a library opens by name)."""
    if path.is_symlink():
        raise link_refused(path)


def read(path: Path) -> bytes | None:
    """The file's bytes; None when there is no file; StateError when it cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise link_refused(path) from exc
        raise StateError(f"{path}: cannot read: {exc.strerror}") from exc


def write(path: Path, data: bytes) -> None:
    """Replace `path` with `data`, mode 0600; NotWritten, and no temp file left, on failure.

    StateError when `path` is a symbolic link.
    """
    # Here, not at the top: tempfile brings shutil, random and the compressors, which a
    # reader (`ugro health`) never needs.
    import tempfile

    refuse_link(path)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _remove_old_leftovers(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise NotWritten(f"{path}: cannot write: {exc.strerror}") from exc
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
        raise NotWritten(f"{path}: cannot write: {exc.strerror}") from exc
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def remove_leftovers(path: Path) -> None:
    """Delete temp files a writer killed before its rename left next to `path`."""
    for leftover in path.parent.glob(f".{path.name}.*.tmp"):
        leftover.unlink(missing_ok=True)


def _remove_old_leftovers(path: Path) -> None:
    """Delete a killed writer's temp files, sparing those a live writer may still rename."""
    cutoff = time.time() - LEFTOVER_AGE_S
    for leftover in path.parent.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(OSError):
            if leftover.lstat().st_mtime < cutoff:
                leftover.unlink()


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the exclusive lock that guards `path` (a `.lock` file beside it).

    NotWritten when the lock file cannot be created or opened: nothing can be written then.
    """
    lock = path.with_name(path.name + ".lock")
    try:
        fd = open_private(lock, os.O_WRONLY | os.O_APPEND)
    except OSError as exc:
        raise NotWritten(f"{lock}: cannot lock: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
