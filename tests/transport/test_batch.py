"""A node check's commands on one channel: the runner on a real /bin/sh, and its reader.

The runner is run here through this machine's /bin/sh (dash on Debian), as a node's login
shell would run it; tests/integration/test_batch_sshd.py runs it through real sshd.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import subprocess
from typing import TYPE_CHECKING

import psutil
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ugro.errors import InvalidOutput
from ugro.model import CommandResult
from ugro.transport import batch, batchreader
from ugro.transport.batch import MARK, Job, Requests
from ugro.transport.batchreader import Reader, Refused

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path
    from typing import IO

LIMITS = (1000, 100)
#: What the node writes of a stream at most, in these tests: past both limits.
CAP = 1024


def record(index: int, stdout: bytes = b"", stderr: bytes = b"", status: str = "0") -> bytes:
    """One record as the runner prints it, for command `index` (from 1)."""
    return f"{MARK} {index} {status} {len(stdout)} {len(stderr)}\n".encode() + stdout + stderr


#: The line the runner prints once it is ready for requests.
UP = f"{MARK} up\n".encode()


def done(pass_id: int) -> bytes:
    """The line that ends pass `pass_id`."""
    return f"{MARK} done {pass_id}\n".encode()


def passing(count: int, limits: tuple[int, int] = LIMITS) -> Reader:
    """A reader that expects pass 1, of `count` commands."""
    reader = Reader(limits, CAP)
    reader.begin(1, count)
    return reader


def read_all(data: bytes, count: int, *, chunk: int | None = None) -> dict[int, CommandResult]:
    """Feed `data` to a reader of pass 1 in `chunk`-byte pieces (all at once when None)."""
    reader = passing(count)
    results: dict[int, CommandResult] = {}
    step = chunk or max(1, len(data))
    for start in range(0, len(data), step):
        results.update(reader.feed(data[start : start + step]))
    return results


def request(*passes: list[Job]) -> bytes:
    """What the client writes to a new runner to run `passes` in turn."""
    requests = Requests(CAP)
    return b"".join(requests.next(jobs)[1] for jobs in passes)


def run_runner(
    jobs: list[Job], env: dict[str, str] | None = None, prefix: str = ""
) -> subprocess.CompletedProcess[bytes]:
    """Run one pass of the runner through /bin/sh here, as a node's login shell would."""
    return subprocess.run(
        ["/bin/sh", "-c", prefix + batch.opening(len(jobs), CAP)],
        input=request(jobs),
        capture_output=True,
        env=env if env is not None else {"PATH": os.environ["PATH"]},
        timeout=60,
        check=False,
    )


# --- the reader ----------------------------------------------------------------------------


def test_records_in_any_order_and_any_split() -> None:
    """Records in the order commands end, however the stream is split, give one result each."""
    data = (
        UP
        + record(2, b"two\n")
        + record(1, b"one\n", b"warning\n", status="3")
        + record(3, b"", b"")
    )
    whole = read_all(data, 3)
    assert whole == {
        0: CommandResult(3, "one\n", "warning\n"),
        1: CommandResult(0, "two\n", ""),
        2: CommandResult(0, "", ""),
    }
    assert read_all(data, 3, chunk=1) == whole
    assert read_all(data, 3, chunk=7) == whole


def test_a_login_banner_before_the_runner_is_skipped() -> None:
    """A profile's banner (escapes, a line that starts like the mark) is not a record."""
    banner = b"Welcome to gpu07\n\x1b[31mmaintenance on Friday\x1b[0m\n" + MARK.encode() + b"x\n"
    assert read_all(banner + UP + record(1, b"ok\n"), 1) == {0: CommandResult(0, "ok\n")}


def test_a_node_that_cannot_run_it_says_so_or_never_starts() -> None:
    """`none`, or an end before `ready`: Refused, so the transport runs commands one by one."""
    with pytest.raises(Refused):
        Reader().feed(f"banner\n{MARK} none\n".encode())
    reader = Reader()
    reader.feed(b"sh: 1: mktemp: not found\n")
    with pytest.raises(Refused):
        reader.end()


