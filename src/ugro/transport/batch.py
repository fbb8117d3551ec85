"""A node's commands on one SSH channel kept open: the shell program that runs them, its requests.

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

* anything the login shell prints first (a profile's banner), which the reader
  (`ugro.transport.batchreader`) skips;
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
from dataclasses import dataclass
from typing import TYPE_CHECKING

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
