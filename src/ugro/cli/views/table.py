"""Aligned columns of plain text, one line per row, for a terminal or a pipe.

The node table is drawn by every `ugro health`, and rich's layout costs more than the rest
of the command; these lines need none of it: no wrapping, no boxes, one colour per cell.
On a terminal the last column is cut to the width; a pipe has no width, so nothing is cut.
Every cell is `printable` here, whatever the caller passed: cells quote what nodes printed.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from ugro.text import ELLIPSIS, printable

if TYPE_CHECKING:
    from collections.abc import Sequence

#: The space between two columns.
GAP = "  "
# Select Graphic Rendition codes by name, for the few styles the tables use.
_SGR = {"bold": "1", "red": "31", "green": "32", "yellow": "33", "magenta": "35", "dim": "2"}


@dataclass(frozen=True, slots=True)
class Cell:
    """One cell: its text, a style ("bold red"), and a tail kept whole when the text is cut."""

    text: str
    style: str = ""
    # Shown after the text even when the text is cut to fit ("+2 more").
    tail: str = ""


def cells(text: str) -> int:
    """How many terminal cells `text` takes: wide (CJK) characters two, combining marks none."""
    if text.isascii():
        return len(text)
    # Only for text that needs it: most tables are ASCII, and this is a command's start-up.
    import unicodedata

    total = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        total += 2 if unicodedata.east_asian_width(char) in "WF" else 1
    return total


def cut(text: str, room: int) -> str:
    """`text` in at most `room` cells, ending in "…" when something was cut."""
    if cells(text) <= room:
        return text
    if room <= 0:
        return ""
    kept, used = [], 0
    for char in text:
        need = cells(char)
        if used + need > room - 1:
            break
        kept.append(char)
        used += need
    return "".join(kept) + ELLIPSIS


def styled(text: str, style: str, *, colour: bool) -> str:
    """`text` in `style` as ANSI codes when `colour`, else as it is."""
    codes = [_SGR[word] for word in style.split() if word in _SGR]
    if not colour or not codes or not text:
        return text
    return f"\x1b[{';'.join(codes)}m{text}\x1b[0m"


def render(
    header: Sequence[str],
    rows: Sequence[Sequence[Cell]],
    *,
    width: int | None,
    colour: bool,
    right: frozenset[int] = frozenset(),
) -> list[str]:
    """The header and the rows as aligned lines; the last column is cut to `width` cells.

    Columns in `right` are right-aligned. `width` None (a pipe) cuts nothing.
    """
    shown = [[Cell(_safe(c.text), c.style, _safe(c.tail)) for c in row] for row in rows]
    last = len(header) - 1
    widths = [cells(title) for title in header[:last]]
    for row in shown:
        for i, c in enumerate(row[:last]):
            widths[i] = max(widths[i], cells(c.text))
    lead = sum(widths) + len(GAP) * last
    room = None if width is None else max(width - lead, 0)

    def line(row: Sequence[Cell], *, bold: bool = False) -> str:
        parts = []
        for i, c in enumerate(row[:last]):
            pad = " " * (widths[i] - cells(c.text))
            text = styled(c.text, "bold" if bold else c.style, colour=colour)
            parts.append(pad + text if i in right else text + pad)
        final = row[last]
        text = final.text
        if room is not None:
            text = cut(text, room - cells(final.tail) - bool(final.tail))
        shown = " ".join(part for part in (text, final.tail) if part)
        parts.append(styled(shown, "bold" if bold else final.style, colour=colour))
        return GAP.join(parts).rstrip()

    return [line([Cell(t) for t in header], bold=True), *(line(row) for row in shown)]


def _safe(text: str) -> str:
    """`printable(text)`, without its cost for text that has nothing it would change."""
    # str.isprintable is false for every control, escape, format (bidi) and surrogate
    # character: true, and `printable` would give the text back as it is.
    return text if text.isprintable() else printable(text)


def terminal_width(stream: TextIO) -> int | None:
    """The width to draw for on `stream`: the terminal's (`$COLUMNS` first), None for a pipe."""
    try:
        if not stream.isatty():
            return None
    except ValueError:
        # A closed or detached stream: nothing to fit.
        return None
    columns = os.environ.get("COLUMNS", "")
    if columns.isdecimal() and 0 < len(columns) < 6 and int(columns) > 0:
        return int(columns)
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError):
        return 80


def colour_wanted(stream: TextIO = sys.stdout) -> bool:
    """Whether to colour what goes to `stream`: NO_COLOR, then FORCE_COLOR, then a terminal."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    if os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except ValueError:
        return False
