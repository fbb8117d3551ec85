"""Running a local program with a deadline, reading what a program prints within bounds.

`read_bounded` serves the SSH transport as well: a remote command's streams are read the same
way, so whatever a node prints, ugro holds at most STDOUT_LIMIT + STDERR_LIMIT of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from dataclasses import dataclass
from typing import Protocol

# What a program may print before it is stopped (README, "What a node may send"). The largest
# legitimate outputs stay far below: nvidia-smi's query for 16 GPUs is 4 KiB, the compute
# processes of a full node a few KiB, `ps -e` 40 bytes a process (25,000 processes fit), the
# Xid lines of a kernel log some 200 bytes each. A node that prints more is broken or hostile
# and its output cannot be judged. stderr only ever feeds a message.
STDOUT_LIMIT = 1024 * 1024
STDERR_LIMIT = 64 * 1024
# Bytes asked of a stream at a time: large enough that a megabyte is a few dozen reads.
CHUNK = 64 * 1024


class Stream(Protocol):
    """A byte stream read in pieces: asyncio's StreamReader, asyncssh's SSHReader."""

    async def read(self, n: int = -1) -> bytes:
        """Up to `n` bytes; b"" at the end of the stream."""
        ...


@dataclass(frozen=True, slots=True)
class Output:
    """What a program printed, each stream cut at its limit."""

    stdout: bytes
    stderr: bytes
    # A stream passed its limit: reading stopped there and the program must be stopped.
    truncated: bool


async def _collect(stream: Stream, limit: int, kept: bytearray) -> bool:
    """Append what `stream` says to `kept`, at most `limit` bytes; True when it said more."""
    while chunk := await stream.read(CHUNK):
        room = limit - len(kept)
        kept += chunk[:room]
        if len(chunk) > room:
            return True
    return False


async def read_bounded(
    stdout: Stream, stderr: Stream, limits: tuple[int, int] = (STDOUT_LIMIT, STDERR_LIMIT)
) -> Output:
    """Read both streams to their end, or until one of them passes its limit.

    Both are read at once: a program (or an SSH channel, whose window the two share) blocks
    when the stream nobody reads fills up.
    """
    out, err = bytearray(), bytearray()
    readers = [
        asyncio.ensure_future(_collect(stdout, limits[0], out)),
        asyncio.ensure_future(_collect(stderr, limits[1], err)),
    ]
    try:
        for finished in asyncio.as_completed(readers):
            if await finished:
                return Output(bytes(out), bytes(err), truncated=True)
        return Output(bytes(out), bytes(err), truncated=False)
    finally:
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)


@dataclass(frozen=True, slots=True)
class Completed:
    """A finished program's exit status and output."""

    returncode: int
    stdout: bytes
    stderr: bytes
    # It printed more than the limits and was killed: returncode is the kill's.
    truncated: bool = False


async def _feed(process: asyncio.subprocess.Process, data: bytes) -> None:
    """Write `data` to the program's stdin and close it; a program that quit early is fine."""
    if process.stdin is None:
        return
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        process.stdin.write(data)
        await process.stdin.drain()
    process.stdin.close()


async def run(
    argv: list[str], *, stdin: bytes | None, timeout: float, env: dict[str, str] | None = None
) -> Completed:
    """Run `argv` in a session of its own; on timeout or cancellation kill its process group.

    Raises OSError when the program cannot start and TimeoutError when it overruns. The whole
    group goes because a shell's children (a hung nvidia-smi, a script's curl) would
    otherwise outlive it. `env`, when given, is the program's whole environment. Output past
    STDOUT_LIMIT or STDERR_LIMIT is not read: the group is killed and the result `truncated`.
    """
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        env=env,
    )
    try:
        async with asyncio.timeout(timeout):
            feeding = _feed(process, stdin) if stdin is not None else asyncio.sleep(0)
            _, output = await asyncio.gather(feeding, read_bounded(*_pipes(process)))
            if output.truncated:
                returncode = await _stop(process)
            else:
                returncode = await process.wait()
    except (TimeoutError, asyncio.CancelledError):
        await _stop(process)
        raise
    return Completed(returncode, output.stdout, output.stderr, truncated=output.truncated)


def _pipes(
    process: asyncio.subprocess.Process,
) -> tuple[asyncio.StreamReader, asyncio.StreamReader]:
    """The program's stdout and stderr, which `run` always asks for as pipes."""
    if process.stdout is None or process.stderr is None:
        raise RuntimeError("stdout and stderr were not opened as pipes")
    return process.stdout, process.stderr


async def _stop(process: asyncio.subprocess.Process) -> int:
    """SIGKILL the program's whole process group; its return code once it is gone.

    asyncio's wait() ends only once the pipes are closed, and a pipe nobody reads stays open:
    what the dead program left in them (a pipe's buffer at most) is read and dropped.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    for stream in _pipes(process):
        while await stream.read(CHUNK):
            pass
    return await process.wait()
