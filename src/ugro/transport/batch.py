"""A node's commands on one SSH channel kept open: the shell program that runs them, its reader.

Every channel costs a round of SSH messages and, on the node, an sshd session, a login shell
and a runner that finds itself a directory; opened for every node check, they were most of
what a check cost the monitor and a good part of what it cost the node. So a node's channel
stays open between checks: `SERVE` sets up once, then runs a pass of commands for each
request it reads on stdin. A pass starts its commands all at once, each under its own
`timeout` with its output in files of the runner's private temporary directory, and prints
each one's result as a length-framed record. Records are held back until every command has
ended, or for a moment at most (a quarter of the shortest wait of any check, a second at
most), then each is printed as soon as its command ends: a pass's answer comes as one SSH
message, where a record each cost the control node most of a node check's packet handling,
and a hung `nvidia-smi` still holds back nothing but its own result.

The runner is POSIX sh plus what every Linux has (`mktemp`, `mkfifo`, `df`, `wc`, `timeout`),
and costs the node four short processes a command besides the command's own, and ten a pass
when its records go out together (a `cat` more for each one printed on its own).
A command's files are capped by `ulimit -f` (with SIGXFSZ ignored, a write past the cap fails,
as a write to a closed channel did); the runner uses a directory only when its free space
holds every command's cap, checked again at every pass, so no output is lost to a full disk,
short of another program filling it in the same second. When the node cannot run the runner
(no such directory, no `mktemp`, no `sh`), it says so, or never says it started, and the
transport runs the commands one channel each, as before.

What the client writes, on stdin, one line each: `ugro_def K TEXT` names command K once per
channel (TEXT is `printf %b` escaped, so a command of many lines fits on one), and
`ugro_run ID W R H T1 K1 T2 K2 ...` runs pass ID: command K1 with T1 seconds, and so on,
once its directory has R KiB free; its records held back for H seconds at most (a `sleep`
without fractions holds none back), and whatever has not ended W seconds after that given
up. What the runner prints, on stdout:

* anything the login shell prints first (a profile's banner), which the reader skips;
* `MARK up` once it is ready for requests, or `MARK none` when it cannot run them (at a pass,
  too, when its directory no longer has room for every cap);
* per command of a pass, in the order they end (those held back, in any order):
  `MARK k status out_bytes err_bytes`, then the
  command's stdout and its stderr. `k` is the command's place in the pass, from 1; `status` is
  the exit status (128 + N for signal N). Each stream is cut at FILE_CAP bytes on the node;
  past its own limit the result is `truncated`;
* `MARK done ID` when the pass ends: every command reported, or its time up.
"""

from __future__ import annotations

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
# Commands a runner keeps named at most (`Requests`): a node check sends about a dozen.
NAMES = 16
# How long a pass holds its records back at most (module docstring), and the share of the
# shortest wait for a result that it may take: the rest is the command's own time.
HOLD_S = 1.0
HOLD_SHARE = 4

# $1 mark, $2 the largest stream (bytes), $3 the room the first pass needs (KiB). Pass ID's
# command k writes its streams to $d/ID.k.o and $d/ID.k.e; when it ends its subshell writes
# the record's header to $d/ID.k.h and `ID k` to the fifo $d/q. The header is one short write,
# so a header file that is not empty is whole. At each fifo line (the watchdog's `ID h` ends
# the hold, `ID w` the pass), the pass finds every command that ended and has not been
# printed; unless it still holds back (some have not ended, and the hold is on), it prints
# their records and, after the last, `done`, copied into one file first when there are more
# than one, so that one `cat` writes them at once and sshd sends them as one packet. A fifo
# line whose record went out before is skipped. The pass ID in each name keeps a command an
# earlier pass gave up on (stuck in the kernel) out of a later pass's files and records. A
# pass runs in a subshell, so that its background jobs end with it rather than pile up in a
# shell that lives for days.
SERVE = """\
m=$1 cap=$2
ugro_room() {
  a=$(df -Pk "$1" 2>/dev/null | { read -r _; read -r _ _ _ a _ && echo "$a"; })
  case $a in ''|*[!0-9]*) return 0 ;; esac
  [ "$a" -ge "$2" ]
}
d=
for t in "$XDG_RUNTIME_DIR" /dev/shm "${TMPDIR:-/tmp}"; do
  [ -d "$t" ] || continue
  ugro_room "$t" "$3" || continue
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
ugro_def() {
  eval "c$1=\\$(printf '%b.' \\"\\$2\\")"
  eval "c$1=\\${c$1%.}"
}
ugro_run() (
  trap - EXIT
  id=$1 w=$2 hs=$4
  ugro_room "$d" "$3" || { echo "$m none"; exit 0; }
  shift 4
  n=0
  p=
  u=
  while [ $# -gt 1 ]; do
    n=$((n + 1))
    u="$u $n"
    eval "c=\\$c$2"
    (
      trap '' XFSZ
      ulimit -f $(( (cap + 511) / 512 ))
      if [ -n "$T" ]; then timeout -k 2 "$1" sh -c "$c"; else sh -c "$c"; fi \\
        </dev/null >"$d/$id.$n.o" 2>"$d/$id.$n.e" 3>&-
      r=$?
      set -- $(cd "$d" && exec wc -c "$id.$n.o" "$id.$n.e")
      printf '%s %s %s %s %s\\n' "$m" "$n" "$r" "$1" "$3" >"$d/$id.$n.h"
      echo "$id $n" >&3
    ) >/dev/null 2>&1 &
    p="$p $!"
    shift 2
  done
  (
    trap 'kill $! 2>/dev/null; exit 0' TERM
    sleep "$hs" 2>/dev/null & wait $!
    echo "$id h" >&3
    sleep "$w" & wait $!
    echo "$id w" >&3
  ) &
  p="$p $!"
  trap '' PIPE
  cd "$d" 2>/dev/null || { kill $p 2>/dev/null; echo "$m none"; exit 0; }
  echo "$m done $id" >"$id.d"
  i=0
  held=1
  while [ $i -lt $n ] && read -r j k <&3; do
    [ "$j" = "$id" ] || continue
    [ "$k" = w ] && break
    [ "$k" = h ] && held=
    f=
    v=
    c=0
    for q in $u; do
      if [ -s "$id.$q.h" ]; then
        f="$f $id.$q.h $id.$q.o $id.$q.e"
        c=$((c + 1))
      else
        v="$v $q"
      fi
    done
    [ -z "$v" ] || [ -z "$held" ] || continue
    [ -n "$f" ] || continue
    u=$v
    i=$((i + c))
    [ -n "$v" ] || f="$f $id.d"
    if { [ $c -gt 1 ] || [ -z "$v" ]; } && cat $f >"$id.a" 2>/dev/null; then
      cat "$id.a" 2>/dev/null
    else
      cat $f 2>/dev/null
    fi
  done
  kill $p 2>/dev/null
  [ $i -lt $n ] && echo "$m done $id" 2>/dev/null
  rm -f "$id".*
)
echo "$m up"
while IFS= read -r l; do eval "$l"; done
"""
# What the node writes of a stream at most: past the larger limit, so that a stream that
# reached the cap reads as cut, in ulimit's 512-byte blocks.
FILE_CAP = (max(STDOUT_LIMIT, STDERR_LIMIT) + 512) // 512 * 512


