"""The SSH transport reads a command's output within bounds, against a real sshd."""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from typing import TYPE_CHECKING

import pytest

from conftest import nodes_of, wait_for
from ugro.config.settings import DEFAULT_MAX_CONNECTS
from ugro.errors import CommandTimeout
from ugro.subprocesses import STDERR_LIMIT, STDOUT_LIMIT
from ugro.transport.ssh import MAX_CHANNELS_PER_CONNECTION, SSHTransport

if TYPE_CHECKING:
    from pathlib import Path

    from sshcluster import TestCluster
    from ugro.model import CommandResult

# Integration: the SSH transport against real sshd test hosts.
pytestmark = pytest.mark.integration

#: 100 MB, as the runaway nvidia-smi of the issue printed.
FLOOD_BYTES = 100_000_000


def run_on_h0(
    cluster: TestCluster, tmp_path: Path, *commands: str, timeout: float = 10
) -> list[CommandResult]:
    """Run `commands` one after another on test host h0, over one fresh connection."""
    worker = nodes_of(cluster.write_config(tmp_path / "cluster.yaml"))["h0"]

    async def main() -> list[CommandResult]:
        transport = SSHTransport(max_connects=DEFAULT_MAX_CONNECTS)
        try:
            session = await transport.open(worker)
            return [await session.run(c, timeout=timeout) for c in commands]
        finally:
            await transport.close()

    return asyncio.run(main())


def test_a_flood_is_cut_and_the_command_stopped(cluster: TestCluster, tmp_path: Path) -> None:
    """100 MB on stdout: the first megabyte comes back flagged, fast, and the command dies."""
    # tracemalloc's peak over the run alone: the process's peak RSS is a high-water mark that
    # a long test run has usually passed already, hiding any growth.
    tracemalloc.start()
    start = time.monotonic()
    try:
        flood, after = run_on_h0(
            cluster, tmp_path, f"yes 0123456789 | head -c {FLOOD_BYTES}", "echo still here"
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.monotonic() - start < 5
    assert peak < 32 * 2**20
    assert flood.truncated
    assert flood.exit_status is None
    assert len(flood.stdout) == STDOUT_LIMIT
    assert flood.stdout.startswith("0123456789\n")
    assert (after.stdout, after.truncated) == ("still here\n", False)
    host = cluster.host("h0")
    wait_for(lambda: not host.stub_processes(), "the flooding command to die")


def test_a_flood_of_errors_is_cut_too(cluster: TestCluster, tmp_path: Path) -> None:
    """Errors have their own, smaller limit; what stdout said before them is kept."""
    (result,) = run_on_h0(
        cluster, tmp_path, f"echo first; head -c {4 * STDERR_LIMIT} /dev/zero >&2; sleep 5"
    )
    assert result.truncated
    assert result.stdout == "first\n"
    assert len(result.stderr) == STDERR_LIMIT


def test_output_of_exactly_the_limit_is_whole(cluster: TestCluster, tmp_path: Path) -> None:
    """STDOUT_LIMIT bytes and an exit status come back whole, not flagged."""
    (result,) = run_on_h0(cluster, tmp_path, f"head -c {STDOUT_LIMIT} /dev/zero; exit 4")
    assert (result.exit_status, len(result.stdout), result.truncated) == (4, STDOUT_LIMIT, False)


def test_floods_release_their_channels(cluster: TestCluster, tmp_path: Path) -> None:
    """More floods than channels, one after another: every one is cut, none holds a channel."""
    count = MAX_CHANNELS_PER_CONNECTION * 2
    results = run_on_h0(cluster, tmp_path, *["yes | head -c 5000000"] * count, "echo done")
    assert all(r.truncated for r in results[:-1])
    assert results[-1].stdout == "done\n"


def test_the_timeout_covers_a_trickle(cluster: TestCluster, tmp_path: Path) -> None:
    """A command that prints a little forever still times out."""
    with pytest.raises(CommandTimeout):
        run_on_h0(cluster, tmp_path, "while :; do echo tick; sleep 0.05; done", timeout=0.5)
