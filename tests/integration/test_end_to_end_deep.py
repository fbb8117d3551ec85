"""The deep probe, rendezvous reachability and version drift, end to end against real sshd hosts."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
from typing import TYPE_CHECKING, Any

import pytest

from conftest import run_ugro

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from sshcluster import TestCluster

# Integration: the real CLI against real sshd test hosts.
pytestmark = pytest.mark.integration

# Addresses no test host uses (they start at 127.0.0.10): the master's stand-ins.
LISTENING_ADDR = "127.0.0.71"
DROPPED_ADDR = "127.0.0.72"
COMMENT = "ugro-test-rendezvous"


def by_node(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The JSON document's nodes by name."""
    return {n["name"]: n for n in document["nodes"]}


@contextlib.contextmanager
def apps(cluster: TestCluster, name: str, mode: str) -> Iterator[None]:
    """Make nvidia-smi list compute processes on one host for the block's length."""
    cluster.host(name).set_gpu_apps(mode)
    try:
        yield
    finally:
        cluster.host(name).set_gpu_apps("none")


def test_check_deep_runs_the_probe_on_every_node(cluster: TestCluster, tmp_path: Path) -> None:
    """`ugro check --deep`: verified GPUs, a wrong one, a failing one and busy ones told apart."""
    cluster.host("h1").set_torch("wrong-result")
    cluster.host("h2").set_torch("cuda-error")
    cluster.host("h3").set_torch("no-bf16")
    path = cluster.write_config(
        tmp_path / "cluster.yaml", hosts=cluster.hosts[:5], timeouts={"deep": 20, "torch": 10}
    )
    with apps(cluster, "h4", "training"):
        ran = run_ugro("--config", path, "check", "--deep", "--json")
    nodes = by_node(ran.json())
    deep = {name: node["checks"]["deep"] for name, node in nodes.items()}

    assert deep["h0"]["status"] == "ok", deep["h0"]
    assert deep["h0"]["message"].startswith("2 GPUs: fp32 ")
    assert deep["h0"]["message"].endswith("per 1024×1024 matmul (slowest); verified")
    assert deep["h0"]["unit"] == "ms"

    assert deep["h1"]["status"] == "fail"
    assert deep["h1"]["message"].startswith("GPU 1: bf16 matmul wrong by 3.1e+02")
    # Outside the core five, a failure is decisive on its own.
    assert nodes["h1"]["status"] == "unhealthy"

    assert deep["h2"]["status"] == "fail"
    assert "GPU 1: RuntimeError: CUDA error: uncorrectable ECC error" in deep["h2"]["message"]

    assert deep["h3"]["status"] == "ok"
    assert "no bf16 support" in deep["h3"]["message"]

    assert deep["h4"]["status"] == "ok"
    assert deep["h4"]["message"].startswith("not run: every GPU is in use (GPU 0 skipped, busy")


def test_deep_true_in_the_config_runs_it_without_the_flag(
    cluster: TestCluster, tmp_path: Path
) -> None:
    """`deep: true` runs the probe in a plain `ugro check`; without it, it does not run."""
    path = cluster.write_config(
        tmp_path / "cluster.yaml",
        hosts=cluster.hosts[:2],
        workers_extra={"h0": {"deep": True}},
        timeouts={"deep": 20, "torch": 10},
    )
    nodes = by_node(run_ugro("--config", path, "check", "--json").json())
    assert nodes["h0"]["checks"]["deep"]["status"] == "ok"
    assert "deep" not in nodes["h1"]["checks"]


def test_version_drift_is_named_by_check_and_health(cluster: TestCluster, tmp_path: Path) -> None:
    """One host with an older torch and NCCL: `check` and `health` name it, as JSON and text."""
    cluster.host("h2").set_torch("old-torch")
    path = cluster.write_config(tmp_path / "cluster.yaml", hosts=cluster.hosts[:4])
    checked = run_ugro("--config", path, "check", "--json").json()
    health = run_ugro("health", "--json")
    for document in (checked, health.json()):
        findings = {f["component"]: f for f in document["findings"]}
        assert set(findings) == {"torch", "nccl"}
        assert findings["torch"]["majority"] == "2.5.1+cu124"
        assert findings["torch"]["odd"] == {"h2": "2.4.1+cu124"}
        assert findings["nccl"]["odd"] == {"h2": "2.20.5"}
        assert by_node(document)["h2"]["versions"]["torch"] == "2.4.1+cu124"
    text = run_ugro("health")
    assert "drift: torch differs: h2 2.4.1+cu124, against 2.5.1+cu124 on 3 nodes" in text.out
    # Checking the odd node alone still compares it with the rest of the cluster.
    alone = run_ugro("--config", path, "check", "h2", "--json").json()
    assert {f["component"]: f["odd"] for f in alone["findings"]}["torch"] == {"h2": "2.4.1+cu124"}


