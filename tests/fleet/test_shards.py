"""Shards: two real daemons each check their slice, a real Prometheus scrapes both exporters.

`ugro health`, `hosts` and `preflight --from-prometheus` then see the whole fleet, as if one
monitor had checked it; a monitor that stops reporting is said, and costs the exit code.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.parse
import urllib.request
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from conftest import run_ugro, wait_for
from ugro.config.shards import shard_of

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from sshcluster import TestCluster

pytestmark = pytest.mark.integration

HOSTS = ("h0", "h1", "h2", "h3")
COUNT = 2
# The node the test breaks; which shard owns it is the hash's business.
BROKEN = "h1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Shard:
    """One monitor: its index, home, exporter port and process."""

    index: int
    config: Path
    home: Path
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def nodes(self) -> set[str]:
        """The nodes its state file holds."""
        try:
            state = json.loads((self.home / "cluster_state.json").read_bytes())
        except FileNotFoundError:
            return set()
        return set(state["nodes"])

    def stop(self) -> None:
        """Terminate and reap it; its output must hold no traceback."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        text = self.log.read_text(encoding="utf-8", errors="replace")
        assert "Traceback" not in text, text


@dataclass
class Fleet:
    """The sharded fleet: its monitors, the Prometheus scraping them, and the full config."""

    shards: list[Shard]
    prometheus: subprocess.Popen[bytes]
    url: str
    config: Path

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result."""
        target = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(target, timeout=5) as response:  # noqa: S310 - loopback
            document = json.loads(response.read())
        assert document["status"] == "success", document
        result: list[dict[str, Any]] = document["data"]["result"]
        return result


def start(argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Run `argv` in the background with its output in `log`."""
    with log.open("wb") as out:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )


def ready(url: str) -> bool:
    """Whether the Prometheus at `url` says it is ready."""
    with (
        contextlib.suppress(OSError),
        urllib.request.urlopen(f"{url}/-/ready", timeout=1) as response,  # noqa: S310 - loopback
    ):
        return bool(response.status == 200)
    return False


@pytest.fixture(scope="module")
def fleet(shared_cluster: TestCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """Two shard monitors over h0-h3 (h1's driver broken) and a Prometheus scraping both."""
    shared_cluster.reset()
    shared_cluster.host(BROKEN).set_gpu("driver")
    tmp = tmp_path_factory.mktemp("shards")
    hosts = [shared_cluster.host(name) for name in HOSTS]
    full = shared_cluster.write_config(tmp / "cluster.yaml", hosts=hosts)
    shards: list[Shard] = []
    prometheus = None
    try:
        for index in range(COUNT):
            port = free_port()
            path = shared_cluster.write_config(
                tmp / f"shard{index}.yaml",
                hosts=hosts,
                monitor={
                    "interval_s": 1,
                    "confirm_s": 0.3,
                    "shard": {"index": index, "count": COUNT},
                },
                exporter={"port": port},
            )
            home, log = tmp / f"home{index}", tmp / f"shard{index}.out"
            argv = [sys.executable, "-m", "ugro", "--config", str(path), "daemon", "run"]
            proc = start(argv, log, {"UGRO_HOME": str(home)})
            shards.append(Shard(index, path, home, port, proc, log))
        web = free_port()
        scrape = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [
                {
                    "job_name": "ugro",
                    "static_configs": [{"targets": [f"127.0.0.1:{s.port}" for s in shards]}],
                }
            ],
        }
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(scrape), encoding="utf-8")
        found = shutil.which("prometheus")
        assert found, "prometheus is not installed (scripts/test installs Debian's prometheus)"
        prometheus = start(
            [
                found,
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{web}",
                "--log.level=warn",
            ],
            tmp / "prometheus.out",
        )
        url = f"http://127.0.0.1:{web}"
        wait_for(lambda: ready(url), "Prometheus to be ready")
        yield Fleet(shards, prometheus, url, full)
    finally:
        for shard in shards:
            shard.stop()
        if prometheus is not None:
            prometheus.terminate()
            prometheus.wait(timeout=15)
        shared_cluster.reset()


def everywhere(fleet: Fleet) -> bool:
    """Whether Prometheus has every node's status, with the broken one confirmed unhealthy."""
    statuses = {
        r["metric"]["node"]: r["metric"]["status"] for r in fleet.query("ugro_node_status == 1")
    }
    return set(statuses) == set(HOSTS) and statuses[BROKEN] == "unhealthy"


def test_the_hash_splits_the_test_fleet() -> None:
    """Both shards own some of h0-h3, so the test below proves a split, not one monitor."""
    owners = {shard_of(name, COUNT) for name in HOSTS}
    assert owners == set(range(COUNT))


