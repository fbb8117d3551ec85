"""What a sweep asks of the SSH transport: batches and lone commands, counted.

Tests use it to see that a node check's commands travel on one channel
(`ugro.transport.batch`), through real sshd and through the simulated farm alike.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ugro import sweep
from ugro.transport.ssh import SSHSession

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import pytest

    from ugro.config import Worker
    from ugro.model import CommandResult, NodeVerdict
    from ugro.transport.batch import Job


class Channels:
    """Counts what the sweep asks of SSHSession: batches (their jobs; whether they ran), runs."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Wrap SSHSession's `run` and `run_batch` for the test's duration."""
        self.batches: list[bool] = []
        self.jobs: list[Sequence[Job]] = []
        self.runs: list[str] = []
        run, run_batch = SSHSession.run, SSHSession.run_batch

        async def counted_run(
            session: SSHSession, command: str, *, timeout: float
        ) -> CommandResult:
            self.runs.append(command)
            return await run(session, command, timeout=timeout)

        async def counted_batch(
            session: SSHSession, jobs: Sequence[Job], done: Callable[[int, CommandResult], None]
        ) -> bool:
            self.jobs.append(jobs)
            ran = await run_batch(session, jobs, done)
            self.batches.append(ran)
            return ran

        monkeypatch.setattr(SSHSession, "run", counted_run)
        monkeypatch.setattr(SSHSession, "run_batch", counted_batch)


def sweeps(nodes: list[Worker], count: int) -> list[list[NodeVerdict]]:
    """`count` sweeps of `nodes` over the same connections."""

    async def main() -> list[list[NodeVerdict]]:
        transports = sweep.Transports()
        try:
            return [await sweep.sweep(nodes, transports) for _ in range(count)]
        finally:
            await transports.close()

    return asyncio.run(main())
