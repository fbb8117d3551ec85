"""`ugro hosts` and `ugro preflight`: the real CLI, on a written state file and on sshd hosts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
import yaml

from conftest import run_ugro
from ugro import paths
from ugro.model import CheckResult, GpuMetrics, NodeStatus, NodeVerdict, Status
from ugro.store.cordons import Cordon, CordonStore
from ugro.store.state import StateStore

if TYPE_CHECKING:
    from pathlib import Path

    from sshcluster import TestCluster


# Integration: every test runs `ugro hosts` or `ugro preflight` as a process.
pytestmark = pytest.mark.integration


def node_verdict(
    name: str,
    status: NodeStatus = NodeStatus.HEALTHY,
    *,
    score: float = 100,
    age_s: float = 2,
    gpus: int = 2,
) -> NodeVerdict:
    """A verdict checked `age_s` ago; a bad status comes with a failing gpu check."""
    good = status in (NodeStatus.HEALTHY, NodeStatus.DEGRADED)
    gpu = (
        CheckResult("gpu", Status.OK, f"{gpus} × NVIDIA GeForce RTX 4090")
        if good
        else CheckResult("gpu", Status.FAIL, "the NVIDIA driver is not loaded (exit 9)")
    )
    return NodeVerdict(
        name=name,
        address="ignored",
        status=status,
        health_score=score,
        pass_rate=1.0 if good else 0.5,
        last_check=datetime.now(UTC) - timedelta(seconds=age_s),
        checks=(CheckResult("ssh", Status.OK, "ok"), gpu),
        gpus=tuple(
            GpuMetrics(i, f"GPU-{i}", "NVIDIA GeForce RTX 4090", 40, 0, 0, 24564, 30, 450)
            for i in range(gpus if good else 0)
        ),
    )


def cluster_yaml(tmp_path: Path, *names: str, gpus: int = 2) -> Path:
    """A cluster.yaml of workers at 10.0.0.1, .2, … (never contacted by these tests)."""
    workers = [{"name": n, "ip": f"10.0.0.{i + 1}", "gpus": gpus} for i, n in enumerate(names)]
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump({"workers": workers}), encoding="utf-8")
    return path


def store(*verdicts: NodeVerdict) -> None:
    """Write the state file as a check would."""
    StateStore(paths.state_file()).update(verdicts)


# --- ugro hosts -----------------------------------------------------------------------------


def test_hosts_lists_usable_nodes_in_config_order(tmp_path: Path) -> None:
    """Healthy and degraded nodes, in config order; the others on stderr with their reason."""
    cfg = cluster_yaml(tmp_path, "gpu3", "gpu1", "gpu2", "gpu4")
    store(
        node_verdict("gpu1"),
        node_verdict("gpu2", NodeStatus.UNHEALTHY, score=45),
        node_verdict("gpu3", NodeStatus.DEGRADED, score=85),
        node_verdict("gpu4", age_s=7200),
    )
    ran = run_ugro("--config", cfg, "hosts")
    assert ran.code == 0, ran.err
    assert ran.out == "10.0.0.1\n10.0.0.2\n"
    assert "left out gpu2: unhealthy: gpu: the NVIDIA driver is not loaded (exit 9)" in ran.err
    assert "left out gpu4: stale: last checked 2h ago (healthy then)" in ran.err


def test_hosts_formats(tmp_path: Path) -> None:
    """deepspeed/mpi hostfiles with GPU slots, torchrun arguments and JSON."""
    cfg = cluster_yaml(tmp_path, "gpu1", "gpu2")
    store(node_verdict("gpu1", gpus=4), node_verdict("gpu2", score=90, gpus=8))
    deepspeed = run_ugro("--config", cfg, "hosts", "--format", "deepspeed")
    assert deepspeed.out == "10.0.0.1 slots=4\n10.0.0.2 slots=8\n"
    assert run_ugro("--config", cfg, "hosts", "--format", "mpi").out == deepspeed.out
    torchrun = run_ugro("--config", cfg, "hosts", "--format", "torchrun")
    assert torchrun.code == 0
    assert torchrun.out == (
        "--nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint=10.0.0.1:29500\n"
    )
    assert "GPU counts differ (gpu1 4, gpu2 8); --nproc-per-node=4" in torchrun.err
    as_json = run_ugro("--config", cfg, "hosts", "--format", "json").json()
    assert as_json == [
        {"name": "gpu1", "address": "10.0.0.1", "gpus": 4, "score": 100.0, "status": "healthy"},
        {"name": "gpu2", "address": "10.0.0.2", "gpus": 8, "score": 90.0, "status": "healthy"},
    ]


def test_hosts_min_score_and_cordons(tmp_path: Path) -> None:
    """--min-score and cordons both take a node out, and say so."""
    cfg = cluster_yaml(tmp_path, "gpu1", "gpu2", "gpu3")
    store(node_verdict("gpu1"), node_verdict("gpu2", score=70), node_verdict("gpu3"))
    CordonStore().cordon(Cordon("gpu3", "manual", "fan", datetime.now(UTC), user="alice"))
    ran = run_ugro("--config", cfg, "hosts", "--min-score", "80")
    assert ran.out == "10.0.0.1\n"
    assert "left out gpu2: score 70 below the minimum 80" in ran.err
    assert "left out gpu3: cordoned by alice (manual) since " in ran.err


def test_hosts_without_a_usable_node_exits_1(tmp_path: Path) -> None:
    """No usable node: nothing on stdout, the reasons on stderr, exit 1."""
    cfg = cluster_yaml(tmp_path, "gpu1")
    store(node_verdict("gpu1", NodeStatus.UNREACHABLE, score=0))
    ran = run_ugro("--config", cfg, "hosts")
    assert (ran.code, ran.out) == (1, "")
    assert "no usable node among 1" in ran.err


def test_hosts_without_state_exits_1(tmp_path: Path) -> None:
    """No state file yet: say how to get one."""
    ran = run_ugro("--config", cluster_yaml(tmp_path, "gpu1"), "hosts")
    assert ran.code == 1
    assert "no health data yet: run `ugro check`" in ran.err


def test_hosts_json_without_a_usable_node_is_an_empty_list(tmp_path: Path) -> None:
    """`--format json` prints `[]` when no node is usable (or none was checked), still exit 1."""
    cfg = cluster_yaml(tmp_path, "gpu1")
    ran = run_ugro("--config", cfg, "hosts", "--format", "json")
    assert (ran.code, ran.json()) == (1, [])
    store(node_verdict("gpu1", NodeStatus.UNREACHABLE, score=0))
    ran = run_ugro("--config", cfg, "hosts", "--format", "json")
    assert (ran.code, ran.json()) == (1, [])
    assert "no usable node among 1" in ran.err


def test_hosts_leaves_out_a_node_without_gpus(tmp_path: Path) -> None:
    """A `gpus: 0` node never gives `--nproc-per-node=0` or `slots=0`: left out, saying why."""
    path = tmp_path / "cluster.yaml"
    workers = [{"name": "ctl", "ip": "10.0.0.1", "gpus": 0}, {"name": "gpu1", "ip": "10.0.0.2"}]
    path.write_text(yaml.safe_dump({"workers": workers}), encoding="utf-8")
    store(node_verdict("ctl", gpus=0), node_verdict("gpu1", gpus=1))
    for fmt, out in (
        ("torchrun", "--nnodes=1 --nproc-per-node=1 --rdzv-backend=c10d "),
        ("deepspeed", "10.0.0.2 slots=1\n"),
    ):
        ran = run_ugro("--config", path, "hosts", "--format", fmt)
        assert ran.code == 0, ran.err
        assert ran.out.startswith(out)
        assert "left out ctl: no GPUs (`gpus: 0`): a GPU launch has nothing to run there" in ran.err


def test_hosts_is_light() -> None:
    """`ugro hosts` imports neither the SSH stack nor rich."""
    probe = (
        "import sys\nfrom click.testing import CliRunner\nfrom ugro.cli import main\n"
        "CliRunner().invoke(main, ['hosts'])\n"
        "print(sorted(m for m in ('asyncssh', 'rich', 'ugro.sweep') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"


# --- ugro preflight on a written state (no SSH) ---------------------------------------------


def test_preflight_passes_on_fresh_state_and_runs_the_command(tmp_path: Path) -> None:
    """Fresh verdicts are reused (these addresses are never contacted); CMD gets the env."""
    cfg = cluster_yaml(tmp_path, "gpu1", "gpu2", "gpu3")
    store(node_verdict("gpu1", score=90), node_verdict("gpu2"), node_verdict("gpu3", score=95))
    out = tmp_path / "env.json"
    dump = f"import json, os; json.dump(dict(os.environ), open({str(out)!r}, 'w'))"
    ran = run_ugro("--config", cfg, "preflight", "--nodes", "2", "--", sys.executable, "-c", dump)
    assert ran.code == 0, ran.err
    env = json.loads(out.read_text(encoding="utf-8"))
    assert env["UGRO_HOSTS"] == "10.0.0.2,10.0.0.3"
    assert env["UGRO_NNODES"] == "2"
    assert env["UGRO_MASTER_ADDR"] == "10.0.0.2"
    assert env["UGRO_MASTER_PORT"] == "29500"
    assert env["UGRO_HOME"] == os.environ["UGRO_HOME"]
    assert "preflight: ready: 2 of 3 usable nodes selected" in ran.err
    assert "checked now: none; 3 fresh verdicts reused" in ran.err
    assert ran.out == ""


def test_preflight_becomes_the_command(tmp_path: Path) -> None:
    """CMD replaces ugro: the same pid, and CMD's exit code is preflight's."""
    cfg = cluster_yaml(tmp_path, "gpu1")
    store(node_verdict("gpu1"))
    argv = [sys.executable, "-m", "ugro", "--config", str(cfg), "preflight"]
    with subprocess.Popen(
        [*argv, "--", "sh", "-c", "echo $$; exit 7"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 7
    assert int(out) == proc.pid


def test_preflight_refuses_and_names_the_nodes_out(tmp_path: Path) -> None:
    """Too few usable nodes: CMD does not run; exit 2, each node out named with its reason."""
    cfg = cluster_yaml(tmp_path, "gpu1", "gpu2", "gpu3")
    store(node_verdict("gpu1"), node_verdict("gpu2", NodeStatus.UNHEALTHY), node_verdict("gpu3"))
    CordonStore().cordon(Cordon("gpu3", "manual", "bad fan", datetime.now(UTC), user="alice"))
    marker = tmp_path / "ran"
    ran = run_ugro("--config", cfg, "preflight", "--nodes", "2", "--", "touch", marker)
    assert ran.code == 2
    assert not marker.exists()
    assert "preflight: NOT ready: 2 nodes needed, 1 usable" in ran.err
    assert "  gpu2: unhealthy: gpu: the NVIDIA driver is not loaded (exit 9)" in ran.err
    assert "  gpu3: cordoned by alice (manual) since " in ran.err
    assert ": bad fan" in ran.err
    assert "not running touch: too few usable nodes" in ran.err


def test_preflight_needs_only_the_nodes_with_gpus_by_default(tmp_path: Path) -> None:
    """A `gpus: 0` control node is out of every launch, so the default need leaves it out too."""
    path = tmp_path / "cluster.yaml"
    workers = [{"name": "ctl", "ip": "10.0.0.1", "gpus": 0}, {"name": "gpu1", "ip": "10.0.0.2"}]
    path.write_text(yaml.safe_dump({"workers": workers}), encoding="utf-8")
    store(node_verdict("ctl", gpus=0), node_verdict("gpu1", gpus=1))
    ran = run_ugro("--config", path, "preflight", "--json", "--max-age", "1h")
    assert ran.code == 0, ran.out + ran.err
    decision = ran.json()
    assert (decision["ready"], decision["needed"]) == (True, 1)
    assert [g["name"] for g in decision["selected"]] == ["gpu1"]
    ctl = next(g for g in decision["nodes"] if g["name"] == "ctl")
    assert ctl["reasons"] == ["no GPUs (`gpus: 0`): a GPU launch has nothing to run there"]


def test_preflight_json(tmp_path: Path) -> None:
    """--json: the decision, the selection, the environment and every node's reasons."""
    cfg = cluster_yaml(tmp_path, "gpu1", "gpu2")
    store(node_verdict("gpu1"), node_verdict("gpu2", NodeStatus.UNHEALTHY, score=50))
    ran = run_ugro("--config", cfg, "preflight", "--nodes", "1", "--json")
    assert ran.code == 0, ran.err
    doc = ran.json()
    assert (doc["ready"], doc["exit_code"], doc["needed"], doc["usable"]) == (True, 0, 1, 1)
    assert [n["name"] for n in doc["selected"]] == ["gpu1"]
    assert doc["env"]["UGRO_HOSTS"] == "10.0.0.1"
    gpu2 = doc["nodes"][1]
    assert gpu2["usable"] is False
    assert gpu2["reasons"] == ["unhealthy: gpu: the NVIDIA driver is not loaded (exit 9)"]
    every = run_ugro("--config", cfg, "preflight", "--json")
    assert every.code == 2
    assert every.json()["ready"] is False