class _Done:
    """What the reader makes of the line that ends a pass."""


_DONE = _Done()


class Refused(Exception):
    """The node did not start the runner: run the commands one channel each."""


@dataclass(frozen=True, slots=True)
class Job:
    """One command of a batch, with the seconds its check gives it.

    `wait` is how long the least patient caller waits for the result, when that is shorter
    than `timeout` (a check that reads another's command, with a shorter timeout of its own).
    """

    command: str
    timeout: float
    wait: float = math.inf


def watchdog_s(jobs: Sequence[Job]) -> int:
    """Seconds after which the runner gives up on whatever still runs."""
    return max(math.ceil(job.timeout) for job in jobs) + NODE_MARGIN_S + WATCHDOG_MARGIN_S


def hold_s(jobs: Sequence[Job]) -> float:
    """Seconds a pass of `jobs` holds its records back at most (module docstring)."""
    shortest = min((min(job.timeout, job.wait) for job in jobs), default=0.0)
    return round(min(HOLD_S, shortest / HOLD_SHARE), 2)


def room_kib(count: int, cap: int = FILE_CAP) -> int:
    """KiB a pass of `count` commands needs free: both streams at the cap, and the headers."""
    return count * (2 * cap // 1024 + 16)


def opening(count: int, cap: int = FILE_CAP) -> str:
    """The channel's command: SERVE, with a directory that has room for `count` commands.

    `cap` is what the node writes of a stream at most: a multiple of 512, past both limits.
    """
    return shlex.join(["sh", "-c", SERVE, "ugro-batch", MARK, str(cap), str(room_kib(count, cap))])


class Requests:
    """What one channel's runner is told: each command named once, then passes by number.

    A command whose text changes from pass to pass (the kernel-log check's window) is a new
    one each time, so the names are recycled, least recently used first: the runner, open for
    days, holds at most NAMES commands, and so does this.
    """

    def __init__(self, cap: int = FILE_CAP) -> None:
        """A channel that knows no command yet, whose runner caps each stream at `cap`."""
        self._cap = cap
        # Command text -> its name (a number), least recently used first.
        self._known: dict[str, int] = {}
        self._passes = 0

    def next(self, jobs: Sequence[Job]) -> tuple[int, bytes]:
        """The next pass's ID and the lines that run `jobs` as that pass."""
        lines = []
        words = [
            "ugro_run",
            "",
            str(watchdog_s(jobs)),
            str(room_kib(len(jobs), self._cap)),
            format(hold_s(jobs), "g"),
        ]
        wanted = {job.command for job in jobs}
        for job in jobs:
            key = self._known.pop(job.command, None)
            if key is None:
                key = self._name(wanted)
                lines.append(f"ugro_def {key} {shlex.quote(_escaped(job.command))}\n")
            self._known[job.command] = key
            words += [str(math.ceil(job.timeout) + NODE_MARGIN_S), str(key)]
        self._passes += 1
        words[1] = str(self._passes)
        lines.append(" ".join(words) + "\n")
        return self._passes, "".join(lines).encode()

    def _name(self, wanted: set[str]) -> int:
        """A name for a new command: a new number, or the least recently used one's.

        Never the name of a command this pass runs.
        """
        oldest = next(iter(self._known), None)
        if len(self._known) < NAMES or oldest is None or oldest in wanted:
            return max(self._known.values(), default=0) + 1
        return self._known.pop(oldest)


def _escaped(command: str) -> str:
    """`command` on one line, as `printf %b` gives it back."""
    return command.replace("\\", "\\\\").replace("\n", "\\n")


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