def test_the_end_of_a_started_stream_is_not_a_refusal() -> None:
    """After `up`, an early end leaves the missing commands to their callers' timeouts."""
    reader = passing(2)
    assert reader.feed(UP + record(1, b"x")) == [(0, CommandResult(0, "x"))]
    reader.end()
    assert not reader.between
    assert reader.reported == {0}


def test_output_past_its_limit_is_truncated() -> None:
    """A stream past its limit (the node cuts it at the cap) is truncated, like one channel."""
    result = read_all(UP + record(1, b"y" * CAP, b"e" * (LIMITS[1] + 1), status="1"), 1)[0]
    assert result.truncated
    assert result.exit_status is None
    assert (len(result.stdout), len(result.stderr)) == LIMITS
    # A shell that counts ulimit's blocks in KiB lets twice the cap through: still just cut.
    assert read_all(UP + record(1, b"y" * 2 * CAP), 1)[0].truncated


def test_a_command_killed_by_a_signal_is_named_like_sshd_does() -> None:
    """128 + N is signal N, as sshd would name it; `-` is no status."""
    result = read_all(UP + record(1, status="139"), 1)[0]
    assert (result.exit_status, result.exit_signal) == (None, "SEGV")
    assert read_all(UP + record(1, status="-"), 1)[0].exit_status is None
    assert read_all(UP + record(1, status="255"), 1)[0].exit_status == 255


@pytest.mark.parametrize(
    "header",
    [
        f"{MARK} 1 0 5\n",  # a field missing
        f"{MARK} one 0 0 0\n",
        f"{MARK} 0 0 0 0\n",  # index out of range
        f"{MARK} 3 0 0 0\n",
        f"{MARK} 1 0 -1 0\n",
        f"{MARK} 1 0 {2 * CAP + 1} 0\n",  # more than any shell's ulimit lets through
        f"{MARK} 1 0 0 {10**400}\n",
        "ugro-batch-2 1 0 0 0\n",
        f"{MARK} 1 0 0 0 extra\n",
        f"{MARK} \u0661 0 0 0\n",  # an Arabic-Indic digit one: int() takes it, ascii does not
        "x" * 300,
    ],
)
def test_garbled_headers_are_invalid_output(header: str) -> None:
    """A header the runner would not print is the node's fault, said as InvalidOutput."""
    with pytest.raises(InvalidOutput):
        read_all(UP + header.encode(errors="surrogateescape"), 2)


def test_a_command_reported_twice_is_invalid_output() -> None:
    """A second record for one command is not believed."""
    with pytest.raises(InvalidOutput):
        read_all(UP + record(1) + record(1), 2)


def test_an_endless_banner_is_refused_within_bounds() -> None:
    """A login shell that never stops talking is cut at PREAMBLE_LIMIT, lines or no lines."""
    reader = Reader()
    chatter = b"welcome\n" * 1000
    for _ in range(batchreader.PREAMBLE_LIMIT // len(chatter)):
        reader.feed(chatter)
    with pytest.raises(InvalidOutput, match="login shell"):
        reader.feed(chatter)
    with pytest.raises(InvalidOutput, match="login shell"):
        Reader().feed(b"w" * (batchreader.PREAMBLE_LIMIT + 2))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=20), st.booleans())
def test_whatever_arrives_the_reader_raises_only_its_own_errors_and_holds_little(
    pieces: list[bytes], started: bool
) -> None:
    """Any bytes: the reader raises InvalidOutput or Refused at most, and holds one record."""
    reader = passing(3)
    try:
        if started:
            reader.feed(UP)
        for piece in pieces:
            reader.feed(piece)
            held = len(reader._buffer)  # noqa: SLF001 - the bound is the point of the test
            assert held <= 4 * CAP + batchreader.PREAMBLE_LIMIT + len(piece)
        reader.end()
    except (InvalidOutput, Refused):
        pass


def test_undecodable_output_is_replaced_not_raised() -> None:
    """Bytes that are not UTF-8 become replacement characters."""
    result = read_all(UP + record(1, b"\xff\xfe ok\n"), 1)[0]
    assert result.stdout == "\ufffd\ufffd ok\n"