def test_preflight_needs_more_nodes_than_configured(tmp_path: Path) -> None:
    """Asking for more nodes than the cluster has is a clear no (exit 2)."""
    cfg = cluster_yaml(tmp_path, "gpu1")
    store(node_verdict("gpu1"))
    ran = run_ugro("--config", cfg, "preflight", "--nodes", "3")
    assert ran.code == 2
    assert "3 nodes needed, cluster.yaml has only 1 node" in ran.out


def test_preflight_missing_command_exits_127(tmp_path: Path) -> None:
    """A CMD that does not exist: a clear message and 127, as a shell would."""
    cfg = cluster_yaml(tmp_path, "gpu1")
    store(node_verdict("gpu1"))
    ran = run_ugro("--config", cfg, "preflight", "--", "no-such-command-ugro", "x")
    assert ran.code == 127
    assert "ugro: no-such-command-ugro: command not found" in ran.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-age", "5x"], "--max-age: expected a span like 30s, 5m, 1h"),
        (["--nodes", "0"], "0 is not in the range x>=1"),
        (["--bogus"], "--bogus"),
    ],
)
def test_preflight_usage_errors_exit_3(tmp_path: Path, args: list[str], message: str) -> None:
    """Usage errors mean no verdict: 3, as for check and health."""
    ran = run_ugro("--config", cluster_yaml(tmp_path, "gpu1"), "preflight", *args)
    assert ran.code == 3
    assert message in ran.err


