"""A node check's commands on one SSH channel, through real sshd test hosts.

The containment tests (a hung nvidia-smi fails only the gpu check, a flooding node is cut)
run through the same batches; these tests pin the channel count and the fallback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from channels import Channels, sweeps
from ugro import config
from ugro.model import NodeStatus

if TYPE_CHECKING:
    from pathlib import Path

    from sshcluster import TestCluster

pytestmark = pytest.mark.integration


def test_a_node_check_is_one_channel(
    cluster: TestCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every command of the default checks goes in one batch; the node is healthy."""
    channels = Channels(monkeypatch)
    path = cluster.write_config(tmp_path / "cluster.yaml", hosts=cluster.hosts[:1])
    (first,), (second,) = sweeps(config.load(path).nodes, 2)
    assert first.status is NodeStatus.HEALTHY, first.checks
    assert second.status is NodeStatus.HEALTHY, second.checks
    assert channels.batches == [True, True]
    assert channels.runs == []


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
        'echo "ugro-batch-1 ready $(( ($# - 6) / 2 ))"\n'
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
