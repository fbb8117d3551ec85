"""The disk check's command and verdicts, fed captured `df -P -k` output."""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

import pytest

from conftest import fixture_text
from ugro.checks import disk
from ugro.config import Worker
from ugro.model import CommandResult, Status

if TYPE_CHECKING:
    from pathlib import Path


def node(*paths: str, **settings: object) -> Worker:
    """A worker watching `paths` (default /)."""
    return Worker.model_validate(
        {"name": "n1", "ip": "127.0.0.1", "disk_paths": list(paths or ["/"]), **settings}
    )


def df(name: str, exit_status: int = 0) -> CommandResult:
    """The command's result with a captured output."""
    return CommandResult(exit_status, fixture_text("df", name))


def test_all_paths_with_room_are_ok() -> None:
    """Two roomy paths pass; the value is the least free space in GB."""
    result = disk.CHECK.evaluate(df("healthy-two-paths.txt"), node("/", "/scratch"))
    assert result.status is Status.OK
    assert result.value == pytest.approx(530736812 * 1024 / 1e9)
    assert result.unit == "GB"
    assert result.message == "free: / 543 GB, /scratch 6400 GB"


def test_full_path_fails_naming_it() -> None:
    """A path below min_disk_gb fails, naming the path and the free space."""
    result = disk.CHECK.evaluate(df("scratch-full.txt", 0), node("/", "/scratch"))
    assert result.status is Status.FAIL
    assert "/scratch: 2.0 GB free, below 10 GB" in result.message
    assert "/:" not in result.message


def test_missing_path_fails_with_dfs_reason() -> None:
    """A path that does not exist fails with df's own reason."""
    result = disk.CHECK.evaluate(df("missing-path.txt", 1), node("/", "/data"))
    assert result.status is Status.FAIL
    assert "/data: /data: No such file or directory" in result.message


def test_stale_nfs_fails() -> None:
    """A stale NFS handle fails with df's reason."""
    result = disk.CHECK.evaluate(df("nfs-stale.txt", 1), node("/shared"))
    assert result.status is Status.FAIL
    assert "Stale file handle" in result.message


def test_spaces_in_filesystem_and_mount() -> None:
    """Filesystem names and mount points with spaces parse."""
    result = disk.CHECK.evaluate(df("spaces-in-names.txt"), node("/mnt/my data"))
    assert result.status is Status.OK
    assert result.disks[0].mount == "/mnt/my data"
    assert result.disks[0].total_bytes == 1953125000 * 1024


def test_truncated_output_is_not_a_pass() -> None:
    """Output cut short fails for the path, saying so, instead of passing."""
    result = disk.CHECK.evaluate(df("truncated.txt"), node("/"))
    assert result.status is Status.FAIL
    assert "cut short" in result.message


def test_no_output_is_unknown() -> None:
    """No answer at all for a path is unknown."""
    result = disk.CHECK.evaluate(CommandResult(0, ""), node("/"))
    assert result.status is Status.UNKNOWN


def test_threshold_is_configurable() -> None:
    """min_disk_gb decides: 543 GB free fails a 1000 GB minimum."""
    result = disk.CHECK.evaluate(
        df("healthy-two-paths.txt"), node("/", "/scratch", min_disk_gb=1000)
    )
    assert result.status is Status.FAIL


def test_hostile_path_reaches_df_as_data(tmp_path: Path) -> None:
    """A path full of shell metacharacters is passed to df verbatim and runs nothing."""
    marks = [tmp_path / "pwned1", tmp_path / "pwned2"]
    hostile = f"/nonexistent/a b;touch {marks[0]};$(touch {marks[1]})`id`'\"'"
    command = disk.CHECK.command(node(hostile))
    done = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, check=False)
    result = disk.CHECK.evaluate(
        CommandResult(done.returncode, done.stdout, done.stderr), node(hostile)
    )
    assert result.status is Status.FAIL
    assert hostile in result.message
    assert not any(mark.exists() for mark in marks)
