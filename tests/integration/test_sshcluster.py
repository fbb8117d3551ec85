"""Smoke tests for the sshd test harness, driven by the stock OpenSSH client.

They prove the harness itself is sound before ugro's own tests rely on it: every fault the
harness claims to inject is observed here through a real `ssh`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from typing import TYPE_CHECKING

import pytest
import yaml

from sshcluster import TestCluster, TestHost

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

# Integration: real sshd test hosts, driven by the OpenSSH client.
pytestmark = pytest.mark.integration

SSH = shutil.which("ssh") or "/usr/bin/ssh"
DF = shutil.which("df") or "/usr/bin/df"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestCluster]:
    """Two running hosts shared by this module."""
    with TestCluster.start(tmp_path_factory.mktemp("cluster"), 2) as started:
        yield started


@pytest.fixture(autouse=True)
def _healthy(cluster: TestCluster) -> Iterator[None]:
    """Hand every test healthy hosts, whatever the previous one did to them."""
    yield
    cluster.reset()


def ssh(
    cluster: TestCluster, host: TestHost, command: str, *options: str, timeout: float = 20
) -> subprocess.CompletedProcess[str]:
    """Run `command` on `host` with the OpenSSH client, strict host-key checking on."""
    argv = [
        SSH,
        "-i",
        str(cluster.client_key),
        "-o",
        f"UserKnownHostsFile={cluster.known_hosts}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-F",
        "/dev/null",
        *options,
        "-p",
        str(host.port),
        f"{cluster.user}@{host.addr}",
        command,
    ]
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout)


NVIDIA_SMI = (
    "nvidia-smi --query-gpu=index,uuid,name,temperature.gpu,utilization.gpu,memory.used,"
    "memory.total,power.draw,power.limit --format=csv,noheader,nounits"
)
TORCH_COUNT = "python3 -c 'import torch; print(torch.cuda.device_count())'"


def test_hosts_listen_on_distinct_loopback_addresses(cluster: TestCluster) -> None:
    """Each host is its own sshd on its own 127.0.0.N, and known_hosts lists them all."""
    assert [h.addr for h in cluster.hosts] == ["127.0.0.10", "127.0.0.11"]
    assert len({h.pid for h in cluster.hosts}) == 2
    lines = cluster.known_hosts.read_text(encoding="utf-8").splitlines()
    assert lines == [h.host_key_line() for h in cluster.hosts]
    assert all(line.split()[1] == "ssh-ed25519" for line in lines)


def test_session_environment_is_pinned(cluster: TestCluster) -> None:
    """Sessions see only the harness's environment, so the stubs come first on PATH."""
    host = cluster.hosts[0]
    result = ssh(cluster, host, "env | sort; command -v nvidia-smi; command -v python3")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert f"UGRO_STUB_DIR={host.dir}" in lines
    assert f"PATH={host.dir}/bin:/usr/local/bin:/usr/bin:/bin" in lines
    assert not [line for line in lines if line.startswith(("PYENV", "SSH_"))]
    assert lines[-2:] == [f"{host.dir}/bin/nvidia-smi", f"{host.dir}/bin/python3"]


def test_command_arrives_byte_exact(cluster: TestCluster) -> None:
    """Quotes, `$`, `;`, backticks and backslashes reach the remote `sh -c` unchanged."""
    command = "printf '%s\\n' 'a;b $x' \"q'uote\" '`echo no`' 'back\\slash'; echo \"$((6*7))\""
    result = ssh(cluster, cluster.hosts[0], command)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "a;b $x\nq'uote\n`echo no`\nback\\slash\n42\n"


def test_exit_status_and_stderr_come_back(cluster: TestCluster) -> None:
    """The remote exit status and stderr are passed through as-is."""
    result = ssh(cluster, cluster.hosts[1], "echo out; echo err >&2; exit 7")
    assert (result.returncode, result.stdout, result.stderr) == (7, "out\n", "err\n")


