"""Reading what a node's runner prints (`ugro.transport.batch`): each command's result.

Everything the runner prints is the node's, so the reader checks every size before it trusts
it, and holds at most one record besides what it was just fed. What it cannot read as the
runner's output is InvalidOutput; a runner that says it cannot run (or never says it started)
is Refused, and the transport runs the commands one channel each.
"""

from __future__ import annotations

import signal

from ugro.errors import InvalidOutput
from ugro.model import CommandResult
from ugro.subprocesses import STDERR_LIMIT, STDOUT_LIMIT
from ugro.transport.batch import FILE_CAP, MARK

# What the login shell may print before the runner starts, and the longest line it reads.
PREAMBLE_LIMIT = 64 * 1024
HEADER_LIMIT = 256


class _Done:
    """What the reader makes of the line that ends a pass."""


_DONE = _Done()


class Refused(Exception):
    """The node did not start the runner: run the commands one channel each."""


class Reader:
    """Reads a runner's stdout as it arrives; `feed` returns each command's result.

    Everything in it is the node's, so every size is checked before it is trusted: the reader
    holds at most one record (two streams of at most twice the cap, and a header) besides what
    it was just fed.
    """

    def __init__(
        self,
        limits: tuple[int, int] = (STDOUT_LIMIT, STDERR_LIMIT),
        cap: int = FILE_CAP,
    ) -> None:
        """Expect streams of at most `cap` bytes, each judged at its limit."""
        self._limits = limits
        self._cap = cap
        self._buffer = bytearray()
        self._skipped = 0
        self.up = False
        # The pass whose records are still coming: its ID and command count.
        self._pass: tuple[int, int] | None = None
        # The passes whose `done` line is still to come, oldest first: a pass's results are
        # all in at its last record, and its `done` may come after the next pass began.
        self._due: list[int] = []
        self.reported: set[int] = set()

    def begin(self, pass_id: int, count: int) -> None:
        """Expect the records of pass `pass_id`, which runs `count` commands."""
        self._pass = (pass_id, count)
        self._due.append(pass_id)
        self.reported = set()

    @property
    def between(self) -> bool:
        """Whether no pass has results still to come: every record came, or its `done`."""
        return self._pass is None

    def feed(self, data: bytes) -> list[tuple[int, CommandResult]]:
        """The results completed by `data`, as (index in the pass, result).

        Raises Refused when the runner says it cannot run, InvalidOutput when what came is
        not what the runner prints.
        """
        self._buffer += data
        results: list[tuple[int, CommandResult]] = []
        if not self.up and not self._start():
            return results
        while self._due and (record := self._record()) is not None:
            if not isinstance(record, _Done):
                results.append(record)
        if not self._due and self._buffer:
            raise InvalidOutput("output from ugro's runner between its batches of commands")
        return results

    def end(self) -> None:
        """The stream ended: Refused when the runner never started."""
        if not self.up:
            raise Refused

    def _start(self) -> bool:
        """Skip the login shell's lines up to `MARK up`; True once found."""
        while (line := self._line(PREAMBLE_LIMIT)) is not None:
            self._skipped += len(line) + 1
            if line == f"{MARK} none".encode():
                raise Refused
            if line == f"{MARK} up".encode():
                self.up = True
                return True
            if self._skipped > PREAMBLE_LIMIT:
                raise InvalidOutput(
                    f"the node's login shell printed more than {PREAMBLE_LIMIT // 1024} KiB "
                    "before ugro's commands started; make its profile quiet when not interactive"
                )
        return False

    def _line(self, limit: int) -> bytes | None:
        """The login shell's next line, taken from the buffer; None while it has no newline."""
        end = self._buffer.find(b"\n", 0, limit + 1)
        if end < 0:
            if len(self._buffer) > limit:
                raise InvalidOutput(
                    f"the node's login shell printed a line of more than {limit} bytes "
                    "before ugro's commands started"
                )
            return None
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        return line

    def _record(self) -> tuple[int, CommandResult] | _Done | None:
        """The next whole record taken from the buffer, or the `done` line of a pass.

        None until all of it has come.
        """
        end = self._buffer.find(b"\n", 0, HEADER_LIMIT + 1)
        if end < 0:
            if len(self._buffer) > HEADER_LIMIT:
                raise InvalidOutput("a garbled header in the answer to ugro's batch of commands")
            return None
        words = bytes(self._buffer[:end]).split()
        if words == [MARK.encode(), b"none"]:
            raise Refused
        if words == [MARK.encode(), b"done", str(self._due[0]).encode()]:
            del self._buffer[: end + 1]
            if self._pass is not None and self._pass[0] == self._due[0]:
                self._pass = None  # given up on what had not come by then
            del self._due[0]
            return _DONE
        index, status, out, err = self._header(words)
        if len(self._buffer) < end + 1 + out + err:
            return None
        body = end + 1
        stdout = bytes(self._buffer[body : body + out])
        stderr = bytes(self._buffer[body + out : body + out + err])
        del self._buffer[: body + out + err]
        self.reported.add(index)
        if self._pass is not None and len(self.reported) == self._pass[1]:
            self._pass = None
        return index, self._result(status, stdout, stderr)

    def _header(self, words: list[bytes]) -> tuple[int, str, int, int]:
        """A record's header: index, status word, stream sizes."""
        count = 0 if self._pass is None else self._pass[1]
        try:
            mark, number, status, out, err = (w.decode("ascii") for w in words)
            index, outs, errs = int(number) - 1, int(out), int(err)
        except ValueError:
            raise InvalidOutput(
                "a garbled header in the answer to ugro's batch of commands"
            ) from None
        if mark != MARK or not 0 <= index < count or index in self.reported:
            raise InvalidOutput("a header for no command of ugro's batch")
        # A shell that counts ulimit's blocks in KiB (bash outside POSIX mode) lets twice the
        # cap through; more than that is no runner's.
        if not (0 <= outs <= 2 * self._cap and 0 <= errs <= 2 * self._cap):
            raise InvalidOutput("a record larger than ugro's limits in the answer to its batch")
        return index, status, outs, errs

    def _result(self, status: str, stdout: bytes, stderr: bytes) -> CommandResult:
        """The CommandResult of one record."""
        if len(stdout) > self._limits[0] or len(stderr) > self._limits[1]:
            cut = stdout[: self._limits[0]], stderr[: self._limits[1]]
            return CommandResult(None, _text(cut[0]), _text(cut[1]), truncated=True)
        out, err = _text(stdout), _text(stderr)
        code = int(status) if status.isdigit() and len(status) <= 3 else None
        if code is not None and code > 128 and (name := _signal(code - 128)) is not None:
            return CommandResult(None, out, err, exit_signal=name)
        return CommandResult(code, out, err)


def _text(data: bytes) -> str:
    """A stream as text; bytes that are not UTF-8 become U+FFFD."""
    return data.decode(errors="replace")


def _signal(number: int) -> str | None:
    """The name sshd would give signal `number` (SEGV, KILL), None when it names none."""
    try:
        return signal.Signals(number).name.removeprefix("SIG")
    except ValueError:
        return None
