"""Two monitors that both check a node (shards being resized) raise one alert in Alertmanager.

The alerts ugro's `alertmanager` sink sends carry no label of the monitor that sent them, so a
real Alertmanager sees the two monitors' alerts about one node as one alert.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import partial
from typing import TYPE_CHECKING, Any

import pytest

from conftest import wait_for
from ugro.config.shards import shard_of

if TYPE_CHECKING:
    from pathlib import Path

    from conftest import Alertmanager
    from sshcluster import TestCluster

pytestmark = pytest.mark.integration

NODE = "h1"
# The labels ugro sends; none of them names the monitor.
LABELS = {"alertname", "node", "check", "severity", "cluster", "key"}


def firing(home: Path) -> set[str]:
    """The keys of the alerts a monitor's state file says are firing for NODE."""
    try:
        state = json.loads((home / "cluster_state.json").read_bytes())
    except FileNotFoundError:
        return set()
    text = json.dumps(state.get("alerts") or {})
    return {key for key in ("check:gpu",) if f'"node": "{NODE}", "key": "{key}"' in text}


def fires(home: Path) -> bool:
    """Whether the monitor at `home` fires the gpu check's alert for NODE."""
    return firing(home) == {"check:gpu"}


def test_two_monitors_of_one_node_are_one_alert(
    cluster: TestCluster, alertmanager: Alertmanager, tmp_path: Path
) -> None:
    """An old and a new shard layout both check h1: both fire, Alertmanager holds one alert."""
    cluster.host(NODE).set_gpu("driver")
    layouts = [
        {"index": shard_of(NODE, 2), "count": 2},
        {"index": 0, "count": 1},
    ]
    procs: list[tuple[subprocess.Popen[bytes], Path, Path]] = []
    try:
        for i, shard in enumerate(layouts):
            path = cluster.write_config(
                tmp_path / f"monitor{i}.yaml",
                hosts=[cluster.host(NODE)],
                monitor={"interval_s": 1, "confirm_s": 0.3, "shard": shard},
                exporter={"enabled": False},
                alerts={
                    "cluster": "prod",
                    "sinks": [{"name": "am", "type": "alertmanager", "url": alertmanager.url}],
                },
            )
            home, log = tmp_path / f"home{i}", tmp_path / f"monitor{i}.out"
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "ugro", "--config", str(path), "daemon", "run"],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, "UGRO_HOME": str(home)},
                )
            procs.append((proc, home, log))
        for _, home, _ in procs:
            wait_for(partial(fires, home), f"{home.name} to fire", 60)

        def sent() -> list[dict[str, Any]]:
            return [
                a
                for a in alertmanager.alerts("?active=true")
                if a["labels"].get("node") == NODE and a["labels"].get("key") == "check:gpu"
            ]

        [alert] = wait_for(sent, "the alert in Alertmanager")
        assert set(alert["labels"]) == LABELS
        assert alert["labels"]["cluster"] == "prod"
    finally:
        for proc, _, log in procs:
            proc.terminate()
            proc.wait(timeout=15)
            assert "Traceback" not in log.read_text(encoding="utf-8")