@pytest.mark.parametrize(
    ("mode", "status", "expected"),
    [
        ("healthy", 0, "0, GPU-5d4ae6b5-1c2b-7f0a-9b3e-3a5e7a1c2d10, NVIDIA GeForce RTX 4090, 41"),
        ("one-gpu", 0, "0, GPU-5d4ae6b5"),
        ("hot", 0, "NVIDIA GeForce RTX 4090, 87,"),
        ("other-model", 0, "NVIDIA RTX A6000"),
        ("na", 0, "[N/A], [N/A]"),
        ("driver", 9, "couldn't communicate with the NVIDIA driver"),
        ("nvml", 12, "couldn't find libnvidia-ml.so"),
        ("lost", 15, "GPU is lost"),
        ("garbage", 0, "NVIDIA-SMI 550"),
        ("empty", 0, ""),
    ],
)
def test_nvidia_smi_follows_gpu_mode(
    cluster: TestCluster, mode: str, status: int, expected: str
) -> None:
    """The nvidia-smi stub answers each GPU mode with the real tool's output and exit code."""
    host = cluster.hosts[1]
    host.set_gpu(mode)
    result = ssh(cluster, host, NVIDIA_SMI)
    assert result.returncode == status, result.stderr
    assert expected in result.stdout
    gpus = {"healthy": 2, "one-gpu": 1, "hot": 2, "other-model": 2, "na": 2}
    if mode in gpus:
        rows = result.stdout.splitlines()
        assert len(rows) == gpus[mode]
        assert all(len(row.split(", ")) == 9 for row in rows)
    if mode == "empty":
        assert result.stdout == ""


def test_modes_are_per_host(cluster: TestCluster) -> None:
    """Changing one host's mode leaves the other host's answers alone."""
    cluster.hosts[0].set_gpu("driver")
    assert ssh(cluster, cluster.hosts[0], NVIDIA_SMI).returncode == 9
    assert ssh(cluster, cluster.hosts[1], NVIDIA_SMI).returncode == 0


def test_unknown_mode_is_rejected(cluster: TestCluster) -> None:
    """A typo in a mode name fails the test instead of silently meaning 'healthy'."""
    with pytest.raises(ValueError, match="unknown gpu mode"):
        cluster.hosts[0].set_gpu("healty")
    with pytest.raises(ValueError, match="unknown torch mode"):
        cluster.hosts[0].set_torch("cuda")


@pytest.mark.parametrize(
    ("mode", "status", "stdout", "stderr"),
    [
        ("healthy", 0, "2\n", ""),
        ("one-device", 0, "1\n", ""),
        ("nocuda", 0, "0\n", ""),
        ("broken", 1, "", "OSError: libcudart.so.12: cannot open shared object file"),
        ("missing", 1, "", "ModuleNotFoundError: No module named 'torch'"),
    ],
)
def test_python_torch_follows_torch_mode(
    cluster: TestCluster, mode: str, status: int, stdout: str, stderr: str
) -> None:
    """The python3 stub imports the fake torch, which answers per torch mode."""
    host = cluster.hosts[0]
    host.set_torch(mode)
    result = ssh(cluster, host, TORCH_COUNT)
    assert (result.returncode, result.stdout) == (status, stdout), result.stderr
    assert stderr in result.stderr


def test_fake_torch_reports_versions_and_names(cluster: TestCluster) -> None:
    """The fake torch offers the version and device-name API ugro's probe reads."""
    probe = (
        "python3 -c 'import torch; print(torch.__version__, torch.version.cuda,"
        " torch.cuda.is_available(), torch.cuda.get_device_name(1))'"
    )
    result = ssh(cluster, cluster.hosts[0], probe)
    assert result.stdout == "2.5.1+cu124 12.4 True NVIDIA GeForce RTX 4090\n", result.stderr
    cluster.hosts[0].set_torch("nocuda")
    probe = (
        "python3 -c 'import torch; print(torch.__version__, torch.version.cuda,"
        " torch.cuda.is_available())'"
    )
    result = ssh(cluster, cluster.hosts[0], probe)
    assert result.stdout == "2.5.1+cpu None False\n", result.stderr


@pytest.mark.parametrize(("kind", "command"), [("gpu", NVIDIA_SMI), ("torch", TORCH_COUNT)])
def test_hang_mode_hangs_and_reset_clears_it(cluster: TestCluster, kind: str, command: str) -> None:
    """`hang` modes never answer, and reset() kills the command left behind on the host."""
    host = cluster.hosts[0]
    if kind == "gpu":
        host.set_gpu("hang")
    else:
        host.set_torch("hang")
    with pytest.raises(subprocess.TimeoutExpired):
        ssh(cluster, host, command, timeout=1.5)
    assert host.stub_processes()
    host.reset()
    assert host.stub_processes() == []
    assert ssh(cluster, host, command).returncode == 0


