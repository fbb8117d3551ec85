"""A node check's commands on one SSH channel: the shell program that runs them, and its reader.

Every channel costs a round of SSH messages and, on the node, an sshd session and a login
shell; nine of them a node check made the SSH layer nine tenths of the monitor's CPU. `RUNNER`
takes the commands as arguments and starts them all at once, each under its own `timeout`
with its output in files of a private temporary directory, and prints each one's result as a
length-framed record as soon as that command ends. A hung `nvidia-smi` therefore holds back
nothing but its own result, as it did with a channel per command.

The runner is POSIX sh plus what every Linux has (`mktemp`, `mkfifo`, `df`, `wc`, `timeout`),
and costs the node five short processes a command besides the command's own. A command's
files are capped by `ulimit -f` (with SIGXFSZ ignored, a write past the cap fails, as a write
to a closed channel did); the runner uses a directory only when its free space holds every
command's cap, so no output is lost to a full disk, short of another program filling it in
the same second. When the node cannot run the runner (no such directory, no `mktemp`, no
`sh`), it says so, or never says it started, and the transport runs the commands one channel
each, as before.

What the runner prints, on stdout:

* anything the login shell prints first (a profile's banner), which the reader skips;
* `MARK ready N` once every command is started, or `MARK none` when it cannot run them;
* per command, in the order they end: `MARK k status out_bytes err_bytes`, then the command's
  stdout and its stderr. `status` is the exit status (128 + N for signal N). Each stream is
  cut at FILE_CAP bytes on the node; past its own limit the result is `truncated`.
"""

from __future__ import annotations

import functools
import math
import shlex
import signal
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ugro.errors import InvalidOutput
from ugro.model import CommandResult
from ugro.subprocesses import STDERR_LIMIT, STDOUT_LIMIT

if TYPE_CHECKING:
    from collections.abc import Sequence

MARK = "ugro-batch-1"
# Seconds the node gives a command beyond its check's timeout: ugro gives up first, so a
# check's message is its own timeout, not the node's kill.
NODE_MARGIN_S = 1
# Seconds after the longest timeout when the runner stops waiting and cleans up, whatever is
# still running (a process stuck in the kernel, which not even SIGKILL ends).
WATCHDOG_MARGIN_S = 4
# What the login shell may print before the runner starts, and the longest line it reads.
PREAMBLE_LIMIT = 64 * 1024
HEADER_LIMIT = 256

# $1 mark, $2 the largest stream (bytes), $3 the watchdog's seconds, then one pair (seconds,
# command) per command. Command k's streams go to $d/k.o and $d/k.e; when it ends its
# subshell writes the record's header to $d/k.h and `k` to the fifo $d/q, from which the
# main loop prints the record with one `cat`: its parts come out back to back, so sshd
# mostly sends a record as one packet, not a header and then each stream.
RUNNER = """\
m=$1 cap=$2 w=$3
shift 3
need=$(( $# / 2 * (2 * cap / 1024 + 16) ))
d=
for t in "$XDG_RUNTIME_DIR" /dev/shm "${TMPDIR:-/tmp}"; do
  [ -d "$t" ] || continue
  a=$(df -Pk "$t" 2>/dev/null | { read -r _; read -r _ _ _ a _ && echo "$a"; })
  case $a in ''|*[!0-9]*) ;; *) [ "$a" -ge "$need" ] || continue ;; esac
  d=$(mktemp -d "$t/ugro.XXXXXX" 2>/dev/null) || continue
  mkfifo "$d/q" 2>/dev/null && break
  rm -rf "$d"
  d=
done
if [ -z "$d" ]; then echo "$m none"; exit 0; fi
trap 'rm -rf "$d"' EXIT
trap 'exit 1' HUP INT TERM
exec 3<>"$d/q"
T=
command -v timeout >/dev/null 2>&1 && T=1
n=0
p=
while [ $# -gt 1 ]; do
  n=$((n + 1))
  (
    trap '' XFSZ
    ulimit -f $(( (cap + 511) / 512 ))
    if [ -n "$T" ]; then timeout -k 2 "$1" sh -c "$2"; else sh -c "$2"; fi \\
      </dev/null >"$d/$n.o" 2>"$d/$n.e" 3>&-
    r=$?
    set -- $(cd "$d" && exec wc -c "$n.o" "$n.e")
    printf '%s %s %s %s %s\\n' "$m" "$n" "$r" "$1" "$3" >"$d/$n.h"
    echo "$n" >&3
  ) >/dev/null 2>&1 &
  p="$p $!"
  shift 2
done
echo "$m ready $n"
( trap 'kill $! 2>/dev/null; exit 0' TERM; sleep "$w" & wait $!; echo w >&3 ) &
p="$p $!"
trap '' PIPE
i=0
while [ $i -lt $n ] && read -r k <&3 && [ "$k" != w ]; do
  i=$((i + 1))
  cat "$d/$k.h" "$d/$k.o" "$d/$k.e" 2>/dev/null
done
kill $p 2>/dev/null
exit 0
"""
# What the node writes of a stream at most: past the larger limit, so that a stream that
# reached the cap reads as cut, in ulimit's 512-byte blocks.
FILE_CAP = (max(STDOUT_LIMIT, STDERR_LIMIT) + 512) // 512 * 512


