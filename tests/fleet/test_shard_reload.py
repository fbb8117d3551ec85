"""Resizing shards: a monitor reloaded with a new `monitor.shard` checks its new slice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from functools import partial
from typing import TYPE_CHECKING

import pytest

from conftest import wait_for
from ugro.config.shards import shard_of

if TYPE_CHECKING:
    from pathlib import Path

    from sshcluster import TestCluster

pytestmark = pytest.mark.integration

HOSTS = ("h0", "h1", "h2", "h3")


def held(home: Path) -> set[str]:
    """The nodes the monitor's state file holds."""
    try:
        return set(json.loads((home / "cluster_state.json").read_bytes())["nodes"])
    except FileNotFoundError:
        return set()


def holds(home: Path, nodes: set[str]) -> bool:
    """Whether the state file at `home` holds exactly `nodes`."""
    return held(home) == nodes


def test_a_reload_moves_the_monitor_to_its_new_slice(cluster: TestCluster, tmp_path: Path) -> None:
    """Shard 0 of 2, 0 of 1, 0 of 2 again (SIGHUP): the state follows, and the log says so."""
    hosts = [cluster.host(name) for name in HOSTS]

    def write(count: int) -> Path:
        return cluster.write_config(
            tmp_path / "cluster.yaml",
            hosts=hosts,
            monitor={"interval_s": 1, "confirm_s": 0.3, "shard": {"index": 0, "count": count}},
            exporter={"enabled": False},
        )

    path = write(2)
    home, log = tmp_path / "home", tmp_path / "daemon.out"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ugro", "--config", str(path), "daemon", "run"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "UGRO_HOME": str(home)},
        )
    try:
        first = {name for name in HOSTS if shard_of(name, 2) == 0}
        wait_for(partial(holds, home, first), f"the state to hold {first}")
        write(1)
        proc.send_signal(signal.SIGHUP)
        wait_for(partial(holds, home, set(HOSTS)), "the state to hold every node")
        write(2)
        proc.send_signal(signal.SIGHUP)
        wait_for(partial(holds, home, first), "the other shard's nodes to leave the state")
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    text = log.read_text(encoding="utf-8")
    assert "Traceback" not in text
    assert f"shard 0 of 2: checking {len(first)} of the 4 configured nodes" in text
    assert "shard 0 of 1: checking 4 of the 4 configured nodes" in text
    assert proc.returncode == 0, text
