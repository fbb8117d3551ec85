"""ugro.text: node text made safe to show, and the log formatter that keeps one event a line."""

from __future__ import annotations

import logging
import re
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ugro.text import LOG_LINE_CHARS, LineFormatter, printable

ESC = "\x1b"
# What a terminal or a log reader would act on: C0 controls, DEL, the C1 controls,
# bidirectional formatting, line and paragraph separators, lone surrogates. Multiline text may
# keep LF and tab.
_ALWAYS = "\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff"
UNSAFE = re.compile(f"[\x00-\x1f{_ALWAYS}]")
UNSAFE_IN_LINES = re.compile(f"[\x00-\x08\x0b-\x1f{_ALWAYS}]")


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("NVIDIA H100\x1b]0;owned\x07", "NVIDIA H100"),  # OSC window title, BEL-terminated
        ("H100\x1b]2;owned\x1b\\ SXM", "H100 SXM"),  # OSC ended by ST
        ("\x1b[2J\x1b[HH100", "H100"),  # clear screen, cursor home
        ("\x1b[1;31mred\x1b[0m", "red"),  # SGR colour
        ("\x1b]8;;https://evil.example/\x1b\\the docs\x1b]8;;\x1b\\", "the docs"),  # OSC-8 link
        ("\x9b2J\x9d0;owned\x9cH100", "H100"),  # 8-bit CSI, OSC and ST
        ("\x1bcreset", "reset"),  # ESC c (full reset), an ESC sequence without a bracket
        ("a\x1b(Bb", "ab"),  # charset designation: ESC, an intermediate, a final
        ("title\x1b]0;never ended", "title"),  # an open OSC ends with its text
        ("lone ESC\x1b", "lone ESC\ufffd"),
        ("nul\x00bel\x07del\x7fnel\x85", "nul\ufffdbel\ufffddel\ufffdnel\ufffd"),
        ("evil\u202eexe.txt", "evil\ufffdexe.txt"),  # a right-to-left override
        ("lone \udc80 surrogate", "lone \ufffd surrogate"),
        ("ok\n2026-11-30 WARNING gpu7: down -> up", "ok⏎2026-11-30 WARNING gpu7: down -> up"),
        ("a\r\nb\rc\u2028d\u2029e", "a⏎b⏎c⏎d⏎e"),
        ("col\tumn", "col umn"),
        ("[/oops] [link=https://evil.example/]x[/link]", None),  # markup is the renderer's
        ("45 °C × 8 — 日本語 Ελληνικά العربية 🚀", None),  # printable text in any script
    ],
)
def test_escapes_controls_and_line_breaks_are_not_shown(raw: str, shown: str | None) -> None:
    """Whole escape sequences go, other controls show as �, line breaks as ⏎; text stays."""
    assert printable(raw) == (raw if shown is None else shown)


def test_multiline_keeps_lines_and_tabs() -> None:
    """With multiline, line breaks become LF and tabs stay; an open OSC ends at its line."""
    raw = "one\x1b]0;open\r\ntwo\tcols\rthree\u2028four\x1b[2J"
    assert printable(raw, multiline=True) == "one\ntwo\tcols\nthree\nfour"


def test_limit_cuts_with_an_ellipsis() -> None:
    """Text over the limit is cut to exactly the limit, its last character an ellipsis."""
    assert printable("x" * 10, limit=4) == "xxx…"
    assert printable("x" * 4, limit=4) == "xxxx"
    assert printable("\x1b[2J" + "x" * 4, limit=4) == "xxxx"


# Text rich in what matters here: the pieces of escape sequences and every kind of control,
# mixed with any character at all (surrogates included).
PIECES = st.sampled_from(
    [
        *(ESC, "[", "]", "\\", "\x07", "\x9b", "\x9c", "\x9d", "\x90", ";", "0", "2J", "m", "8;;"),
        *("\n", "\r", "\t", "\u2028", "\u202e", "\x00", "\x7f", "\x85", "\udc80", "°", "日"),
    ]
)
TEXT = st.lists(st.one_of(PIECES, st.characters(exclude_categories=())), max_size=40).map("".join)


@given(TEXT, st.booleans())
def test_nothing_unsafe_survives_and_a_second_pass_changes_nothing(
    raw: str, multiline: bool
) -> None:
    """No ESC, C0, C1, bidi or surrogate survives; one-line text has no break; idempotent."""
    shown = printable(raw, multiline=multiline)
    assert not (UNSAFE_IN_LINES if multiline else UNSAFE).search(shown)
    if not multiline:
        assert "\t" not in shown
        assert len(shown.splitlines()) <= 1
    shown.encode("utf-8")
    assert printable(shown, multiline=multiline) == shown


@given(st.text(st.characters(exclude_categories=()), max_size=60).filter(str.isprintable))
def test_printable_text_is_unchanged(raw: str) -> None:
    """Text that is all printable (any script, symbols, emoji) is shown exactly as it is."""
    assert printable(raw) == raw
    assert printable(raw, multiline=True) == raw


@given(TEXT, st.integers(min_value=1, max_value=80))
def test_limit_holds(raw: str, limit: int) -> None:
    """The limit bounds the result, and a second pass with it changes nothing."""
    shown = printable(raw, limit=limit)
    assert len(shown) <= limit
    assert printable(shown, limit=limit) == shown


FORGED = "2026-11-30 03:14:15,926 INFO gpu7: unhealthy -> healthy (all checks pass)"
LINE_START = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ ")


def formatted(record: logging.LogRecord) -> list[str]:
    """The lines LineFormatter makes of `record`, in the daemon's format."""
    return LineFormatter("%(asctime)s %(levelname)s %(message)s").format(record).split("\n")


def record(msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    """A log record as `log.warning(msg, *args)` makes it, with the exception being handled."""
    return logging.LogRecord(
        "ugro.test", logging.WARNING, __file__, 1, msg, args, sys.exc_info() if exc else None
    )


def test_a_node_cannot_forge_a_log_line() -> None:
    """A newline and escapes in an argument stay inside the one line of their event."""
    lines = formatted(record("%s: %s", "gpu7", f"import torch failed\n{FORGED}\x1b]0;owned\x07"))
    assert len(lines) == 1
    assert LINE_START.match(lines[0])
    assert lines[0].endswith(f"gpu7: import torch failed⏎{FORGED}")


def test_a_long_message_is_bounded() -> None:
    """A node's wall of output is one line of at most LOG_LINE_CHARS characters of message."""
    (line,) = formatted(record("%s", "x" * (LOG_LINE_CHARS * 3)))
    assert line.endswith("x…")
    assert len(line) <= LOG_LINE_CHARS


def test_a_traceback_is_indented_and_cannot_forge_a_line() -> None:
    """An exception's lines follow indented; its node-made message cannot start a line."""

    def parse() -> None:
        raise RuntimeError(f"bad answer\n{FORGED}\x1b[2J")

    try:
        parse()
    except RuntimeError:
        lines = formatted(record("sweep %d failed", 3, exc=True))
    assert LINE_START.match(lines[0])
    assert lines[0].endswith("WARNING sweep 3 failed")
    assert lines[1] == "  Traceback (most recent call last):"
    assert all(line.startswith("  ") for line in lines[1:])
    assert f"  {FORGED}" in lines
    assert not any(ESC in line for line in lines)