def test_passes_follow_one_another_on_one_stream() -> None:
    """A pass's results are in at its last record; its `done` may come after the next began."""
    reader = Reader(LIMITS, CAP)
    reader.begin(1, 2)
    assert reader.feed(UP + record(2, b"b") + record(1, b"a")) == [
        (1, CommandResult(0, "b")),
        (0, CommandResult(0, "a")),
    ]
    assert reader.between
    reader.begin(2, 1)
    assert not reader.between
    assert reader.feed(done(1) + record(1, b"c")) == [(0, CommandResult(0, "c"))]
    assert reader.feed(done(2)) == []


def test_a_pass_given_up_on_ends_at_its_done_line() -> None:
    """The watchdog's `done` ends a pass whose hung command never reported."""
    reader = passing(2)
    assert reader.feed(UP + record(1, b"a")) == [(0, CommandResult(0, "a"))]
    assert not reader.between
    assert reader.feed(done(1)) == []
    assert reader.between
    assert reader.reported == {0}


@pytest.mark.parametrize(
    "stream",
    [
        UP + record(1) + done(1) + b"more\n",  # output between passes
        UP + done(2),  # the end of a pass that was not asked for
        UP + record(1) + done(1) + done(1),
        UP + record(1) + record(1),  # a record past the pass's end
    ],
)
def test_what_does_not_belong_to_a_pass_is_invalid_output(stream: bytes) -> None:
    """Nothing may come between passes, nor a record or `done` of no pass."""
    with pytest.raises(InvalidOutput):
        passing(1).feed(stream)


def test_a_pass_on_a_full_directory_is_refused() -> None:
    """`none` at a pass (no room any more) is Refused, as at the start."""
    reader = passing(1)
    reader.feed(UP + record(1) + done(1))
    reader.begin(2, 1)
    with pytest.raises(Refused):
        reader.feed(f"{MARK} none\n".encode())


def test_each_command_is_named_once_per_runner() -> None:
    """A later pass names commands by number; a new command is named when it first comes."""
    requests = Requests()
    first = requests.next([Job("echo a", 5), Job("echo b", 10)])
    second = requests.next([Job("echo b", 10), Job("echo c", 5)])
    room = batch.room_kib(2)
    assert first == (
        1,
        f"ugro_def 1 'echo a'\nugro_def 2 'echo b'\nugro_run 1 15 {room} 1 6 1 11 2\n".encode(),
    )
    assert second == (2, f"ugro_def 3 'echo c'\nugro_run 2 15 {room} 1 11 2 6 3\n".encode())


# --- the runner on a real shell ------------------------------------------------------------


def parse(completed: subprocess.CompletedProcess[bytes], count: int) -> dict[int, CommandResult]:
    """Every result in what a runner that ran one pass printed."""
    reader = passing(count)
    found = dict(reader.feed(completed.stdout))
    reader.end()
    return found


def test_the_runner_runs_every_command_and_reports_each() -> None:
    """Exit status, both streams, quoting and a signal come back per command."""
    jobs = [
        Job("echo one; echo err >&2; exit 3", 5),
        Job("printf 'a b\\n'; printf '%s\\n' \"$0\"", 5),
        Job("kill -SEGV $$", 5),
        Job("cat /proc/loadavg >/dev/null && echo 'it'\"'\"'s quoted'", 5),
    ]
    got = parse(run_runner(jobs), len(jobs))
    assert got[0] == CommandResult(3, "one\n", "err\n")
    assert got[1].stdout == "a b\nsh\n"
    assert got[2].exit_signal == "SEGV"
    assert got[3].stdout == "it's quoted\n"