def test_pause_makes_the_handshake_hang(cluster: TestCluster) -> None:
    """pause() lets TCP connect but withholds the SSH banner; resume() brings it back."""
    host = cluster.hosts[1]
    host.pause()
    with socket.create_connection((host.addr, host.port), timeout=2) as sock:
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(64)
    started = time.monotonic()
    result = ssh(cluster, host, "true", "-o", "ConnectTimeout=1")
    assert result.returncode == 255
    assert time.monotonic() - started < 10
    host.resume()
    assert ssh(cluster, host, "true").returncode == 0


def test_kill_refuses_connections_and_start_restores(cluster: TestCluster) -> None:
    """kill() takes the host off the network (connection refused); start() brings it back."""
    host = cluster.hosts[1]
    port = host.port
    host.kill()
    assert host.pid is None
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host.addr, port), timeout=2).close()
    host.start()
    assert (host.port, ssh(cluster, host, "true").returncode) == (port, 0)


def test_regenerated_host_key_is_refused(cluster: TestCluster) -> None:
    """After regenerate_host_key() strict ssh refuses the host; reset() restores the key."""
    host = cluster.hosts[0]
    original = host.host_key_line()
    host.regenerate_host_key()
    assert host.host_key_line() != original
    result = ssh(cluster, host, "true")
    assert result.returncode == 255
    assert "HOST IDENTIFICATION HAS CHANGED" in result.stderr
    host.reset()
    assert host.host_key_line() == original
    assert ssh(cluster, host, "true").returncode == 0


def test_unused_address_refuses(cluster: TestCluster) -> None:
    """unused_address() names a loopback address and port where connects are refused."""
    addr, port = cluster.unused_address()
    assert addr.startswith("127.")
    assert addr not in {h.addr for h in cluster.hosts}
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((addr, port), timeout=2).close()


def test_full_filesystem_has_no_space(cluster: TestCluster) -> None:
    """full_filesystem() is a mounted filesystem that df reports as (nearly) full."""
    mount_point = cluster.full_filesystem()
    assert cluster.full_filesystem() == mount_point
    result = subprocess.run(
        [DF, "-P", "-B1", str(mount_point)], capture_output=True, text=True, check=True
    )
    fields = result.stdout.splitlines()[1].split()
    assert fields[5] == str(mount_point)
    assert int(fields[3]) < 64 * 1024


def test_write_config_describes_the_cluster(cluster: TestCluster, tmp_path: Path) -> None:
    """write_config() emits cluster.yaml with every host, plus overrides where asked."""
    path = cluster.write_config(
        tmp_path / "cluster.yaml",
        workers_extra={"h1": {"gpus": 1}},
        host_key_policy="accept-new",
    )
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert config["user"] == cluster.user
    assert config["identity_file"] == str(cluster.client_key)
    assert config["known_hosts"] == str(cluster.known_hosts)
    assert config["host_key_policy"] == "accept-new"
    assert config["timeouts"]["connect"] == 3
    assert [(w["name"], w["ip"], w["ssh_port"], w["gpus"]) for w in config["workers"]] == [
        ("h0", "127.0.0.10", cluster.hosts[0].port, 2),
        ("h1", "127.0.0.11", cluster.hosts[1].port, 1),
    ]
    only = cluster.write_config(tmp_path / "one.yaml", hosts=[cluster.hosts[1]])
    assert [w["name"] for w in yaml.safe_load(only.read_text(encoding="utf-8"))["workers"]] == [
        "h1"
    ]


def test_stop_all_leaves_nothing_running(tmp_path: Path) -> None:
    """stop_all() kills every sshd and hung command and unmounts the full filesystem."""
    own = TestCluster.start(tmp_path, 1)
    host = own.hosts[0]
    pid = host.pid
    mount_point = own.full_filesystem()
    host.set_gpu("hang")
    with pytest.raises(subprocess.TimeoutExpired):
        ssh(own, host, NVIDIA_SMI, timeout=1.5)
    own.stop_all()
    own.stop_all()  # idempotent
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # signal 0: only asks whether the pid exists
    assert host.stub_processes() == []
    assert not mount_point.is_mount()
