"""Node-local mode: `ugro check --local` as the HealthCheckProgram of a real slurmd.

slurmctld asks slurmd to run its health check program every second; the program is a
wrapper, as an operator would write, that runs `ugro check --local` with the stub GPU of a
test host on PATH. Breaking the stub's driver drains the node with a `ugro:` Reason, fixing
it resumes the node, a person's drain is never lifted, and node_exporter's textfile follows.
"""

from __future__ import annotations

import shlex
import socket
import sys
from typing import TYPE_CHECKING

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from conftest import run_ugro, wait_for
from slurmcluster import NODE, SlurmCluster, installed

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from sshcluster import TestCluster, TestHost

pytestmark = pytest.mark.integration

# slurmd runs a health check for at most a minute; ugro's local checks take a second or two.
SLURM_PATIENCE_S = 60.0


def local_config(path: Path, **top: object) -> Path:
    """A cluster.yaml naming the Slurm node, for this machine checked locally."""
    document = {
        # This busy test machine's own disk and load must not decide the verdicts.
        "min_disk_gb": 0,
        "scheduler": "slurm",
        "slurm": {"scontrol": "/usr/bin/scontrol", "timeout_s": 20},
        "workers": [{"name": NODE, "ip": "127.0.0.1"}],
        **top,
    }
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def wrapper(tmp: Path, host: TestHost, conf: Path, cfg: Path) -> Path:
    """The HealthCheckProgram: slurmd runs it with a bare environment, so it sets its own."""
    home, log, textfile = tmp / "home", tmp / "healthcheck.log", tmp / "textfile" / "ugro.prom"
    textfile.parent.mkdir()
    env = {
        "PATH": f"{host.dir}/bin:/usr/local/bin:/usr/bin:/bin",
        "UGRO_STUB_DIR": str(host.dir),
        "UGRO_HOME": str(home),
        "SLURM_CONF": str(conf),
        "NO_COLOR": "1",
    }
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    argv = [sys.executable, "-m", "ugro", "--config", str(cfg), "check", "--local"]
    script = tmp / "ugro-healthcheck"
    script.write_text(
        "#!/bin/sh\n"
        f"export {exports}\n"
        f'echo "run SLURMD_NODENAME=$SLURMD_NODENAME" >> {shlex.quote(str(log))}\n'
        f"{shlex.join(argv)} --textfile {shlex.quote(str(textfile))} "
        f'>> {shlex.quote(str(log))} 2>&1\necho "exit $?" >> {shlex.quote(str(log))}\n',
        encoding="utf-8",
    )
    script.chmod(0o755)
    return script


class HealthChecked:
    """A Slurm cluster whose slurmd runs ugro's health check, and what it writes."""

    def __init__(self, slurm: SlurmCluster, tmp: Path, host: TestHost) -> None:
        """Hold the cluster, the temp directory and the stub host the checks see."""
        self.slurm = slurm
        self.host = host
        self.log = tmp / "healthcheck.log"
        self.textfile = tmp / "textfile" / "ugro.prom"

    def runs(self) -> int:
        """How many health checks have finished so far."""
        if not self.log.exists():
            return 0
        return self.log.read_text(encoding="utf-8").count("\nexit ")

    def next_runs(self, count: int = 2) -> None:
        """Wait until `count` more health checks have finished."""
        start = self.runs()
        wait_for(lambda: self.runs() >= start + count, f"{count} more health checks", 60)

    def last_exit(self) -> str:
        """The exit line of the latest health check that finished ("exit 0")."""
        lines = self.log.read_text(encoding="utf-8").splitlines()
        return [line for line in lines if line.startswith("exit ")][-1]

    def reason(self) -> str:
        """The node's Reason as scontrol shows it, or ''."""
        shown = self.slurm.show()
        return shown.split(" Reason=", 1)[1] if " Reason=" in shown else ""


