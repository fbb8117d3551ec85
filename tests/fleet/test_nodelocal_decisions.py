"""Node-local mode's decisions without Slurm: which worker this machine is, the Reason, the code."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from ugro import config
from ugro.errors import ConfigError
from ugro.fleet import nodelocal
from ugro.model import CheckResult, NodeStatus, NodeVerdict, Status

if TYPE_CHECKING:
    from pathlib import Path


def load(tmp_path: Path, text: str) -> config.Config:
    """Load `text` as cluster.yaml."""
    path = tmp_path / "cluster.yaml"
    path.write_text(text, encoding="utf-8")
    return config.load(path)


def verdict(status: NodeStatus, *checks: CheckResult) -> NodeVerdict:
    """A verdict of `status` with `checks`."""
    return NodeVerdict(
        name="gpu1",
        address="10.0.0.1",
        status=status,
        health_score=50,
        pass_rate=0.8,
        last_check=datetime.now(UTC),
        checks=checks,
    )


def test_the_worker_is_named_by_slurmd(tmp_path: Path) -> None:
    """$SLURMD_NODENAME picks the worker, by name or by `slurm_node`; checked locally."""
    cfg = load(
        tmp_path,
        "python: /opt/venv/bin/python\n"
        "workers:\n"
        "  - {name: gpu1, ip: 10.0.0.1}\n"
        "  - {name: gpu2, ip: 10.0.0.2, slurm_node: node002, gpus: 8}\n",
    )
    node, slurm_name = nodelocal.this_node(cfg, {"SLURMD_NODENAME": "node002"})
    assert (node.name, slurm_name, node.gpus, node.python) == (
        "gpu2",
        "node002",
        8,
        "/opt/venv/bin/python",
    )
    assert node.transport == "local"
    assert "latency" not in node.checks
    assert "gpu" in node.checks
    node, slurm_name = nodelocal.this_node(cfg, {"SLURMD_NODENAME": "gpu1"})
    assert (node.name, slurm_name) == ("gpu1", "gpu1")


def test_without_a_config_the_defaults_check_the_named_node() -> None:
    """No cluster.yaml: the embedded default's checks, under Slurm's name for the node."""
    node, slurm_name = nodelocal.this_node(config.local_default(), {"SLURMD_NODENAME": "n17"})
    assert (node.name, slurm_name, node.transport) == ("n17", "n17", "local")


def test_a_node_the_config_does_not_list_is_an_error(tmp_path: Path) -> None:
    """A config without this node: a ConfigError naming the file and the name."""
    cfg = load(tmp_path, "workers: [{name: gpu1, ip: 10.0.0.1}]\n")
    with pytest.raises(ConfigError, match=r"cluster\.yaml: no worker named 'gpu9'"):
        nodelocal.this_node(cfg, {"SLURMD_NODENAME": "gpu9"})


@pytest.mark.parametrize("name", ["-x", "a b", "gpu\n1", "é", "x" * 64, "../up"])
def test_a_name_that_is_no_node_name_is_refused(name: str) -> None:
    """A name from the environment that no worker can have is refused, not looked up."""
    with pytest.raises(ConfigError, match="is not a node name"):
        nodelocal.this_node(config.local_default(), {"SLURMD_NODENAME": name})


def test_the_reason_is_the_failing_checks() -> None:
    """The Reason names the failed checks and their messages; unknown ones only without a fail."""
    failed = verdict(
        NodeStatus.UNHEALTHY,
        CheckResult("gpu", Status.FAIL, "the NVIDIA driver is not loaded (exit 9)"),
        CheckResult("ecc", Status.UNKNOWN, "cannot read the GPUs"),
        CheckResult("disk", Status.OK, "fine"),
    )
    assert nodelocal.reason(failed) == "gpu: the NVIDIA driver is not loaded (exit 9)"
    unknown = verdict(NodeStatus.UNHEALTHY, CheckResult("torch", Status.UNKNOWN, "hung"))
    assert nodelocal.reason(unknown) == "torch: hung"
    assert nodelocal.reason(verdict(NodeStatus.UNHEALTHY)) == "unhealthy"


@pytest.mark.parametrize(
    ("status", "scheduler_failed", "code"),
    [
        (NodeStatus.HEALTHY, False, 0),
        (NodeStatus.DEGRADED, False, 0),
        (NodeStatus.UNHEALTHY, False, 2),
        (NodeStatus.UNKNOWN, False, 3),
        (NodeStatus.HEALTHY, True, 3),
        (NodeStatus.UNHEALTHY, True, 2),
    ],
)
def test_exit_codes_for_slurmd(status: NodeStatus, scheduler_failed: bool, code: int) -> None:
    """0 while the node may take jobs (degraded too); 2 unhealthy; 3 no verdict or no Slurm."""
    outcome = nodelocal.Outcome(verdict(status), scheduler_failed=scheduler_failed)
    assert outcome.exit_code == code
