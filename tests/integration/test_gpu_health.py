"""The GPU health checks end to end: the real CLI against real sshd hosts with stub GPUs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from conftest import run_ugro
from ugro.checks import gpuquery, processes, remap

if TYPE_CHECKING:
    from pathlib import Path

    from sshcluster import TestCluster, TestHost

# Integration: the real CLI against real sshd test hosts.
pytestmark = pytest.mark.integration

GPU_HEALTH = ("ecc", "remap", "xid", "throttle", "pcie", "processes", "temperature")
XID_79 = (
    "NVRM: Xid (PCI:0000:41:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus."
)


def check(cluster: TestCluster, tmp_path: Path, host: TestHost, **extra: object) -> dict[str, Any]:
    """`ugro check --json` of one host; its node's JSON."""
    path = cluster.write_config(
        tmp_path / "cluster.yaml", hosts=[host], workers_extra={host.name: dict(extra)}
    )
    ran = run_ugro("--config", path, "check", "--json")
    assert ran.code in (0, 1, 2), ran.err
    (node,) = ran.json()["nodes"]
    return dict(node)


def gpu_statuses(node: dict[str, Any]) -> dict[str, str]:
    """The status of each GPU health check the node ran."""
    return {n: c["status"] for n, c in node["checks"].items() if n in GPU_HEALTH}


def only_load(node: dict[str, Any]) -> bool:
    """Whether the node's alerts, if any, are all about this busy test machine's load."""
    return all(a["text"].startswith("load ") for a in node["alerts"])


def test_healthy_host_passes_all_seven(cluster: TestCluster, tmp_path: Path) -> None:
    """A healthy host: every GPU health check ok, the node healthy, the score 100."""
    node = check(cluster, tmp_path, cluster.host("h0"))
    assert gpu_statuses(node) == dict.fromkeys(GPU_HEALTH, "ok"), node
    assert node["checks"]["ecc"]["message"] == (
        "ECC not supported or not enabled on NVIDIA GeForce RTX 4090: nothing to check"
    )
    assert node["checks"]["processes"]["message"] == "no process holds GPU memory"
    assert node["checks"]["xid"]["message"] == "no Xid in the last 1 h (dmesg)"
    assert node["versions"]["driver"] == "550.127.05"
    # This busy test machine's load alone may weigh on the score (and so the status).
    loaded = bool(node["alerts"]) and only_load(node)
    assert node["status"] == "healthy" or (loaded and node["status"] == "degraded"), node
    assert node["health_score"] == 100 or loaded


@pytest.mark.parametrize(
    ("mode", "failing", "status", "verdict", "phrase"),
    [
        (
            "ecc-uncorrected",
            "ecc",
            "fail",
            "unhealthy",
            "GPU 1 (00000000:41:00.0): 3 uncorrected since the driver loaded",
        ),
        (
            "ecc-aggregate",
            "ecc",
            "warn",
            "degraded",
            "GPU 0 (00000000:01:00.0): 1 uncorrected in its lifetime",
        ),
        (
            "remap-pending",
            "remap",
            "fail",
            "unhealthy",
            "GPU 0 (00000000:01:00.0): a row remap waits for a GPU reset",
        ),
        (
            "throttle-thermal",
            "throttle",
            "warn",
            "degraded",
            "GPU 0 (00000000:01:00.0): SW thermal slowdown, HW thermal slowdown",
        ),
        ("pcie-x8", "pcie", "warn", "degraded", "GPU 1 (00000000:41:00.0) link x8 of x16"),
        ("hot", "temperature", "warn", "degraded", "GPU 0 (00000000:01:00.0) at 87 °C"),
        ("critical", "temperature", "fail", "unhealthy", "GPU 0 (00000000:01:00.0) at 94 °C"),
    ],
)
def test_each_fault_shows_in_its_check(  # noqa: PLR0917 - pytest passes a table row positionally
    cluster: TestCluster,
    tmp_path: Path,
    mode: str,
    failing: str,
    status: str,
    verdict: str,
    phrase: str,
) -> None:
    """Each stub GPU fault fails or warns its own check; a FAIL alone makes the node unhealthy."""
    host = cluster.host("h0")
    host.set_gpu_health(mode)
    node = check(cluster, tmp_path, host)
    result = node["checks"][failing]
    assert result["status"] == status, node
    assert phrase in result["message"]
    assert node["status"] == verdict
    core = {n: c["status"] for n, c in node["checks"].items() if n not in GPU_HEALTH}
    assert set(core.values()) == {"ok"}
    assert node["health_score"] < 100