def test_same_versions_everywhere_means_no_findings(cluster: TestCluster, tmp_path: Path) -> None:
    """A uniform cluster has an empty findings list and no drift line."""
    path = cluster.write_config(tmp_path / "cluster.yaml", hosts=cluster.hosts[:3])
    ran = run_ugro("--config", path, "check", "--json")
    assert ran.json()["findings"] == []
    assert set(by_node(ran.json())["h0"]["versions"]) >= {"torch", "cuda", "nccl", "python"}
    assert "drift:" not in run_ugro("health").out


def rendezvous_of(cluster: TestCluster, tmp_path: Path, addr: str, port: int) -> dict[str, Any]:
    """h0's rendezvous check with the master at addr:port."""
    path = cluster.write_config(
        tmp_path / "cluster.yaml",
        hosts=cluster.hosts[:1],
        master={"addr": addr, "port": port},
        timeouts={"rendezvous": 3},
    )
    ran = run_ugro("--config", path, "check", "--json")
    check: dict[str, Any] = by_node(ran.json())["h0"]["checks"]["rendezvous"]
    return check


def test_rendezvous_reaches_a_listening_master(cluster: TestCluster, tmp_path: Path) -> None:
    """A worker that can connect to the master's port passes."""
    with socket.socket() as listener:
        listener.bind((LISTENING_ADDR, 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        check = rendezvous_of(cluster, tmp_path, LISTENING_ADDR, port)
    assert check["status"] == "ok", check
    assert check["message"] == f"reaches {LISTENING_ADDR}:{port}: a rendezvous is listening"


def test_rendezvous_refused_passes_between_jobs(cluster: TestCluster, tmp_path: Path) -> None:
    """Nothing listening (no job running) proves the route: ok, and the message says so."""
    addr, port = cluster.unused_address()
    check = rendezvous_of(cluster, tmp_path, addr, port)
    assert check["status"] == "ok", check
    assert "nothing listens there now" in check["message"]


def _iptables(*args: str) -> None:
    found = shutil.which("iptables", path="/usr/sbin:/usr/bin:/sbin:/bin")
    assert found is not None, "iptables is not installed (Debian package iptables)"
    done = subprocess.run(
        [found, "-w", "5", *args], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, f"iptables {' '.join(args)}: {done.stderr}"


@pytest.fixture
def dropped_port() -> Iterator[int]:
    """A port on DROPPED_ADDR whose SYNs an INPUT rule drops (a firewall), removed afterwards."""
    with socket.socket() as probe:
        probe.bind((DROPPED_ADDR, 0))
        port: int = probe.getsockname()[1]
    rule = [
        "INPUT",
        "-d",
        DROPPED_ADDR,
        "-p",
        "tcp",
        "--dport",
        str(port),
        "-m",
        "comment",
        "--comment",
        COMMENT,
        "-j",
        "DROP",
    ]
    _iptables("-I", *rule)
    try:
        yield port
    finally:
        _iptables("-D", *rule)


def test_rendezvous_dropped_by_a_firewall_fails(
    cluster: TestCluster, tmp_path: Path, dropped_port: int
) -> None:
    """Packets to the master dropped on the way: the node fails, unhealthy, with the reason."""
    check = rendezvous_of(cluster, tmp_path, DROPPED_ADDR, dropped_port)
    assert check["status"] == "fail", check
    assert check["message"].startswith(
        f"h0 cannot reach {DROPPED_ADDR}:{dropped_port} (timed out): a firewall drops it; "
        "training would hang at rendezvous"
    )