def test_preflight_without_a_verdict_exits_3(tmp_path: Path) -> None:
    """A bad config or an unreadable state: no verdict, exit 3, one line why."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("workers: []\n", encoding="utf-8")
    ran = run_ugro("--config", bad, "preflight")
    assert ran.code == 3
    assert "bad.yaml" in ran.err
    paths.state_file().parent.mkdir(parents=True, exist_ok=True)
    paths.state_file().write_text("{not json", encoding="utf-8")
    corrupt = run_ugro("--config", cluster_yaml(tmp_path, "gpu1"), "preflight")
    assert corrupt.code == 3
    assert "corrupt" in corrupt.err


# --- ugro preflight against real sshd hosts -------------------------------------------------


def read_env(path: Path) -> dict[str, str]:
    """The environment `env` wrote, as a dict."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def test_preflight_checks_now_and_runs_the_job(cluster: TestCluster, tmp_path: Path) -> None:
    """No state yet: every node is checked over SSH, persisted, and the job runs with the env."""
    hosts = cluster.hosts[:3]
    cfg = cluster.write_config(tmp_path / "cluster.yaml", hosts=hosts)
    env_file = tmp_path / "env"
    ran = run_ugro("--config", cfg, "preflight", "--", "sh", "-c", f"env > {env_file}")
    assert ran.code == 0, ran.err
    env = read_env(env_file)
    assert sorted(env["UGRO_HOSTS"].split(",")) == sorted(h.addr for h in hosts)
    assert env["UGRO_NNODES"] == "3"
    assert env["UGRO_MASTER_ADDR"] == env["UGRO_HOSTS"].split(",")[0]
    assert env["UGRO_MASTER_PORT"] == "29500"
    assert "checked now: h0, h1, h2" in ran.err
    state = StateStore(paths.state_file()).read()
    assert state is not None
    assert sorted(state.nodes) == ["h0", "h1", "h2"]


