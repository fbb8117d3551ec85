"""Terminal surfaces on a real pseudo-terminal: the table's cut, `health --watch`, check progress.

In this process, the pty module gives the views a terminal of a known size; the command
line itself runs on one too, as a process, in the integration lane.
"""

from __future__ import annotations

import fcntl
import io
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner

from conftest import wait_for
from ugro import paths
from ugro.cli import main
from ugro.cli.views import live, table
from ugro.cli.views import verdicts as view
from ugro.cli.views.progress import Progress
from ugro.model import Alert, CheckResult, NodeStatus, NodeVerdict, Status
from ugro.store.state import StateStore
from ugro.verdict.rows import cluster_rows

if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import TextIO


def verdict(name: str, status: NodeStatus = NodeStatus.HEALTHY, problem: str = "") -> NodeVerdict:
    """A verdict of `name`, checked now, with one problem when `problem` is given."""
    return NodeVerdict(
        name=name,
        address="10.0.0.1",
        status=status,
        health_score=100.0,
        pass_rate=1.0,
        last_check=datetime.now(UTC),
        checks=(CheckResult("ssh", Status.OK, "ok"),),
        alerts=(Alert("critical", problem),) if problem else (),
    )


def sized(fd: int, rows: int, columns: int) -> None:
    """Give the terminal of `fd` a size, as a terminal emulator does."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[int, TextIO]]:
    """A pseudo-terminal of 24 x 50: its master fd, and its slave as a text stream."""
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)
    master, slave = pty.openpty()
    sized(slave, 24, 50)
    stream = os.fdopen(slave, "w", encoding="utf-8")
    try:
        yield master, stream
    finally:
        stream.close()
        os.close(master)


def drain(master: int) -> str:
    """Everything the terminal has received so far."""
    got = b""
    while select.select([master], [], [], 0.05)[0]:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        got += chunk
    return got.decode(errors="replace")


def test_the_table_is_cut_to_the_terminal_it_is_on(terminal: tuple[int, TextIO]) -> None:
    """On a 50-column pty every line, the footer's too, fits; each node is one line."""
    master, stream = terminal
    rows = cluster_rows(
        {
            "gpu1": verdict("gpu1", NodeStatus.UNHEALTHY, "xid: " + "Xid 79 fell off the bus " * 9),
            "gpu2": verdict("gpu2"),
        },
        None,
        datetime.now(UTC),
    )
    assert table.terminal_width(stream) == 50
    view.print_table(rows, footer=f"2 nodes\nconfig: /{'x' * 80}.yaml", stream=stream)
    stream.flush()
    shown = drain(master).replace("\r\n", "\n").splitlines()
    assert [line.split()[0] for line in shown if line] == ["NODE", "gpu1", "gpu2", "2", "config:"]
    assert all(table.cells(line) <= 50 for line in shown), shown
    assert shown[1].endswith("…")


def test_columns_overrides_the_terminal_size(
    terminal: tuple[int, TextIO], monkeypatch: pytest.MonkeyPatch
) -> None:
    """$COLUMNS wins over the size the terminal reports; garbage in it is ignored."""
    _, stream = terminal
    monkeypatch.setenv("COLUMNS", "120")
    assert table.terminal_width(stream) == 120
    monkeypatch.setenv("COLUMNS", "9" * 400)
    assert table.terminal_width(stream) == 50
    assert table.terminal_width(io.StringIO()) is None


# --- check progress ------------------------------------------------------------------------


def test_progress_is_shown_on_a_terminal_and_erased(terminal: tuple[int, TextIO]) -> None:
    """checked/total and the unreachable so far, on one line rewritten, erased at the end."""
    master, stream = terminal
    with Progress(3, stream) as progress:
        progress.checked(verdict("a"))
        progress.checked(verdict("b", NodeStatus.UNREACHABLE))
        progress.checked(verdict("c"))
    said = drain(master)
    assert "checking 3 nodes…" in said
    assert "checked 1/3" in said
    assert "checked 3/3, 1 unreachable so far" in said
    assert said.endswith("\r\x1b[K")
    assert "\n" not in said


def test_progress_says_nothing_to_a_pipe() -> None:
    """Piped or redirected, stderr gets nothing extra."""
    stream = io.StringIO()
    with Progress(2, stream) as progress:
        progress.checked(verdict("a", NodeStatus.UNREACHABLE))
    assert stream.getvalue() == ""


# --- health --watch ------------------------------------------------------------------------


