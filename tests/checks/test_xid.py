"""The xid check: its window, its command, and its verdicts on captured kernel logs."""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from conftest import STUBS, fixture_text
from gpuhealth import node
from ugro.checks import Context, gpuquery, xid
from ugro.model import CommandResult, Status

if TYPE_CHECKING:
    from pathlib import Path

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
A100_ROWS = gpuquery.parse(fixture_text("nvidia-smi", "health-8xa100.csv"))
RTX_ROWS = gpuquery.parse(fixture_text("nvidia-smi", "health-2x4090.csv"))


def log(name: str) -> CommandResult:
    """The xid command's output, captured."""
    return CommandResult(0, fixture_text("kernel-log", name))


def test_first_check_reads_the_whole_lookback() -> None:
    """No previous check: the window is xid_lookback_s."""
    assert xid.window_s(node(), Context(started=NOW)) == 3600
    assert xid.window_s(node(xid_lookback_s=600), Context(started=NOW)) == 600


def test_window_moves_with_the_previous_check() -> None:
    """Since the previous check (plus slack), no less than the hold, no more than the lookback."""
    recent = Context(NOW - timedelta(seconds=30), NOW)
    assert xid.window_s(node(xid_hold_s=0), recent) == 30 + xid.SLACK_S
    assert xid.window_s(node(), recent) == 600
    long_ago = Context(NOW - timedelta(days=7), NOW)
    assert xid.window_s(node(), long_ago) == 3600


def test_command_takes_only_the_window() -> None:
    """The window reaches the node as an int in an arithmetic expansion, nothing else."""
    command = xid.command(42)
    assert "--since=@$((now - 42))" in command
    assert "dmesg" in command
    assert "journalctl -k -o short-unix" in command


def test_command_runs_in_a_posix_shell() -> None:
    """The command is valid sh and reports the clock, uptime and source even with no Xid."""
    done = subprocess.run(
        ["/bin/sh", "-c", xid.command(60)], capture_output=True, text=True, check=False, timeout=30
    )
    assert done.returncode == 0, done.stderr
    parsed = xid.parse_log(done.stdout)
    assert parsed.now > 0
    assert parsed.source in {"dmesg", "journal", None}


@pytest.mark.parametrize(
    ("fixture", "rows", "status", "phrases"),
    [
        (
            "dmesg-xid79.txt",
            RTX_ROWS,
            Status.FAIL,
            [
                (
                    "Xid 79 (GPU has fallen off the bus) on GPU 1 (00000000:41:00.0) at "
                    "2025-11-28 16:53:19 UTC: reboot the node"
                ),
            ],
        ),
        (
            "dmesg-xid79.txt",
            (),
            Status.FAIL,
            ["Xid 79 (GPU has fallen off the bus) on PCI:0000:41:00 at"],
        ),
        (
            "dmesg-ecc-mig.txt",
            A100_ROWS,
            Status.FAIL,
            [
                "Xid 94 (contained ECC error) on GPU 3 (00000000:4E:00.0)",
                "Xid 63 ×2 (ECC page retirement or row remapping recorded) on GPU 3",
            ],
        ),
        (
            "journal-xid74.txt",
            (),
            Status.FAIL,
            ["Xid 74 ×2 (NVLink error) on PCI:0000:9a:00 at 2025-11-28 16:53:37 UTC"],
        ),
        (
            "dmesg-app-xids.txt",
            RTX_ROWS,
            Status.OK,
            [
                "no hardware Xid in the last 1 h; application Xids:",
                "Xid 13 ×2 (graphics engine exception) on GPU 0 (00000000:01:00.0)",
                "Xid 31 (GPU memory page fault)",
                "Xid 43 (GPU stopped processing)",
            ],
        ),
        ("dmesg-old-xid48.txt", A100_ROWS, Status.OK, ["no Xid in the last 1 h (dmesg)"]),
        ("dmesg-none.txt", RTX_ROWS, Status.OK, ["no Xid in the last 1 h (dmesg)"]),
    ],
)
def test_verdicts(
    fixture: str, rows: tuple[gpuquery.GpuRow, ...], status: Status, phrases: list[str]
) -> None:
    """Hardware Xids fail naming Xid, meaning, GPU and time; application Xids are shown."""
    result = xid.CHECK.evaluate(log(fixture), node(), window=3600, gpus=rows)
    assert result.status is status, result.message
    for phrase in phrases:
        assert phrase in result.message


