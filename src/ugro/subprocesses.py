"""Running a local program with a deadline, and leaving nothing of it behind."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Completed:
    """A finished program's exit status and output."""

    returncode: int
    stdout: bytes
    stderr: bytes


async def run(
    argv: list[str], *, stdin: bytes | None, timeout: float, env: dict[str, str] | None = None
) -> Completed:
    """Run `argv` in a session of its own; on timeout or cancellation kill its process group.

    Raises OSError when the program cannot start and TimeoutError when it overruns. The whole
    group goes because a shell's children (a hung nvidia-smi, a script's curl) would
    otherwise outlive it. `env`, when given, is the program's whole environment.
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
        out, err = await asyncio.wait_for(process.communicate(stdin), timeout)
    except (TimeoutError, asyncio.CancelledError):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        raise
    return Completed(process.returncode or 0, out, err)
