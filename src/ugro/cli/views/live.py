"""A full-screen view redrawn in place, as `gpustat -i` or `watch` draw one.

The alternate screen keeps the shell's scrollback as it was; each frame moves the cursor
home and overwrites line by line, erasing only what is left of each line and below the
last, so nothing is cleared between frames and nothing flickers. `q` (or Ctrl-C) leaves,
and the terminal is given back as it was found, whatever happened.
"""

from __future__ import annotations

import os
import select
import shutil
import sys
import time
from datetime import datetime
from typing import TYPE_CHECKING, TextIO

from ugro.cli.views.table import cut

if TYPE_CHECKING:
    from collections.abc import Callable

# xterm's alternate screen and cursor visibility, ECMA-48 cursor home and erasures.
ENTER = "\x1b[?1049h\x1b[?25l"
LEAVE = "\x1b[?25h\x1b[?1049l"
HOME = "\x1b[H"
ERASE_LINE = "\x1b[K"
ERASE_BELOW = "\x1b[J"
#: The keys that leave the view.
QUIT_KEYS = frozenset("qQ")


def frame(lines: list[str], *, height: int, status: str) -> str:
    """One frame: `lines` cut to the screen's height, `status` on its last line."""
    room = max(height - 1, 0)
    shown = lines[:room]
    if len(lines) > room and room:
        shown[-1] = f"… {len(lines) - room + 1} more lines: make the window taller"
    body = "".join(f"{line}{ERASE_LINE}\n" for line in shown)
    return f"{HOME}{body}{status}{ERASE_LINE}{ERASE_BELOW}"


def watch(
    draw: Callable[[int], list[str]],
    every: float,
    *,
    title: str,
    keys: TextIO | None = None,
    screen: TextIO | None = None,
) -> None:
    """Show `draw(width)` full screen on `screen`, afresh every `every` seconds, until q.

    Keys are read from `keys` (stdin) without waiting for Enter when it is a terminal;
    otherwise only Ctrl-C leaves. Returns when the person has left.
    """
    keys = keys or sys.stdin
    screen = screen or sys.stdout
    restore = _cbreak(keys)
    screen.write(ENTER)
    try:
        while True:
            size = shutil.get_terminal_size()
            stamp = datetime.now().astimezone().strftime("%H:%M:%S")
            status = cut(f"{title} · every {every:g}s · {stamp} · q to quit", size.columns)
            screen.write(frame(draw(size.columns), height=size.lines, status=status))
            screen.flush()
            if _quit_within(keys, every):
                return
    except KeyboardInterrupt:
        return
    finally:
        screen.write(LEAVE)
        screen.flush()
        restore()


def _quit_within(keys: TextIO, seconds: float) -> bool:
    """Wait up to `seconds` for a key; whether it was one that leaves (or stdin closed)."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            ready, _, _ = select.select([keys], [], [], left)
        except ValueError:
            # No file descriptor to wait on (stdin closed): only Ctrl-C leaves.
            time.sleep(left)
            return False
        if not ready:
            return False
        typed = os.read(keys.fileno(), 64).decode(errors="replace")
        if not typed:
            # The end of input: nobody can type q any more, so wait out the frame.
            time.sleep(max(deadline - time.monotonic(), 0))
            return False
        if QUIT_KEYS.intersection(typed):
            return True
    return False


def _cbreak(keys: TextIO) -> Callable[[], None]:
    """Read `keys` a key at a time, unechoed; what gives the terminal back as it was."""
    import termios
    import tty

    try:
        fd = keys.fileno()
        saved = termios.tcgetattr(fd)
    except (OSError, ValueError, termios.error):
        # Not a terminal: nothing to set, nothing to restore.
        return lambda: None
    tty.setcbreak(fd)

    def restore() -> None:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)

    return restore
