"""A node check's commands on one SSH channel, through real sshd test hosts.

The containment tests (a hung nvidia-smi fails only the gpu check, a flooding node is cut)
run through the same batches; these tests pin the channel count and the fallback.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import asyncssh
import psutil
import pytest

from channels import Channels, sweeps
from conftest import wait_for
from ugro import config, sweep
from ugro.checks import registry
from ugro.checks.reachability import COMMAND as SHELL_COMMAND
from ugro.model import NodeStatus
from ugro.transport import batch

if TYPE_CHECKING:
    from pathlib import Path

    from sshcluster import TestCluster, TestHost
    from ugro.model import NodeVerdict

pytestmark = pytest.mark.integration


def test_a_node_check_is_one_channel(
    cluster: TestCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every command of the default checks goes in one batch; the node is healthy.

    The ssh check's command, which the latency check reads too, runs as long as the longer
    of their timeouts allows, and the batch holds its records back for a quarter of the
    shortest wait of any check at most.
    """
    channels = Channels(monkeypatch)
    path = cluster.write_config(tmp_path / "cluster.yaml", hosts=cluster.hosts[:1])
    (node,) = config.load(path).nodes
    (first,), (second,) = sweeps([node], 2)
    assert first.status is NodeStatus.HEALTHY, first.checks
    assert second.status is NodeStatus.HEALTHY, second.checks
    assert channels.batches == [True, True]
    assert channels.runs == []
    (shell,) = (job for job in channels.jobs[0] if job.command == SHELL_COMMAND)
    checks = registry()
    waits = sorted(checks[name].timeout(node) for name in ("ssh", "latency"))
    assert [shell.wait, shell.timeout] == waits
    shortest = min(check.timeout(node) for check in checks.values() if check.name in node.checks)
    assert batch.hold_s(channels.jobs[0]) == min(batch.HOLD_S, shortest / 4)


