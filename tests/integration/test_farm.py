"""The simulated node farm (tests/farm.py) is a cluster ugro checks like any other."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from channels import Channels, sweeps
from conftest import run_ugro
from farm import Farm, address, name
from ugro import config
from ugro.model import NodeStatus

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

NODES = 60
HUNG = (7, 41)
#: Short timeouts, so the hung nodes' checks give up quickly.
TIMEOUTS = {"connect": 5, "gpu": 2, "torch": 2, "ecc": 2, "remap": 2, "processes": 2}


def test_a_farm_checks_healthy_but_for_its_hung_nodes(tmp_path: Path) -> None:
    """`ugro check` over 60 farm nodes: 58 healthy, the 2 hung ones unhealthy, in time."""
    with Farm.start(tmp_path / "farm", NODES, processes=2, hung=HUNG) as farm:
        config = farm.write_config(tmp_path / "cluster.yaml", timeouts=TIMEOUTS)
        ran = run_ugro("--config", config, "check", "--json", timeout=120)
    assert ran.code == 2, ran.err
    nodes = {n["name"]: n for n in json.loads(ran.out)["nodes"]}
    assert len(nodes) == NODES
    hung = {name(i) for i in HUNG}
    for node_name, node in nodes.items():
        if node_name in hung:
            assert node["status"] == "unhealthy", node
            assert node["checks"]["gpu"]["message"].startswith("no answer within 2 s"), node
            assert node["checks"]["ssh"]["status"] == "ok", node
        else:
            assert node["status"] == "healthy", node
            assert node["checks"]["latency"]["message"].startswith("SSH connection round trip")
    assert nodes[name(0)]["address"] == address(0)


def test_a_farm_node_check_is_one_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The farm answers ugro's batches as the runner does: no node falls back to lone commands."""
    channels = Channels(monkeypatch)
    with Farm.start(tmp_path / "farm", 3, processes=1) as farm:
        nodes = config.load(farm.write_config(tmp_path / "cluster.yaml")).nodes
        (first, second) = sweeps(nodes, 2)
    assert all(v.status is NodeStatus.HEALTHY for v in [*first, *second]), first
    assert channels.batches == [True] * 6
    assert channels.runs == []