class Refused(Exception):
    """The node did not start the runner: run the commands one channel each."""


@dataclass(frozen=True, slots=True)
class Job:
    """One command of a batch, with the seconds its check gives it."""

    command: str
    timeout: float


def watchdog_s(jobs: Sequence[Job]) -> int:
    """Seconds after which the runner gives up on whatever still runs."""
    return max(math.ceil(job.timeout) for job in jobs) + NODE_MARGIN_S + WATCHDOG_MARGIN_S


def command(jobs: Sequence[Job], cap: int = FILE_CAP) -> str:
    """The shell command that runs `jobs` on the node through RUNNER, every word quoted.

    `cap` is what the node writes of a stream at most: a multiple of 512, past both limits.
    """
    return _command(tuple(jobs), cap)


# Cached: a node sends the same batch at every check, and quoting its 10 KB again was a
# percent of the daemon's CPU under cProfile.
@functools.lru_cache(maxsize=256)
def _command(jobs: tuple[Job, ...], cap: int) -> str:
    words = ["sh", "-c", RUNNER, "ugro-batch", MARK, str(cap), str(watchdog_s(jobs))]
    for job in jobs:
        words += [str(math.ceil(job.timeout) + NODE_MARGIN_S), job.command]
    return shlex.join(words)


class Reader:
    """Reads the runner's stdout as it arrives; `feed` returns each command's result.

    Everything in it is the node's, so every size is checked before it is trusted: the reader
    holds at most one record (two streams of at most twice the cap, and a header) besides what it
    was just fed.
    """

    def __init__(
        self,
        count: int,
        limits: tuple[int, int] = (STDOUT_LIMIT, STDERR_LIMIT),
        cap: int = FILE_CAP,
    ) -> None:
        """Expect `count` records, streams at most `cap` bytes, each judged at its limit."""
        self._count = count
        self._limits = limits
        self._cap = cap
        self._buffer = bytearray()
        self._skipped = 0
        self.started = False
        self.reported: set[int] = set()

    @property
    def finished(self) -> bool:
        """Whether every command's result has been read."""
        return len(self.reported) == self._count

    def feed(self, data: bytes) -> list[tuple[int, CommandResult]]:
        """The results completed by `data`, as (index in the batch, result).

        Raises Refused when the runner says it cannot run, InvalidOutput when what came is
        not what the runner prints.
        """
        self._buffer += data
        results: list[tuple[int, CommandResult]] = []
        if not self.started and not self._start():
            return results
        while (record := self._record()) is not None:
            results.append(record)
        return results

    def end(self) -> None:
        """The stream ended: Refused when the runner never started."""
        if not self.started:
            raise Refused

    def _start(self) -> bool:
        """Skip the login shell's lines up to `MARK ready N`; True once found."""
        while (line := self._line(PREAMBLE_LIMIT)) is not None:
            self._skipped += len(line) + 1
            if line == f"{MARK} none".encode():
                raise Refused
            if line == f"{MARK} ready {self._count}".encode():
                self.started = True
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

    def _record(self) -> tuple[int, CommandResult] | None:
        """The next whole record taken from the buffer; None until all of it has come."""
        end = self._buffer.find(b"\n", 0, HEADER_LIMIT + 1)
        if end < 0:
            if len(self._buffer) > HEADER_LIMIT:
                raise InvalidOutput("a garbled header in the answer to ugro's batch of commands")
            return None
        index, status, out, err = self._header(bytes(self._buffer[:end]))
        if len(self._buffer) < end + 1 + out + err:
            return None
        body = end + 1
        stdout = bytes(self._buffer[body : body + out])
        stderr = bytes(self._buffer[body + out : body + out + err])
        del self._buffer[: body + out + err]
        self.reported.add(index)
        return index, self._result(status, stdout, stderr)

    def _header(self, line: bytes) -> tuple[int, str, int, int]:
        """A record's header: index, status word, stream sizes."""
        words = line.split()
        try:
            mark, number, status, out, err = (w.decode("ascii") for w in words)
            index, outs, errs = int(number) - 1, int(out), int(err)
        except ValueError:
            raise InvalidOutput(
                "a garbled header in the answer to ugro's batch of commands"
            ) from None
        if mark != MARK or not 0 <= index < self._count or index in self.reported:
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