def test_a_node_keeps_its_runner_from_check_to_check(
    cluster: TestCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three node checks open one channel; one cut short by a hung GPU gets a fresh one.

    The runner the hung check left mid-pass is closed, and ends on the node.
    """
    opened = sessions(monkeypatch)
    host = cluster.host("h0")
    path = cluster.write_config(
        tmp_path / "cluster.yaml", hosts=[host], timeouts={"gpu": 1, "torch": 1}
    )
    nodes = config.load(path).nodes

    async def main() -> list[NodeVerdict]:
        transports = sweep.Transports()
        try:
            verdicts = [(await sweep.sweep(nodes, transports))[0] for _ in range(3)]
            assert len(opened) == 1
            host.set_gpu("hang")
            verdicts.append((await sweep.sweep(nodes, transports))[0])
            host.set_gpu("healthy")
            verdicts += [(await sweep.sweep(nodes, transports))[0] for _ in range(2)]
            return verdicts
        finally:
            await transports.close()

    verdicts = asyncio.run(main())
    assert [v.status for v in verdicts] == [NodeStatus.HEALTHY] * 3 + [NodeStatus.UNHEALTHY] + [
        NodeStatus.HEALTHY
    ] * 2, [v.checks for v in verdicts]
    assert len(opened) == 2
    host.reset()
    wait_for(lambda: not runners(host), what="the runners to end with their channels")


def test_a_runner_that_sshd_closes_while_idle_is_opened_again(
    cluster: TestCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node's ChannelTimeout (OpenSSH 9.2) closes the runner between checks: the next opens one.

    A node may close a channel that carries nothing for less than ugro's interval; the
    check after that is judged like any other, on a fresh runner, and none is left behind.
    The timeout must outlast a pass's own silence (its hold and its slowest command): the
    node runs quick checks only, so that a loaded test machine cannot stretch a pass to it.
    """
    host = cluster.host("h1")
    host.set_sshd_options("ChannelTimeout session:*=3")
    opened = sessions(monkeypatch)
    path = cluster.write_config(
        tmp_path / "cluster.yaml",
        hosts=[host],
        workers_extra={host.name: {"checks": ["ssh", "gpu", "disk"]}},
    )
    nodes = config.load(path).nodes

    async def main() -> list[NodeVerdict]:
        transports = sweep.Transports()
        try:
            first = (await sweep.sweep(nodes, transports))[0]
            await asyncio.to_thread(
                wait_for, lambda: not runners(host), what="sshd to close the idle runner"
            )
            return [first, (await sweep.sweep(nodes, transports))[0]]
        finally:
            await transports.close()

    verdicts = asyncio.run(main())
    assert [v.status for v in verdicts] == [NodeStatus.HEALTHY] * 2, [v.checks for v in verdicts]
    assert len(opened) == 2
    host.reset()
    wait_for(lambda: not runners(host), what="the runner to end with its connection")


def sessions(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The commands of the session channels opened from here on."""
    opened: list[str] = []
    create_session = asyncssh.SSHClientConnection.create_session

    async def counted(connection: asyncssh.SSHClientConnection, *args: Any, **kwargs: Any) -> Any:
        opened.append(args[1])
        return await create_session(connection, *args, **kwargs)

    monkeypatch.setattr(asyncssh.SSHClientConnection, "create_session", counted)
    return opened


def runners(host: TestHost) -> list[psutil.Process]:
    """The runner shells open on `host`: what ugro keeps between checks."""
    return [
        p
        for p in psutil.process_iter(["cmdline", "environ"])
        if (p.info["cmdline"] or [])[3:4] == ["ugro-batch"]
        and (p.info["environ"] or {}).get("UGRO_STUB_DIR") == str(host.dir)
    ]


def test_a_node_that_cannot_run_a_batch_gets_a_channel_per_command(
    cluster: TestCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No usable mktemp on the node: the runner says `none`, and ugro does as it did before.

    It asks once per connection: the second sweep sends its commands one by one straight away.
    """
    host = cluster.host("h0")
    broken = host.dir / "bin" / "mktemp"
    broken.write_text("#!/bin/sh\necho 'mktemp: No space left on device' >&2\nexit 1\n")
    broken.chmod(0o755)
    try:
        channels = Channels(monkeypatch)
        path = cluster.write_config(tmp_path / "cluster.yaml", hosts=[host])
        (first,), (second,) = sweeps(config.load(path).nodes, 2)
    finally:
        broken.unlink()
    assert first.status is NodeStatus.HEALTHY, first.checks
    assert second.status is NodeStatus.HEALTHY, second.checks
    assert channels.batches == [False, False]
    # Nine distinct commands a node check, each on its own channel, in both sweeps.
    assert len(channels.runs) == 2 * len(set(channels.runs))
    assert len(set(channels.runs)) >= 8


def test_a_node_that_garbles_the_batch_is_not_judged_and_stops_nothing(
    cluster: TestCluster, tmp_path: Path
) -> None:
    """A hostile `sh` on the node answers the runner with a header that is not one.

    Every check in the batch is unknown, naming the garble; the sweep and the other node go on.
    """
    host, other = cluster.host("h0"), cluster.host("h1")
    hostile = host.dir / "bin" / "sh"
    hostile.write_text(
        "#!/bin/bash\n"
        'echo "ugro-batch-1 up"\n'
        "while read -r l; do case $l in ugro_run*) break ;; esac; done\n"
        'printf "ugro-batch-1 1 0 \\x1b[31m99999999999999999999 0\\n"\n'
    )
    hostile.chmod(0o755)
    try:
        path = cluster.write_config(tmp_path / "cluster.yaml", hosts=[host, other])
        ((garbled, fine),) = sweeps(config.load(path).nodes, 1)
    finally:
        hostile.unlink()
    assert fine.status is NodeStatus.HEALTHY, fine.checks
    assert garbled.status is not NodeStatus.HEALTHY
    messages = {c.name: c.message for c in garbled.checks if c.name != "latency"}
    assert all("garbled header" in m for m in messages.values()), messages