def test_a_command_that_changes_at_every_pass_recycles_a_bounded_set_of_names() -> None:
    """The kernel log's window makes a new command each pass: names are reused, oldest first.

    Through a real runner, each pass still runs its own command's text.
    """
    passes = [[Job("echo same", 5), Job(f"echo {i}", 5)] for i in range(batch.NAMES + 8)]
    requests = Requests(CAP)
    sent = [requests.next(jobs)[1] for jobs in passes]
    names = [int(n) for text in sent for n in re.findall(rb"ugro_def (\d+)", text)]
    assert max(names) <= batch.NAMES
    assert sum(b"'echo same'" in text for text in sent) == 1
    completed = subprocess.run(
        ["/bin/sh", "-c", batch.opening(2, CAP)],
        input=b"".join(sent),
        capture_output=True,
        env={"PATH": os.environ["PATH"]},
        timeout=60,
        check=False,
    )
    reader = Reader(LIMITS, CAP)
    for pass_id, jobs in enumerate(passes, 1):
        reader.begin(pass_id, len(jobs))
        end = completed.stdout.index(done(pass_id)) + len(done(pass_id))
        got = dict(reader.feed(completed.stdout[:end]))
        completed.stdout = completed.stdout[end:]
        assert got == {0: CommandResult(0, "same\n"), 1: CommandResult(0, f"{pass_id - 1}\n")}


@pytest.mark.parametrize("shell", ["dash", "bash"])
def test_one_runner_runs_pass_after_pass(shell: str, tmp_path: Path) -> None:
    """Passes run in turn on one runner, each command sent once, each pass its own results.

    With dash as `sh` (Debian, Ubuntu) and bash as `sh` (RHEL, Fedora), which reads its
    input differently: a byte at a time from a pipe.
    """
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    found = shutil.which(shell)
    assert found is not None
    (bin_dir / "sh").symlink_to(found)
    first = [Job("echo a; echo err >&2", 5), Job("printf '%s' \"$(printf 'b\\nc')\"", 5)]
    second = [first[1], Job("exit 7", 5)]
    completed = subprocess.run(
        [str(bin_dir / "sh"), "-c", batch.opening(2, CAP)],
        input=request(first, second),
        capture_output=True,
        env={"PATH": f"{bin_dir}:{os.environ['PATH']}"},
        timeout=60,
        check=False,
    )
    reader = passing(2)
    got = dict(reader.feed(completed.stdout[: completed.stdout.index(done(1)) + len(done(1))]))
    assert got == {0: CommandResult(0, "a\n", "err\n"), 1: CommandResult(0, "b\nc")}
    reader.begin(2, 2)
    rest = completed.stdout[completed.stdout.index(done(1)) + len(done(1)) :]
    assert dict(reader.feed(rest)) == {0: CommandResult(0, "b\nc"), 1: CommandResult(7, "")}
    assert reader.between
    assert completed.stderr == b""