def holds(shard: Shard, nodes: set[str]) -> bool:
    """Whether `shard`'s state file holds exactly `nodes`."""
    return shard.nodes() == nodes


def test_each_shard_checks_only_its_own_nodes(fleet: Fleet) -> None:
    """Each monitor's state file holds exactly the nodes the hash gives its index."""
    for shard in fleet.shards:
        mine = {name for name in HOSTS if shard_of(name, COUNT) == shard.index}
        wait_for(partial(holds, shard, mine), f"shard {shard.index} to check {mine}")
        log = shard.log.read_text(encoding="utf-8")
        assert f"shard {shard.index} of {COUNT}: checking {len(mine)} of the 4" in log


def test_check_on_a_shards_machine_checks_its_own_nodes(fleet: Fleet) -> None:
    """`ugro check` with a shard's config checks that shard's nodes; a named node any node."""
    shard = fleet.shards[0]
    mine = {name for name in HOSTS if shard_of(name, COUNT) == shard.index}
    ran = run_ugro("--config", shard.config, "check", "--json")
    assert {n["name"] for n in ran.json()["nodes"]} == mine, ran.err
    other = next(name for name in HOSTS if name not in mine)
    ran = run_ugro("--config", shard.config, "check", other, "--json")
    assert [n["name"] for n in ran.json()["nodes"]] == [other], ran.err


def test_health_from_prometheus_shows_the_whole_fleet(fleet: Fleet) -> None:
    """`ugro health --from-prometheus`: every shard's nodes in one table, the worst code."""
    wait_for(lambda: everywhere(fleet), "every node in Prometheus, h1 unhealthy", 60)
    ran = run_ugro("health", "--from-prometheus", fleet.url, "--json")
    assert ran.code == 2, ran.err
    document = ran.json()
    assert document["source"] == "prometheus"
    nodes = {n["name"]: n for n in document["nodes"]}
    assert set(nodes) == set(HOSTS)
    assert nodes[BROKEN]["status"] == "unhealthy"
    assert nodes[BROKEN]["checks"]["gpu"]["status"] == "fail"
    assert f"read from Prometheus at {fleet.url}" in document["notes"]
    table = run_ugro("health", "--wide", env={"UGRO_PROMETHEUS_URL": fleet.url})
    assert table.code == 2, table.err
    assert "gpu: fail (details on the monitor 127.0.0.1:" in table.out
    assert "4 nodes:" in table.out


def test_hosts_and_preflight_from_prometheus(fleet: Fleet, isolated_home: Path) -> None:
    """`ugro hosts` and `preflight` judge the fleet from Prometheus and write no state."""
    wait_for(lambda: everywhere(fleet), "every node in Prometheus, h1 unhealthy", 60)
    ran = run_ugro("--config", fleet.config, "hosts", "--from-prometheus", fleet.url)
    assert ran.code == 0, ran.err
    assert f"left out {BROKEN}: unhealthy: gpu: fail" in ran.err
    shown = set(ran.out.split())
    assert len(shown) == len(HOSTS) - 1
    ran = run_ugro(
        "--config",
        fleet.config,
        "preflight",
        "--from-prometheus",
        fleet.url,
        "--max-age",
        "1h",
        "--nodes",
        "3",
        "--json",
    )
    assert ran.code == 0, ran.out + ran.err
    assert json.loads(ran.out)["checked_now"] == []
    assert not (isolated_home / "cluster_state.json").exists()


def test_a_monitor_that_stops_reporting_is_said(fleet: Fleet) -> None:
    """A shard gone from Prometheus: its nodes are missing, said in a note, and the code is 3+."""
    wait_for(lambda: everywhere(fleet), "every node in Prometheus, h1 unhealthy", 60)
    gone = next(s for s in fleet.shards if shard_of(BROKEN, COUNT) != s.index)
    gone.stop()

    def noticed() -> Any:
        ran = run_ugro("health", "--from-prometheus", fleet.url, "--json")
        return ran if ran.json()["notes"][1:] else None

    ran = wait_for(noticed, "health to notice the stopped monitor", 60)
    document = ran.json()
    left = {name for name in HOSTS if shard_of(name, COUNT) != gone.index}
    assert {n["name"] for n in document["nodes"]} == left
    assert f"the monitor 127.0.0.1:{gone.port} (job ugro) reported" in document["notes"][1]
    # h1 (unhealthy, 2) is still there: a known problem outranks the missing verdicts (3).
    assert ran.code == 2