@pytest.fixture(scope="module")
def health_checked(
    shared_cluster: TestCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HealthChecked]:
    """slurmctld, and a slurmd that runs ugro every second as its HealthCheckProgram."""
    assert installed(), "Slurm or MUNGE is missing: scripts/test installs them"
    tmp = tmp_path_factory.mktemp("nodelocal")
    tmp.chmod(0o700)
    base = tmp / "slurm"
    base.mkdir(mode=0o700)
    host = shared_cluster.host("h4")
    cfg = local_config(tmp / "cluster.yaml")
    program = wrapper(tmp, host, base / "slurm.conf", cfg)
    extra = [f"HealthCheckProgram={program}", "HealthCheckInterval=1"]
    with SlurmCluster.start(base, extra) as slurm:
        yield HealthChecked(slurm, tmp, host)
    host.reset()


@pytest.fixture
def checked(health_checked: HealthChecked) -> HealthChecked:
    """The health-checked node healthy, undrained and checked at least once since."""
    health_checked.host.reset()
    health_checked.slurm.reset()
    health_checked.next_runs(1)
    return health_checked


def test_slurmd_runs_ugro_and_a_broken_gpu_drains_the_node(checked: HealthChecked) -> None:
    """A driver that stops answering: slurmd's next health check drains with a ugro: Reason."""
    log = checked.log.read_text(encoding="utf-8")
    assert f"run SLURMD_NODENAME={NODE}" in log
    assert "exit 0" in log, log
    checked.host.set_gpu("driver")
    wait_for(lambda: "DRAIN" in checked.slurm.state(), "the node drained", SLURM_PATIENCE_S)
    assert checked.reason().startswith("ugro: gpu: "), checked.slurm.show()
    assert "driver" in checked.reason()
    checked.next_runs(1)
    assert checked.last_exit() == "exit 2"


def test_a_node_that_passes_again_is_resumed(checked: HealthChecked) -> None:
    """The drain ugro placed is lifted by the first health check that passes."""
    checked.host.set_gpu("driver")
    wait_for(lambda: "DRAIN" in checked.slurm.state(), "the node drained", SLURM_PATIENCE_S)
    checked.host.set_gpu("healthy")
    wait_for(lambda: checked.slurm.state() == "IDLE", "the node resumed", SLURM_PATIENCE_S)
    assert checked.reason() == ""


def test_a_persons_drain_is_never_lifted(checked: HealthChecked) -> None:
    """A person's drain keeps its Reason through failing and passing health checks alike."""
    done = checked.slurm.scontrol(
        "update", f"NodeName={NODE}", "State=DRAIN", "Reason=fan replaced, burn-in"
    )
    assert done.returncode == 0, done.stderr
    checked.host.set_gpu("driver")
    checked.next_runs(2)
    assert checked.reason().startswith("fan replaced, burn-in [")
    checked.host.set_gpu("healthy")
    checked.next_runs(2)
    assert "DRAIN" in checked.slurm.state()
    assert checked.reason().startswith("fan replaced, burn-in [")


def test_the_textfile_follows_the_verdict(checked: HealthChecked) -> None:
    """node_exporter's textfile is rewritten by every run: healthy, then the GPU check failing."""

    def gpu_check() -> float | None:
        text = checked.textfile.read_text(encoding="utf-8")
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == "ugro_check_success" and s.labels == {"node": NODE, "check": "gpu"}:
                    return s.value
        return None

    assert gpu_check() == 1
    checked.host.set_gpu("driver")
    wait_for(lambda: gpu_check() == 0, "the textfile to show the GPU check failing", 60)
    assert [p.name for p in checked.textfile.parent.iterdir()] == ["ugro.prom"]


# --- by hand, without slurmd ----------------------------------------------------------------


def stub_env(host: TestHost, **more: str) -> dict[str, str]:
    """The environment of a run by hand on `host`'s stub GPU."""
    return {"PATH": f"{host.dir}/bin:/usr/bin:/bin", "UGRO_STUB_DIR": str(host.dir), **more}


def this_machine_config(path: Path) -> Path:
    """A cluster.yaml without Slurm whose worker is this machine, by its hostname."""
    name = socket.gethostname().split(".")[0]
    return local_config(path, scheduler="none", workers=[{"name": name, "ip": "127.0.0.1"}])


