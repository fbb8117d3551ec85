"""Output within bounds: local programs and the local transport keep at most the limits."""

from __future__ import annotations

import asyncio
import os
import time
import tracemalloc
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ugro import subprocesses
from ugro.errors import CommandTimeout
from ugro.subprocesses import STDERR_LIMIT, STDOUT_LIMIT, read_bounded
from ugro.transport.local import LocalSession

if TYPE_CHECKING:
    from ugro.model import CommandResult

#: 100 MB, as a runaway nvidia-smi printed in the issue: it must cost its first megabyte only.
FLOOD_BYTES = 100_000_000


def local(command: str, timeout: float = 10) -> CommandResult:
    """`command`'s result through the local transport."""
    return asyncio.run(LocalSession().run(command, timeout=timeout))


def test_a_flood_is_cut_at_the_limit_and_stopped() -> None:
    """100 MB on stdout: the first STDOUT_LIMIT bytes come back, flagged, in well under a second."""
    start = time.monotonic()
    result = local(f"yes 0123456789 | head -c {FLOOD_BYTES}")
    assert time.monotonic() - start < 2
    assert result.truncated
    assert result.exit_status is None
    assert len(result.stdout) == STDOUT_LIMIT
    assert result.stdout.startswith("0123456789\n")


def test_a_flood_costs_no_more_memory_than_the_limit() -> None:
    """Reading a 100 MB flood holds a few megabytes at most, not the flood.

    Measured by tracemalloc's peak over the read alone: the process's own peak RSS is a
    high-water mark that a long test run has usually passed already, hiding any growth.
    """
    tracemalloc.start()
    try:
        local(f"head -c {FLOOD_BYTES} /dev/zero")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20


def test_stderr_has_its_own_limit() -> None:
    """A flood of errors is cut at STDERR_LIMIT; what stdout said before it is kept."""
    result = local(f"echo first; head -c {2 * STDERR_LIMIT} /dev/zero >&2; sleep 5")
    assert result.truncated
    assert result.stdout == "first\n"
    assert len(result.stderr) == STDERR_LIMIT


def test_output_of_exactly_the_limit_is_whole() -> None:
    """STDOUT_LIMIT bytes and an exit status: not truncated, nothing lost."""
    result = local(f"head -c {STDOUT_LIMIT} /dev/zero; exit 3")
    assert not result.truncated
    assert (result.exit_status, len(result.stdout)) == (3, STDOUT_LIMIT)


def test_ordinary_output_is_untouched() -> None:
    """Streams and exit status of a small command come back exactly."""
    result = local("echo out; echo err >&2; exit 7")
    assert (result.exit_status, result.stdout, result.stderr, result.truncated) == (
        7,
        "out\n",
        "err\n",
        False,
    )


def test_the_timeout_still_applies_to_a_slow_trickle() -> None:
    """A command that prints a little forever times out; nothing of it is left running."""
    with pytest.raises(CommandTimeout):
        local("while :; do echo tick; sleep 0.05; done", timeout=0.5)


def test_a_stopped_flood_leaves_no_process(tmp_path: Path) -> None:
    """The whole process group goes: a child that would print forever is killed, not orphaned."""
    pidfile = tmp_path / "pid"
    local(f"sh -c 'echo $$ > {pidfile}; exec yes' ; sleep 30", timeout=10)
    pid = int(pidfile.read_text(encoding="utf-8"))
    deadline = time.monotonic() + 5
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not Path(f"/proc/{pid}").exists()


def test_stdin_is_fed_while_output_is_read() -> None:
    """A program that echoes a large stdin back gets all of it, and its output comes back."""
    data = os.urandom(200_000)

    async def main() -> subprocesses.Completed:
        return await subprocesses.run(["cat"], stdin=data, timeout=10)

    done = asyncio.run(main())
    assert (done.returncode, done.stdout, done.truncated) == (0, data, False)


class Chunks:
    """A stream that hands out `chunks` one read at a time, then ends."""

    def __init__(self, *chunks: bytes) -> None:
        """Serve `chunks` in order."""
        self.chunks = list(chunks)

    async def read(self, n: int = -1) -> bytes:
        """The next chunk (never more than `n` bytes are asked of a real stream)."""
        del n
        return self.chunks.pop(0) if self.chunks else b""


def test_read_bounded_keeps_exactly_the_limit() -> None:
    """A chunk that crosses the limit is cut at it, and the output is flagged truncated."""
    stdout = Chunks(b"abc", b"defgh", b"never read")
    output = asyncio.run(read_bounded(stdout, Chunks(), limits=(5, 5)))
    assert (output.stdout, output.stderr, output.truncated) == (b"abcde", b"", True)
