"""A node check's commands on one channel: the runner on a real /bin/sh, and its reader.

The runner is run here through this machine's /bin/sh (dash on Debian), as a node's login
shell would run it; tests/integration/test_batch_sshd.py runs it through real sshd.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import TYPE_CHECKING

import psutil
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ugro.errors import InvalidOutput
from ugro.model import CommandResult
from ugro.transport import batch
from ugro.transport.batch import MARK, Job, Reader, Refused

if TYPE_CHECKING:
    from pathlib import Path

LIMITS = (1000, 100)
#: What the node writes of a stream at most, in these tests: past both limits.
CAP = 1024


def record(index: int, stdout: bytes = b"", stderr: bytes = b"", status: str = "0") -> bytes:
    """One record as the runner prints it, for command `index` (from 1)."""
    return f"{MARK} {index} {status} {len(stdout)} {len(stderr)}\n".encode() + stdout + stderr


def ready(count: int) -> bytes:
    """The line the runner prints once every command has started."""
    return f"{MARK} ready {count}\n".encode()


def read_all(data: bytes, count: int, *, chunk: int | None = None) -> dict[int, CommandResult]:
    """Feed `data` to a reader in `chunk`-byte pieces (all at once when None)."""
    reader = Reader(count, LIMITS, CAP)
    results: dict[int, CommandResult] = {}
    step = chunk or max(1, len(data))
    for start in range(0, len(data), step):
        results.update(reader.feed(data[start : start + step]))
    return results


def run_runner(
    jobs: list[Job], env: dict[str, str] | None = None, prefix: str = ""
) -> subprocess.CompletedProcess[bytes]:
    """Run the batch through /bin/sh here, as a node's login shell would."""
    return subprocess.run(
        ["/bin/sh", "-c", prefix + batch.command(jobs, CAP)],
        capture_output=True,
        env=env if env is not None else {"PATH": os.environ["PATH"]},
        timeout=60,
        check=False,
    )


# --- the reader ----------------------------------------------------------------------------


def test_records_in_any_order_and_any_split() -> None:
    """Records in the order commands end, however the stream is split, give one result each."""
    data = (
        ready(3)
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
    assert read_all(banner + ready(1) + record(1, b"ok\n"), 1) == {0: CommandResult(0, "ok\n")}


def test_a_node_that_cannot_run_it_says_so_or_never_starts() -> None:
    """`none`, or an end before `ready`: Refused, so the transport runs commands one by one."""
    with pytest.raises(Refused):
        Reader(2).feed(f"banner\n{MARK} none\n".encode())
    reader = Reader(2)
    reader.feed(b"sh: 1: mktemp: not found\n")
    with pytest.raises(Refused):
        reader.end()


def test_the_end_of_a_started_stream_is_not_a_refusal() -> None:
    """After `ready`, an early end leaves the missing commands to their callers' timeouts."""
    reader = Reader(2, LIMITS, CAP)
    assert reader.feed(ready(2) + record(1, b"x")) == [(0, CommandResult(0, "x"))]
    reader.end()
    assert not reader.finished
    assert reader.reported == {0}


def test_output_past_its_limit_is_truncated() -> None:
    """A stream past its limit (the node cuts it at the cap) is truncated, like one channel."""
    result = read_all(ready(1) + record(1, b"y" * CAP, b"e" * (LIMITS[1] + 1), status="1"), 1)[0]
    assert result.truncated
    assert result.exit_status is None
    assert (len(result.stdout), len(result.stderr)) == LIMITS
    # A shell that counts ulimit's blocks in KiB lets twice the cap through: still just cut.
    assert read_all(ready(1) + record(1, b"y" * 2 * CAP), 1)[0].truncated


def test_a_command_killed_by_a_signal_is_named_like_sshd_does() -> None:
    """128 + N is signal N, as sshd would name it; `-` is no status."""
    result = read_all(ready(1) + record(1, status="139"), 1)[0]
    assert (result.exit_status, result.exit_signal) == (None, "SEGV")
    assert read_all(ready(1) + record(1, status="-"), 1)[0].exit_status is None
    assert read_all(ready(1) + record(1, status="255"), 1)[0].exit_status == 255


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
        read_all(ready(2) + header.encode(errors="surrogateescape"), 2)


def test_a_command_reported_twice_is_invalid_output() -> None:
    """A second record for one command is not believed."""
    with pytest.raises(InvalidOutput):
        read_all(ready(2) + record(1) + record(1), 2)


def test_an_endless_banner_is_refused_within_bounds() -> None:
    """A login shell that never stops talking is cut at PREAMBLE_LIMIT, lines or no lines."""
    reader = Reader(1)
    chatter = b"welcome\n" * 1000
    for _ in range(batch.PREAMBLE_LIMIT // len(chatter)):
        reader.feed(chatter)
    with pytest.raises(InvalidOutput, match="login shell"):
        reader.feed(chatter)
    with pytest.raises(InvalidOutput, match="login shell"):
        Reader(1).feed(b"w" * (batch.PREAMBLE_LIMIT + 2))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=20), st.booleans())