def test_without_slurm_the_check_only_checks(cluster: TestCluster, tmp_path: Path) -> None:
    """No SLURMD_NODENAME and no `scheduler: slurm`: the hostname's worker, checked, no scontrol."""
    cfg = this_machine_config(tmp_path / "cluster.yaml")
    host = cluster.host("h3")
    host.set_gpu("driver")
    ran = run_ugro("--config", cfg, "check", "--local", "--json", env=stub_env(host))
    assert ran.code == 2, ran.err
    assert ran.err == ""
    document = ran.json()
    assert document["source"] == "local"
    [node] = document["nodes"]
    assert node["name"] == socket.gethostname().split(".")[0]
    assert node["status"] == "unhealthy"
    # Only what means something on the machine itself: no latency to itself.
    assert "latency" not in node["checks"]
    assert node["checks"]["gpu"]["status"] == "fail"


def test_a_node_not_in_the_config_is_named(cluster: TestCluster, tmp_path: Path) -> None:
    """SLURMD_NODENAME names no worker: exit 3 saying which name and which file."""
    cfg = local_config(tmp_path / "cluster.yaml")
    env = stub_env(cluster.host("h3"), SLURMD_NODENAME="gpu-999")
    ran = run_ugro("--config", cfg, "check", "--local", env=env)
    assert ran.code == 3, ran.err
    assert f"{cfg}: no worker named 'gpu-999'" in ran.err


def test_an_unreachable_slurm_is_said_and_exits_3(cluster: TestCluster, tmp_path: Path) -> None:
    """Run by slurmd but scontrol cannot reach slurmctld: a healthy node exits 3, one warning."""
    cfg = local_config(
        tmp_path / "cluster.yaml", slurm={"scontrol": "/usr/bin/scontrol", "timeout_s": 2}
    )
    env = stub_env(
        cluster.host("h3"),
        SLURMD_NODENAME=NODE,
        SLURM_CONF=str(tmp_path / "no-such-slurm.conf"),
    )
    ran = run_ugro("--config", cfg, "check", "--local", "--json", env=env)
    assert ran.code == 3, ran.err
    assert ran.err.startswith("ugro: warning: Slurm not told: scontrol show node -o ugro-n1")
    document = ran.json()
    assert document["exit_code"] == 3
    assert document["nodes"][0]["status"] in {"healthy", "degraded"}


@pytest.mark.parametrize(
    ("nodename", "shown"),
    [
        ("gpu\x1b[2Jx", "gpu\\x1b[2Jx"),
        ("a" * 300, "a" * 40),
        ("../../etc", "../../etc"),
    ],
)
def test_a_hostile_node_name_is_refused_in_one_line(
    tmp_path: Path, nodename: str, shown: str
) -> None:
    """SLURMD_NODENAME that is no node name: exit 3, one line, no escape reaches the terminal."""
    cfg = local_config(tmp_path / "cluster.yaml")
    ran = run_ugro("--config", cfg, "check", "--local", env={"SLURMD_NODENAME": nodename})
    assert ran.code == 3, ran.err
    assert "is not a node name" in ran.err
    assert "\x1b" not in ran.err
    assert len(ran.err.strip().splitlines()) == 1
    assert shown in ran.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--textfile", "/tmp/ugro.txt"], "node_exporter reads only *.prom files"),
        (["gpu1"], "--local checks this machine: name no nodes"),
    ],
)
def test_usage_errors_exit_3(tmp_path: Path, args: list[str], message: str) -> None:
    """Misused options are usage errors that exit 3, as every verdict command's do."""
    cfg = local_config(tmp_path / "cluster.yaml")
    ran = run_ugro("--config", cfg, "check", "--local", *args)
    assert ran.code == 3
    assert message in ran.err


def test_textfile_needs_local(tmp_path: Path) -> None:
    """--textfile alone is a usage error: the textfile is node-local mode's."""
    ran = run_ugro("check", "--textfile", str(tmp_path / "ugro.prom"))
    assert ran.code == 3
    assert "--textfile goes with --local" in ran.err


def test_an_unwritable_textfile_is_a_warning(cluster: TestCluster, tmp_path: Path) -> None:
    """A textfile directory that is missing: the verdict and its exit code stand, one warning."""
    cfg = this_machine_config(tmp_path / "cluster.yaml")
    target = tmp_path / "missing" / "ugro.prom"
    env = stub_env(cluster.host("h3"))
    done = run_ugro("--config", cfg, "check", "--local", "--textfile", target, env=env)
    assert done.code == 0, done.err
    assert f"warning: {target}: cannot write" in done.err
    assert not target.exists()
