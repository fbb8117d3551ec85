"""Text ugro did not write, made safe to show: data, never terminal control.

A node's output, a check message, a GPU or process name, a cordon reason, a value from a
config or data file: any of them may hold terminal escapes (a window title, a cleared screen,
a hidden hyperlink) or line breaks that would forge another line. Every surface that shows
such text passes it through `printable` as it shows it: terminal tables and lists, stderr,
the log (`LineFormatter`), and the human fields of alerts. Stored data (the state file, the
history, `--json`) keeps the text exactly as it came; JSON escaping is the safety there.

Markup is the renderer's business, not this module's: rich renders data as `Text`, never as
markup, and an HTML page autoescapes. `printable` only removes what a terminal or a log
reader would act on.
"""

from __future__ import annotations

import logging
import re

#: Shown for a control character that is not a line break or a tab.
REPLACEMENT = "\ufffd"
#: Shown for a line break in one-line text (a log line, a list line): "⏎".
LINE_BREAK = "\u23ce"
#: Shown at the end of text cut to its limit.
ELLIPSIS = "…"
#: The most characters of one log line's message; a node's output cannot make it a wall.
LOG_LINE_CHARS = 4096

# Escape sequences, removed whole so that no half of one is left to mean something
# (ECMA-48, with the 8-bit C1 introducers that some terminals still honour):
# - control strings (OSC, DCS, SOS, PM, APC) up to BEL or ST; one left open ends at the end
#   of its line, so it cannot swallow the lines after it;
# - CSI: parameter bytes, intermediate bytes and a final byte;
# - any other ESC with its intermediate and final bytes (ESC c, ESC ( B, ...).
_SEQUENCE = re.compile(
    r"(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c\n\r\u2028\u2029]*(?:\x07|\x9c|\x1b\\)?"
    r"|(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]"
    r"|\x1b[\x20-\x2f]*[\x30-\x7e]"
)
# Every way a line can end, for one line each: CR LF first, so that it is one break.
_BREAKS = re.compile(r"\r\n|[\n\r\u2028\u2029]")
# Bidirectional formatting characters: they reorder what is shown around them.
_BIDI = (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
# What is left after the sequences and the line breaks: C0 controls but tab, DEL, C1
# controls, bidirectional formatting, and lone surrogates (which no UTF-8 stream can write).
_CONTROLS: dict[int, str] = dict.fromkeys(
    (*range(0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0), *_BIDI, *range(0xD800, 0xE000)),
    REPLACEMENT,
)
_ONE_LINE = {**_CONTROLS, ord("\n"): LINE_BREAK, ord("\t"): " "}


def printable(text: str, *, multiline: bool = False, limit: int | None = None) -> str:
    """`text` safe to show on a terminal or in a log: no escapes, no controls, no forged lines.

    Escape sequences are removed whole; any other control character becomes U+FFFD (�), as do
    bidirectional overrides and lone surrogates. Line breaks (LF, CR, CR LF, U+2028, U+2029)
    become "⏎" and tabs a space, unless `multiline`, where they stay line breaks (LF) and
    tabs. Printable text, in any script, is unchanged. With `limit`, text longer than `limit`
    characters is cut to `limit` (at least 1), its last one "…". The result is its own
    `printable`.
    """
    cleaned = _BREAKS.sub("\n", _SEQUENCE.sub("", text))
    cleaned = cleaned.translate(_CONTROLS if multiline else _ONE_LINE)
    if limit is not None and len(cleaned) > limit:
        return cleaned[: max(limit, 1) - 1] + ELLIPSIS
    return cleaned


class LineFormatter(logging.Formatter):
    """A log formatter for which one event is one line, whatever its arguments held.

    The message (with the node text in it) is `printable`, one line and at most
    `LOG_LINE_CHARS`. A traceback or stack follows on lines of its own, each indented two
    spaces, so that a line that starts at the margin is always an event's; they are ugro's
    own, but the exception's message may quote a node, so they are `printable` too.
    """

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line, then its indented traceback, if any."""
        record.message = record.getMessage()
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        lines = [printable(self.formatMessage(record), limit=LOG_LINE_CHARS)]
        # Formatted here, not taken from record.exc_text: another handler's formatter may
        # have cached it there unsanitised.
        if record.exc_info:
            lines.append(self.formatException(record.exc_info))
        if record.stack_info:
            lines.append(self.formatStack(record.stack_info))
        return "\n".join(lines[:1] + [_indented(part) for part in lines[1:]])


def _indented(block: str) -> str:
    """`block`'s lines, each printable and indented two spaces."""
    return "\n".join("  " + line for line in printable(block, multiline=True).split("\n"))