def test_watch_redraws_in_place_and_leaves_on_q(terminal: tuple[int, TextIO]) -> None:
    """Alternate screen, frames drawn from home without clearing, q restores the terminal."""
    master, stream = terminal
    keys_master, keys_slave = pty.openpty()
    keys = os.fdopen(keys_slave, encoding="utf-8")
    echo_before = termios.tcgetattr(keys_slave)[3] & termios.ECHO
    frames: list[int] = []

    def draw(width: int) -> list[str]:
        frames.append(width)
        return [f"frame {len(frames)}", "x" * 80]

    watcher = threading.Thread(
        target=live.watch, args=(draw, 0.05), kwargs={"title": "t", "keys": keys, "screen": stream}
    )
    try:
        watcher.start()
        wait_for(lambda: len(frames) >= 3, "three frames")
        # Keys are read one at a time, unechoed, while the view is up.
        assert not termios.tcgetattr(keys_slave)[3] & termios.ECHO
        os.write(keys_master, b"x")
        os.write(keys_master, b"q")
        watcher.join(timeout=10)
        assert not watcher.is_alive()
        assert termios.tcgetattr(keys_slave)[3] & termios.ECHO == echo_before
    finally:
        keys.close()
        os.close(keys_master)
    shown = drain(master)
    assert shown.startswith(live.ENTER)
    assert shown.endswith(live.LEAVE)
    assert shown.count(live.HOME) == len(frames)
    # Redrawn in place: never a whole-screen clear between frames.
    assert "\x1b[2J" not in shown
    assert "frame 3" in shown


def test_a_frame_fits_the_screen() -> None:
    """More lines than the screen has: the last one shown says how many were left out."""
    drawn = live.frame([f"line {i}" for i in range(30)], height=10, status="status")
    lines = drawn.split("\n")
    assert len(lines) == 10
    assert lines[-2].startswith("… 22 more lines")
    assert lines[-1].startswith("status")


def test_watch_on_a_pipe_is_refused() -> None:
    """`--watch` piped: one line saying why, exit 3."""
    ran = CliRunner().invoke(main, ["health", "--watch"])
    assert ran.exit_code == 3
    assert "--watch draws on a terminal" in ran.output


@pytest.mark.integration
def test_health_watch_on_a_pty_as_a_process() -> None:
    """The real command on a terminal: drawn full screen, errors shown, q leaves with exit 0."""
    StateStore(paths.state_file()).update(
        [verdict("gpu1"), verdict("gpu2", NodeStatus.UNREACHABLE, "unreachable: refused")],
        keep=["gpu1", "gpu2", "gpu3"],
    )
    master, slave = pty.openpty()
    sized(slave, 24, 80)
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    process = subprocess.Popen(
        [sys.executable, "-m", "ugro", "health", "--watch", "0.2"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    seen = ""
    try:

        def drawn() -> bool:
            nonlocal seen
            seen += drain(master)
            return "q to quit" in seen and "gpu3" in seen

        wait_for(drawn, "the first frame")
        # A state file gone bad under the view is said in the frame; the view stays up.
        paths.state_file().write_bytes(b"{")
        wait_for(lambda: drawn() and "corrupt" in seen, "the error in a frame")
        os.write(master, b"q")
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        seen += drain(master)
        os.close(master)
    assert live.ENTER in seen
    assert live.LEAVE in seen
    assert "never checked" in seen
    assert "Traceback" not in seen


@pytest.mark.integration
def test_check_progress_on_a_pty_and_not_when_piped() -> None:
    """`ugro check` (this machine alone) says how far it got on a terminal, nothing piped."""
    master, slave = pty.openpty()
    env = {**os.environ, "PATH": os.environ.get("PATH", "")}
    process = subprocess.Popen(
        [sys.executable, "-m", "ugro", "check"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    said = ""
    try:
        deadline = time.monotonic() + 120
        while process.poll() is None and time.monotonic() < deadline:
            said += drain(master)
        said += drain(master)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        os.close(master)
    assert "checking 1 node…" in said
    assert "checked 1/1" in said
    piped = subprocess.run(
        [sys.executable, "-m", "ugro", "check"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert "checking" not in piped.stderr
    assert "checked 1/1" not in piped.stderr


def test_watch_takes_only_the_table_formats() -> None:
    """`--watch --json` is refused with exit 3: a document is not redrawn in place."""
    ran = CliRunner().invoke(main, ["health", "--watch", "1", "--format", "nagios"])
    assert ran.exit_code == 3
    assert "--format nagios cannot be watched" in ran.output
