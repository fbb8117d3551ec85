"""How far `ugro check` has got, on stderr, while it runs on a terminal.

A sweep over hung nodes lasts as long as their timeouts; without this it prints nothing
until the end. One line, rewritten in place ("checked 37/100, 5 unreachable so far"), and
erased before the results are printed. Piped or redirected, stderr gets nothing extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Self, TextIO

from ugro.model import NodeStatus

if TYPE_CHECKING:
    from types import TracebackType

    from ugro.model import NodeVerdict

# Back to the start of the line and erase it (ECMA-48 EL): the next write replaces it.
_ERASE = "\r\x1b[K"


class Progress:
    """A context that counts checked nodes on `stream`, when `stream` is a terminal."""

    def __init__(self, total: int, stream: TextIO) -> None:
        """Count towards `total` nodes on `stream`."""
        self.total = total
        self.stream = stream
        self.done = 0
        self.unreachable = 0
        try:
            self.shown = stream.isatty()
        except ValueError:
            self.shown = False

    def __enter__(self) -> Self:
        """Say the check has started."""
        self._say(f"checking {self.total} node{'s' if self.total != 1 else ''}…")
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        """Erase the line, so the results (or an error) start on a clean one."""
        if self.shown:
            self.stream.write(_ERASE)
            self.stream.flush()

    def checked(self, verdict: NodeVerdict) -> None:
        """One more node checked (called as each node's check completes)."""
        self.done += 1
        self.unreachable += verdict.status is NodeStatus.UNREACHABLE
        down = f", {self.unreachable} unreachable so far" if self.unreachable else ""
        self._say(f"checked {self.done}/{self.total}{down}")

    def _say(self, text: str) -> None:
        if self.shown:
            self.stream.write(f"{_ERASE}{text}")
            self.stream.flush()