def test_old_xid_inside_a_long_window_fails() -> None:
    """The Xid 48 from soon after boot counts when the window reaches back to it."""
    result = xid.CHECK.evaluate(log("dmesg-old-xid48.txt"), node(), window=90000, gpus=A100_ROWS)
    assert result.status is Status.FAIL
    assert "Xid 48 (double-bit ECC error (uncorrectable memory error)) on GPU 6" in result.message


def test_window_excludes_what_the_previous_check_saw() -> None:
    """The Xid 79 of 400 s ago is outside a 300 s window."""
    result = xid.CHECK.evaluate(log("dmesg-xid79.txt"), node(), window=300, gpus=RTX_ROWS)
    assert result.status is Status.OK
    assert result.message == "no Xid in the last 5 min (dmesg)"


@pytest.mark.parametrize(
    ("fixture", "said"),
    [
        ("journal-denied.txt", "journalctl: Hint: You are currently not seeing messages"),
        ("unreadable.txt", "journalctl: sh: 1: journalctl: not found"),
    ],
)
def test_unreadable_log_is_unknown_with_the_fix(fixture: str, said: str) -> None:
    """No permission to read either log: UNKNOWN, with what was said and what to do."""
    result = xid.CHECK.evaluate(log(fixture), node(), window=3600)
    assert result.status is Status.UNKNOWN
    assert "dmesg: dmesg: read kernel buffer failed: Operation not permitted" in result.message
    assert said in result.message
    assert "`adm` or `systemd-journal` group" in result.message
    assert "kernel.dmesg_restrict=0" in result.message


def test_garbage_raises() -> None:
    """Output without the clock markers is a parse error."""
    with pytest.raises(ValueError, match="no clock and uptime"):
        xid.CHECK.evaluate(log("garbage.txt"), node(), window=3600)


def test_failed_command_is_unknown() -> None:
    """A shell that fails outright leaves the check UNKNOWN."""
    result = xid.CHECK.evaluate(CommandResult(126, "", "sh: permission denied"), node(), window=60)
    assert result.status is Status.UNKNOWN
    assert "sh: permission denied" in result.message


def test_catalog_lists() -> None:
    """The hardware list has the catalog's hardware Xids; application ones are apart."""
    assert {48, 63, 64, 74, 79, 92, 94, 95, 119, 120} <= set(xid.HARDWARE)
    assert not set(xid.HARDWARE) & set(xid.APPLICATION)


def test_many_xids_keep_the_message_short() -> None:
    """Past four distinct (Xid, GPU) pairs the rest are counted, not listed."""
    header = "@@ugro now 1764349200\n@@ugro uptime 86400.50\n@@ugro source dmesg\n"
    lines = "".join(
        f"[86000.{bus:06d}] NVRM: Xid (PCI:0000:{bus:02x}:00): 79, GPU has fallen off the bus.\n"
        for bus in range(1, 8)
    )
    result = xid.CHECK.evaluate(CommandResult(0, header + lines), node(), window=3600)
    assert result.status is Status.FAIL
    assert result.value == 7
    assert result.message.count("Xid 79") == 4
    assert "; and 3 more (kernel log, last 1 h)" in result.message


def test_journal_fallback_reads_only_the_window(tmp_path: Path) -> None:
    """With dmesg refused, journalctl --since=@(now - window) is read, computed on the node."""
    now = time.time()
    (tmp_path / "dmesg_mode").write_text("restricted\n")
    (tmp_path / "journal_log").write_text(
        f"{now - 1000:.6f} n1 kernel: NVRM: Xid (PCI:0000:01:00): 48, pid=1, name=python, DBE\n"
        f"{now - 10:.6f} n1 kernel: NVRM: Xid (PCI:0000:41:00): 79, GPU has fallen off the bus.\n"
    )
    done = subprocess.run(
        ["/bin/sh", "-c", xid.command(100)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
        env={"PATH": f"{STUBS}:/usr/bin:/bin", "UGRO_STUB_DIR": str(tmp_path)},
    )
    result = xid.CHECK.evaluate(CommandResult(0, done.stdout), node(), window=100, gpus=RTX_ROWS)
    assert result.status is Status.FAIL
    assert "Xid 79 (GPU has fallen off the bus) on GPU 1 (00000000:41:00.0)" in result.message
    assert "Xid 48" not in result.message