def test_whatever_arrives_the_reader_raises_only_its_own_errors_and_holds_little(
    pieces: list[bytes], started: bool
) -> None:
    """Any bytes: the reader raises InvalidOutput or Refused at most, and holds one record."""
    reader = Reader(3, LIMITS, CAP)
    try:
        if started:
            reader.feed(ready(3))
        for piece in pieces:
            reader.feed(piece)
            held = len(reader._buffer)  # noqa: SLF001 - the bound is the point of the test
            assert held <= 4 * CAP + batch.PREAMBLE_LIMIT + len(piece)
        reader.end()
    except (InvalidOutput, Refused):
        pass


def test_undecodable_output_is_replaced_not_raised() -> None:
    """Bytes that are not UTF-8 become replacement characters."""
    result = read_all(ready(1) + record(1, b"\xff\xfe ok\n"), 1)[0]
    assert result.stdout == "\ufffd\ufffd ok\n"


# --- the runner on a real shell ------------------------------------------------------------


def parse(completed: subprocess.CompletedProcess[bytes], count: int) -> dict[int, CommandResult]:
    """Every result in what a finished runner printed."""
    reader = Reader(count, LIMITS, CAP)
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


def test_a_hung_command_reports_last_and_the_others_come_first() -> None:
    """Records come in the order commands end: nothing waits behind the hung one."""
    jobs = [Job("sleep 30", 1), Job("echo quick", 5)]
    with subprocess.Popen(
        ["/bin/sh", "-c", batch.command(jobs, CAP)],
        stdout=subprocess.PIPE,
        env={"PATH": os.environ["PATH"]},
    ) as process:
        assert process.stdout is not None
        reader = Reader(2, LIMITS, CAP)
        first: list[tuple[int, CommandResult]] = []
        while not first:
            first = reader.feed(os.read(process.stdout.fileno(), 4096))
        assert first == [(1, CommandResult(0, "quick\n"))]
        rest = process.stdout.read()
        assert process.wait(timeout=30) == 0
    # The node's own `timeout` stopped it a second after ugro's: 124.
    assert reader.feed(rest) == [(0, CommandResult(124, "", ""))]


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
        ["/bin/sh", "-c", batch.command([Job("echo a", 5), Job("sleep 1; echo b", 5)], CAP)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    ) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        assert process.stdout.readline() == ready(2)
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
            ["/bin/sh", "-c", batch.command(jobs, CAP)],
            stdout=subprocess.PIPE,
            env={"PATH": str(bin_dir), "XDG_RUNTIME_DIR": str(tmp_path)},
        ) as process:
            assert process.stdout is not None
            reader = Reader(2, LIMITS, CAP)
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
            ["/bin/sh", "-c", batch.command(jobs)],
            capture_output=True,
            env={"PATH": os.environ["PATH"], "XDG_RUNTIME_DIR": str(runtime)},
            timeout=60,
            check=False,
        )
        assert list(runtime.iterdir()) == []
    finally:
        subprocess.run(["/usr/bin/umount", str(runtime)], check=True)
    got = dict(Reader(2).feed(completed.stdout))
    assert got[0] == CommandResult(0, "x" * 200000)
    assert got[1] == CommandResult(0, "fits\n")