def test_preflight_refuses_a_failing_node(cluster: TestCluster, tmp_path: Path) -> None:
    """A node without its driver: preflight refuses, naming it; with --nodes 2 it goes without."""
    hosts = cluster.hosts[:3]
    cluster.host("h1").set_gpu("driver")
    cfg = cluster.write_config(tmp_path / "cluster.yaml", hosts=hosts)
    env_file = tmp_path / "env"
    job = ["--", "sh", "-c", f"env > {env_file}"]
    ran = run_ugro("--config", cfg, "preflight", *job)
    assert ran.code == 2
    assert not env_file.exists()
    assert "  h1: unhealthy: gpu: the NVIDIA driver is not loaded (exit 9)" in ran.err
    fewer = run_ugro("--config", cfg, "preflight", "--nodes", "2", *job)
    assert fewer.code == 0, fewer.err
    assert "checked now: none" in fewer.err
    assert cluster.host("h1").addr not in read_env(env_file)["UGRO_HOSTS"]


def test_preflight_reuses_fresh_state_and_rechecks_stale(
    cluster: TestCluster, tmp_path: Path
) -> None:
    """Fresh verdicts need no SSH (the hosts are down and it passes); stale ones are re-checked."""
    hosts = cluster.hosts[:2]
    cfg = cluster.write_config(tmp_path / "cluster.yaml", hosts=hosts)
    first = run_ugro("--config", cfg, "preflight")
    assert first.code == 0, first.out
    for host in hosts:
        host.kill()
    fresh = run_ugro("--config", cfg, "preflight", "--max-age", "5m")
    assert fresh.code == 0, fresh.out
    assert "checked now: none; 2 fresh verdicts reused" in fresh.out
    stale = run_ugro("--config", cfg, "preflight", "--max-age", "0")
    assert stale.code == 2
    assert "checked now: h0, h1" in stale.out
    assert "  h0: unreachable: ssh: connection refused" in stale.out


def test_preflight_leaves_stdout_to_the_command(tmp_path: Path) -> None:
    """With CMD, even --json goes to stderr: the job's stdout is the job's alone."""
    cfg = cluster_yaml(tmp_path, "gpu1")
    store(node_verdict("gpu1"))
    ran = run_ugro("--config", cfg, "preflight", "--json", "--", "sh", "-c", "echo job")
    assert ran.code == 0, ran.err
    assert ran.out == "job\n"
    assert json.loads(ran.err)["env"]["UGRO_HOSTS"] == "10.0.0.1"
