"""Every file ugro creates is 0600 in a 0700 directory, and none is opened through a link."""

from __future__ import annotations

import logging
import os
import stat
import time
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner

from ugro import paths
from ugro.cli import main
from ugro.config import MonitorSettings
from ugro.daemon.logs import setup_logging
from ugro.daemon.pidfile import PidLock, remove_if_stale
from ugro.errors import StateError, UgroError
from ugro.store import atomicfile
from ugro.store.cordons import CordonStore
from ugro.store.history import History

if TYPE_CHECKING:
    from pathlib import Path

PLANTED = "the file a planted link points at\n"


def mode(path: Path) -> int:
    """The permission bits of `path` itself."""
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture(autouse=True)
def home(isolated_home: Path) -> Path:
    """A fresh UGRO_HOME, as a 0700 directory."""
    isolated_home.mkdir(mode=0o700)
    return isolated_home


@pytest.fixture
def target(tmp_path: Path) -> Path:
    """A file someone wants ugro to overwrite through a link."""
    victim = tmp_path / "victim"
    victim.write_text(PLANTED)
    return victim


def plant(link: Path, target: Path) -> None:
    """Put a symbolic link to `target` where ugro keeps `link`."""
    link.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    link.symlink_to(target)


def test_init_writes_the_config_0600() -> None:
    """`ugro init` writes cluster.yaml, which will hold tokens, readable by its owner only."""
    ran = CliRunner().invoke(main, ["init"])
    assert ran.exit_code == 0, ran.output
    assert mode(paths.config_file()) == 0o600


def test_atomic_writes_and_locks_are_0600_in_0700(tmp_path: Path) -> None:
    """A replaced file, its lock and a directory made for them are the owner's only."""
    path = tmp_path / "new" / "cordons.json"
    with atomicfile.locked(path):
        atomicfile.write(path, b"{}")
    assert mode(path) == 0o600
    assert mode(path.with_name("cordons.json.lock")) == 0o600
    assert mode(path.parent) == 0o700


def test_pid_history_and_log_are_0600() -> None:
    """The pid file, the history database and the log are created 0600."""
    lock = PidLock(paths.pid_file())
    lock.acquire()
    try:
        assert mode(paths.pid_file()) == 0o600
    finally:
        lock.release()
    History(paths.history_file()).close()
    assert mode(paths.history_file()) == 0o600
    setup_logging(MonitorSettings(), None, to_stderr=False)
    try:
        assert mode(paths.log_file()) == 0o600
    finally:
        for handler in logging.getLogger("ugro").handlers:
            handler.close()


def test_a_planted_pid_link_is_refused(target: Path) -> None:
    """A daemon.pid link stops the daemon with a clear error; its target stays as it was."""
    plant(paths.pid_file(), target)
    with pytest.raises(StateError, match="is a symbolic link"):
        PidLock(paths.pid_file()).acquire()
    assert not remove_if_stale(paths.pid_file())
    assert paths.pid_file().is_symlink()
    assert target.read_text() == PLANTED


def test_a_planted_cordons_link_is_refused(target: Path) -> None:
    """A cordons.json link is neither read nor written through."""
    plant(paths.cordons_file(), target)
    with pytest.raises(StateError, match="is a symbolic link"):
        CordonStore().read()
    with pytest.raises(StateError, match="is a symbolic link"):
        atomicfile.write(paths.cordons_file(), b"{}")
    assert target.read_text() == PLANTED


def test_a_planted_history_link_is_refused(target: Path) -> None:
    """A history.db link is not opened by SQLite; its target stays as it was."""
    plant(paths.history_file(), target)
    with pytest.raises(UgroError, match="is a symbolic link"):
        History(paths.history_file())
    assert target.read_text() == PLANTED


def test_a_planted_log_link_is_refused(target: Path) -> None:
    """A monitor.log link is not appended to."""
    plant(paths.log_file(), target)
    with pytest.raises(UgroError, match="is a symbolic link"):
        setup_logging(MonitorSettings(), None, to_stderr=False)
    assert target.read_text() == PLANTED


def test_every_writer_cleans_a_killed_writers_temp_files(tmp_path: Path) -> None:
    """A temp file older than a minute goes on the next write; a live writer's stays."""
    path = tmp_path / "cordons.json"
    old = tmp_path / ".cordons.json.abc123.tmp"
    fresh = tmp_path / ".cordons.json.def456.tmp"
    old.write_bytes(b"partial")
    fresh.write_bytes(b"being written")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    atomicfile.write(path, b"{}")
    assert not old.exists()
    assert fresh.exists()