@settings(max_examples=25, deadline=None)
@given(st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00")))
@example("it's 100% \\c done\\n \\\\ \\0101\nline two\\")
def test_a_command_reaches_the_node_as_it_was_written(text: str) -> None:
    """Quotes, backslashes, escapes that printf knows, newlines and `%` all survive."""
    completed = run_runner([Job(shlex.join(["printf", "%s", text]), 5)])
    assert parse(completed, 1)[0] == CommandResult(0, text)


def test_a_directory_that_fills_up_is_refused_at_the_next_pass(tmp_path: Path) -> None:
    """The room for every cap is checked again at each pass: `none` once it is gone."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # A df whose answer drops to nothing free after the runner chose its directory.
    (bin_dir / "df").write_text(
        "#!/bin/sh\n"
        f"[ -e {tmp_path}/full ] && a=0 || a=99999999\n"
        f"touch {tmp_path}/full\n"
        'echo "Filesystem 1024-blocks Used Available Capacity Mounted on"\n'
        'echo "tmpfs 99999999 0 $a 0% /x"\n'
    )
    (bin_dir / "df").chmod(0o755)
    completed = subprocess.run(
        ["/bin/sh", "-c", batch.opening(1, CAP)],
        input=request([Job("echo a", 5)]),
        capture_output=True,
        env={"PATH": f"{bin_dir}:{os.environ['PATH']}", "XDG_RUNTIME_DIR": str(tmp_path)},
        timeout=60,
        check=False,
    )
    with pytest.raises(Refused):
        parse(completed, 1)


def test_a_login_banner_does_not_disturb_the_runner() -> None:
    """A shell that prints before the runner starts changes no result."""
    completed = run_runner([Job("echo a", 5), Job("echo b", 5)], prefix="echo 'Welcome!'; ")
    assert completed.stdout.startswith(b"Welcome!\n")
    assert [r.stdout for _, r in sorted(parse(completed, 2).items())] == ["a\n", "b\n"]


def test_output_past_the_limit_is_cut_on_the_node() -> None:
    """A flooding command is cut by `ulimit -f` on the node: what crosses the wire is bounded."""
    jobs = [Job("yes | head -c 5000000", 5), Job("yes >&2", 5), Job("echo fine", 5)]
    completed = run_runner(jobs)
    got = parse(completed, 3)
    assert got[0].truncated
    assert got[1].truncated
    assert got[2] == CommandResult(0, "fine\n")
    assert len(completed.stdout) < 3 * 2 * CAP


@contextlib.contextmanager
def serving(jobs: list[Job]) -> Iterator[tuple[IO[bytes], IO[bytes]]]:
    """A runner on /bin/sh here, sent a pass of `jobs`: its stdin and stdout; it must exit 0."""
    with subprocess.Popen(
        ["/bin/sh", "-c", batch.opening(len(jobs), CAP)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={"PATH": os.environ["PATH"]},
    ) as process:
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.write(request(jobs))
        process.stdin.flush()
        yield process.stdin, process.stdout
        process.stdin.close()
        assert process.wait(timeout=30) == 0


def test_a_hung_command_reports_last_and_the_others_come_first() -> None:
    """Once the hold is over, nothing waits behind the hung command."""
    with serving([Job("sleep 30", 1), Job("echo quick", 5)]) as (stdin, stdout):
        stdin.close()
        reader = passing(2)
        first: list[tuple[int, CommandResult]] = []
        while not first:
            first = reader.feed(os.read(stdout.fileno(), 4096))
        assert first == [(1, CommandResult(0, "quick\n"))]
        rest = stdout.read()
    # The node's own `timeout` stopped it a second after ugro's: 124.
    assert reader.feed(rest) == [(0, CommandResult(124, "", ""))]


def test_records_that_end_within_the_hold_come_in_one_write() -> None:
    """Commands that all end within the hold: their records and `done` come at once, together.

    One write of less than PIPE_BUF, so one read takes all of it; through sshd, one packet.
    """
    jobs = [Job("echo a", 5), Job("sleep 0.3; echo b", 5), Job("echo c >&2", 5)]
    assert batch.hold_s(jobs) == 1
    with serving(jobs) as (stdin, stdout):
        assert stdout.readline() == UP
        reader = passing(3)
        reader.feed(UP)
        got = reader.feed(os.read(stdout.fileno(), 4096))
        assert reader.between
        stdin.close()
    assert sorted(got) == [
        (0, CommandResult(0, "a\n")),
        (1, CommandResult(0, "b\n")),
        (2, CommandResult(0, "", "c\n")),
    ]


def test_a_node_whose_sleep_takes_whole_seconds_holds_nothing_back(tmp_path: Path) -> None:
    """A `sleep` that refuses fractions ends the hold at once: records come as commands end."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    sleep = shutil.which("sleep")
    (bin_dir / "sleep").write_text(
        "#!/bin/sh\n"
        "case $1 in *.*) echo \"sleep: invalid time interval '$1'\" >&2; exit 1 ;; esac\n"
        f'exec {sleep} "$@"\n'
    )
    (bin_dir / "sleep").chmod(0o755)
    jobs = [Job("echo a", 5), Job("echo b", 5), Job("sleep 1; echo c", 5)]
    assert batch.hold_s(jobs) == 1
    completed = run_runner(jobs, env={"PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert [r.stdout for _, r in sorted(parse(completed, 3).items())] == ["a\n", "b\n", "c\n"]
    assert completed.stderr == b""


@pytest.mark.parametrize(
    ("jobs", "hold"),
    [
        ([Job("a", 30), Job("b", 10)], 1),
        ([Job("a", 30), Job("b", 10, wait=2)], 0.5),
        ([Job("a", 1)], 0.25),
        ([Job("a", 0.01)], 0),
    ],
)
def test_the_hold_is_a_quarter_of_the_shortest_wait_a_second_at_most(
    jobs: list[Job], hold: float
) -> None:
    """A check that waits less than a command's timeout (it reads another's) sets the hold."""
    assert batch.hold_s(jobs) == hold


def test_without_a_temporary_directory_the_runner_says_none(tmp_path: Path) -> None:
    """No mktemp (or nowhere to write): `none`, and the transport falls back."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "rm", "mkfifo"):
        path = shutil.which(tool)
        assert path is not None
        (bin_dir / tool).symlink_to(path)
    completed = run_runner([Job("echo a", 5), Job("echo b", 5)], env={"PATH": str(bin_dir)})
    with pytest.raises(Refused):
        parse(completed, 2)


def test_the_runner_cleans_up_after_itself_even_when_nobody_reads(tmp_path: Path) -> None:
    """A client that goes away early leaves no directory behind, and no error chatter."""
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    env = {"PATH": os.environ["PATH"], "XDG_RUNTIME_DIR": str(runtime)}
    with subprocess.Popen(
        ["/bin/sh", "-c", batch.opening(2, CAP)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    ) as process:
        assert process.stdin is not None
        assert process.stdout is not None
        assert process.stderr is not None
        process.stdin.write(request([Job("echo a", 5), Job("sleep 1; echo b", 5)]))
        process.stdin.close()
        assert process.stdout.readline() == UP
        (made,) = runtime.iterdir()  # its private directory, in $XDG_RUNTIME_DIR first
        assert made.stat().st_mode & 0o077 == 0
        process.stdout.close()  # the client went away
        assert process.wait(timeout=30) == 0
        assert list(runtime.iterdir()) == []
        assert process.stderr.read() == b""


@pytest.mark.integration  # slow: it waits out the watchdog
def test_without_timeout_the_watchdog_ends_the_runner(tmp_path: Path) -> None:
    """A node with no `timeout`: a command that ignores SIGTERM is left behind by the watchdog."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "mktemp", "mkfifo", "rm", "head", "cat", "wc", "sleep", "kill"):
        path = shutil.which(tool)
        assert path is not None
        (bin_dir / tool).symlink_to(path)
    jobs = [Job("echo a", 1), Job(f"trap '' TERM; exec {bin_dir}/sleep 3600", 1)]
    try:
        with subprocess.Popen(
            ["/bin/sh", "-c", batch.opening(2, CAP)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={"PATH": str(bin_dir), "XDG_RUNTIME_DIR": str(tmp_path)},
        ) as process:
            assert process.stdin is not None
            assert process.stdout is not None
            process.stdin.write(request(jobs))
            process.stdin.close()
            reader = passing(2)
            got = reader.feed(process.stdout.read())
            assert process.wait(timeout=30) == 0
        assert got == [(0, CommandResult(0, "a\n"))]
        assert sorted(p.name for p in tmp_path.iterdir()) == ["bin"]
    finally:
        for stuck in psutil.process_iter(["cmdline"]):
            if stuck.info["cmdline"] == [f"{bin_dir}/sleep", "3600"]:
                stuck.kill()


@pytest.mark.integration  # needs root, to mount a tmpfs
def test_a_directory_too_full_for_every_cap_is_passed_over(tmp_path: Path) -> None:
    """A tmpfs too small for every command's cap is passed over for the next candidate.

    64 KiB as $XDG_RUNTIME_DIR cannot hold two capped outputs: the runner uses /dev/shm, so
    no output is lost to a full disk.
    """
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    subprocess.run(
        ["/usr/bin/mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(runtime)], check=True
    )
    try:
        jobs = [Job("head -c 200000 /dev/zero | tr '\\0' x", 5), Job("echo fits", 5)]
        completed = subprocess.run(
            ["/bin/sh", "-c", batch.opening(len(jobs))],
            input=request(jobs),
            capture_output=True,
            env={"PATH": os.environ["PATH"], "XDG_RUNTIME_DIR": str(runtime)},
            timeout=60,
            check=False,
        )
        assert list(runtime.iterdir()) == []
    finally:
        subprocess.run(["/usr/bin/umount", str(runtime)], check=True)
    reader = Reader()
    reader.begin(1, 2)
    got = dict(reader.feed(completed.stdout))
    assert got[0] == CommandResult(0, "x" * 200000)
    assert got[1] == CommandResult(0, "fits\n")