def test_dead_holder_of_gpu_memory_warns(cluster: TestCluster, tmp_path: Path) -> None:
    """Memory held by pids the host does not have warns; pid 1 holding it is fine."""
    host = cluster.host("h0")
    host.set_gpu_apps("training")
    node = check(cluster, tmp_path, host)
    assert node["checks"]["processes"]["status"] == "warn"
    assert "python (pid 48213, 20.8 GiB)" in node["checks"]["processes"]["message"]
    assert "is not in the node's process table" in node["checks"]["processes"]["message"]
    assert node["status"] == "degraded"
    host.set_gpu_apps("init")
    alive = check(cluster, tmp_path, host)
    assert alive["checks"]["processes"]["status"] == "ok"
    assert alive["checks"]["processes"]["message"].startswith("1 process holds 20.8 GiB: init")


def test_one_shared_query_per_node_check(cluster: TestCluster, tmp_path: Path) -> None:
    """Seven checks, one run of each distinct nvidia-smi command per node check."""
    host = cluster.host("h0")
    check(cluster, tmp_path, host)
    calls = host.nvidia_smi_calls()
    shared = gpuquery.COMMAND.removeprefix("nvidia-smi ")
    assert calls.count(shared) == 1, calls
    assert calls.count(remap.COMMAND.removeprefix("nvidia-smi ")) == 1
    assert calls.count(processes.COMMAND.removeprefix("nvidia-smi ")) == 1
    # The three above plus the gpu check's own query.
    assert len(calls) == 4, calls


def test_xid_is_reported_once_then_the_window_moves(cluster: TestCluster, tmp_path: Path) -> None:
    """An Xid fails the check that first sees it, and not the next one (xid_hold_s: 0)."""
    host = cluster.host("h0")
    host.log_kernel(XID_79, seconds_ago=60)
    first = check(cluster, tmp_path, host, xid_hold_s=0)
    assert first["checks"]["xid"]["status"] == "fail"
    message = first["checks"]["xid"]["message"]
    assert "Xid 79 (GPU has fallen off the bus) on GPU 1 (00000000:41:00.0) at " in message
    assert first["status"] == "unhealthy"
    second = check(cluster, tmp_path, host, xid_hold_s=0)
    assert second["checks"]["xid"]["status"] == "ok", second["checks"]["xid"]
    assert second["checks"]["xid"]["message"].startswith("no Xid in the last ")


def test_xid_is_held_for_confirmation(cluster: TestCluster, tmp_path: Path) -> None:
    """With the default hold, the next check still sees the Xid, so hysteresis can confirm it."""
    host = cluster.host("h0")
    host.log_kernel(XID_79, seconds_ago=60)
    assert check(cluster, tmp_path, host)["checks"]["xid"]["status"] == "fail"
    assert check(cluster, tmp_path, host)["checks"]["xid"]["status"] == "fail"


def test_application_xid_is_only_mentioned(cluster: TestCluster, tmp_path: Path) -> None:
    """An application's Xid 31 leaves the check ok, naming it."""
    host = cluster.host("h0")
    host.log_kernel(
        "NVRM: Xid (PCI:0000:01:00): 31, pid=48213, name=python, Ch 00000018, intr 00000000. "
        "MMU Fault: ENGINE GRAPHICS GPCCLIENT_T1_0 faulted @ 0x7f3c_40000000",
        seconds_ago=30,
    )
    node = check(cluster, tmp_path, host)
    assert node["checks"]["xid"]["status"] == "ok"
    assert "Xid 31 (GPU memory page fault) on GPU 0" in node["checks"]["xid"]["message"]


def test_journal_is_read_when_dmesg_is_restricted(cluster: TestCluster, tmp_path: Path) -> None:
    """With dmesg_restrict, the journal's kernel messages are read instead."""
    host = cluster.host("h0")
    host.set_kernel_log_access(dmesg="restricted")
    host.log_kernel(XID_79, seconds_ago=60)
    node = check(cluster, tmp_path, host)
    assert node["checks"]["xid"]["status"] == "fail"
    assert "Xid 79" in node["checks"]["xid"]["message"]


def test_unreadable_kernel_log_is_unknown(cluster: TestCluster, tmp_path: Path) -> None:
    """No dmesg and no journal access: UNKNOWN, saying how to grant it."""
    host = cluster.host("h0")
    host.set_kernel_log_access(dmesg="restricted", journal="denied")
    host.log_kernel(XID_79, seconds_ago=60)
    node = check(cluster, tmp_path, host)
    assert node["checks"]["xid"]["status"] == "unknown"
    assert "`adm` or `systemd-journal` group" in node["checks"]["xid"]["message"]


def test_checks_switch_off(cluster: TestCluster, tmp_path: Path) -> None:
    """A `checks` list runs only what it names; a node with `gpus: 0` skips them all."""
    host = cluster.host("h0")
    some = check(cluster, tmp_path, host, checks=["ssh", "gpu", "ecc", "temperature"])
    assert set(some["checks"]) == {"ssh", "gpu", "ecc", "temperature"}
    cpu_only = check(cluster, tmp_path, host, gpus=0, gpu=None)
    assert not set(cpu_only["checks"]) & set(GPU_HEALTH)
