"""Slurm as the scheduler: the scontrol parser from captured output, then a real slurmctld.

The real controller (tests/slurmcluster.py: munged, slurmctld and one slurmd on loopback)
starts once per run, in well under a second.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from conftest import FIXTURES, STUBS, wait_for
from slurmcluster import NODE, SlurmCluster, installed
from ugro import config
from ugro.errors import ConfigError, SchedulerError
from ugro.recovery import scheduler
from ugro.recovery.slurm import MARK, MAX_REASON_CHARS, NodeInfo, Slurm, marked, parse_nodes

if TYPE_CHECKING:
    from collections.abc import Iterator

HANG_STUB = STUBS / "scontrol-hang"


def scontrol_fixture(name: str) -> str:
    """Captured `scontrol show node -o` output."""
    return (FIXTURES / "scontrol" / name).read_text(encoding="utf-8")


# --- the parser, from captured output ------------------------------------------------------


def test_idle_node_has_no_reason() -> None:
    """An idle node (Slurm 22.05, OS= field with spaces) parses to IDLE and no Reason."""
    [info] = parse_nodes(scontrol_fixture("idle.txt")).values()
    assert info == NodeInfo(NODE, "IDLE")
    assert not info.drained
    assert not info.by_ugro


def test_ugro_drain_is_recognised_by_its_mark() -> None:
    """A drain of ugro's: IDLE+DRAIN, the Reason without Slurm's [user@time] suffix."""
    info = parse_nodes(scontrol_fixture("drained-ugro.txt"))[NODE]
    assert info.state == "IDLE+DRAIN"
    assert info.reason == "ugro: gpu: the NVIDIA driver is not loaded (exit 9)"
    assert (info.reason_user, info.reason_time) == ("root", "2026-11-28T17:55:12")
    assert info.drained
    assert info.by_ugro


def test_a_persons_drain_is_not_ugros() -> None:
    """A person's Reason, brackets and all, is kept whole and is not ugro's."""
    info = parse_nodes(scontrol_fixture("drained-person.txt"))[NODE]
    assert info.reason == "fan replaced, burn-in [ticket 42]"
    assert info.drained
    assert not info.by_ugro


def test_several_records_and_newer_fields() -> None:
    """One record a line; MIXED+DRAIN and DOWN+DRAIN are drained; Comment=/Extra= may follow."""
    nodes = parse_nodes(scontrol_fixture("several-hand-edited.txt"))
    assert list(nodes) == ["gpu1", "gpu2", "gpu3"]
    assert nodes["gpu1"].state == "MIXED+DRAIN"
    assert nodes["gpu1"].reason == "ugro: torch: CUDA not available"
    assert nodes["gpu1"].reason_user == "slurm"
    assert nodes["gpu1"].by_ugro
    assert nodes["gpu2"].flags == {"DOWN", "DRAIN", "NOT_RESPONDING"}
    assert nodes["gpu2"].reason == "RMA: PSU, see ticket INC-4411"
    assert nodes["gpu2"].drained
    assert not nodes["gpu2"].by_ugro
    assert nodes["gpu3"] == NodeInfo("gpu3", "ALLOCATED")


@pytest.mark.parametrize(
    "text",
    ["Node nosuch not found", "NodeName=x Arch=x86_64", "State=IDLE Reason=x"],
)
def test_not_a_node_record_is_an_error(text: str) -> None:
    """A line without NodeName or State is rejected, not read as a healthy node."""
    with pytest.raises(ValueError, match="not a node record"):
        parse_nodes(text)


def test_empty_output_has_no_nodes() -> None:
    """Blank output is no nodes."""
    assert parse_nodes("\n\n") == {}


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("gpu: driver not loaded", "ugro: gpu: driver not loaded"),
        ("ugro: already marked", "ugro: already marked"),
        ("two\nlines\tand  spaces", "ugro: two lines and spaces"),
        ("gpu: A100\x1b]0;owned\x07\x1b[2J gone", "ugro: gpu: A100 gone"),
        ("", "ugro:"),
    ],
)
def test_reasons_are_marked(reason: str, expected: str) -> None:
    """Every Reason ugro sets starts with the mark, once, on one line, without escapes."""
    assert marked(reason) == expected


def test_long_reasons_are_shortened() -> None:
    """A Reason stays short enough for `sinfo -R`."""
    text = marked("x" * 1000)
    assert len(text) == MAX_REASON_CHARS
    assert text.startswith(MARK)
    assert text.endswith("…")


# --- config and factory ---------------------------------------------------------------------


def test_scheduler_defaults_to_none(tmp_path: Path) -> None:
    """Without `scheduler:` cordons stay ugro's own."""
    path = tmp_path / "cluster.yaml"
    path.write_text("workers: [{name: gpu1, ip: 10.0.0.1}]\n", encoding="utf-8")
    cfg = config.load(path)
    assert cfg.scheduler == "none"
    assert scheduler.for_config(cfg).name == "none"


def test_slurm_settings_reach_the_scheduler(tmp_path: Path) -> None:
    """scheduler: slurm builds a Slurm with the configured scontrol, timeout and node names."""
    path = tmp_path / "cluster.yaml"
    path.write_text(
        "scheduler: slurm\n"
        "slurm: {scontrol: sudo -n /usr/bin/scontrol, timeout_s: 3}\n"
        "workers:\n"
        "  - {name: gpu1, ip: 10.0.0.1, slurm_node: node001}\n"
        "  - {name: gpu2, ip: 10.0.0.2}\n",
        encoding="utf-8",
    )
    made = scheduler.for_config(config.load(path))
    assert isinstance(made, Slurm)
    assert made.argv == ["sudo", "-n", "/usr/bin/scontrol"]
    assert made.timeout_s == 3
    assert made.slurm_name("gpu1") == "node001"
    assert made.slurm_name("gpu2") == "gpu2"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("scheduler: pbs\n", "2: scheduler: Input should be 'none' or 'slurm', got 'pbs'"),
        ("slurm: {timeout_s: 0}\n", "2: slurm.timeout_s: Input should be greater than 0"),
        ("slurm:\n  scontrl: x\n", "3: slurm.scontrl: unknown key; did you mean 'scontrol'?"),
        ("slurm: {scontrol: ''}\n", "2: slurm.scontrol: must name the scontrol program"),
        (
            "workers:\n  - {name: gpu1, ip: 10.0.0.1, slurm_node: 'a b'}\n",
            "2: workers[0].slurm_node: expected a Slurm node name",
        ),
    ],
)
def test_bad_slurm_settings_are_reported_by_line(text: str, message: str) -> None:
    """Each mistake names its line and field."""
    body = text if text.startswith("workers") else "workers: [{name: g, ip: 10.0.0.1}]\n" + text
    with pytest.raises(ConfigError) as caught:
        config.parse_text(body, "cluster.yaml")
    assert f"cluster.yaml:{message}" in str(caught.value)


# --- against a real slurmctld ---------------------------------------------------------------


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    """munged, slurmctld and one slurmd on loopback, started once for the run."""
    assert installed(), "Slurm or MUNGE is missing: scripts/test installs them"
    base = tmp_path_factory.mktemp("slurm")
    base.chmod(0o700)
    with SlurmCluster.start(base) as cluster:
        yield cluster


@pytest.fixture
def slurm(slurm_cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch) -> SlurmCluster:
    """The controller with its node IDLE and undrained; scontrol pointed at it by SLURM_CONF."""
    slurm_cluster.reset()
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.conf))
    return slurm_cluster


def test_drain_sets_a_marked_reason(slurm: SlurmCluster) -> None:
    """drain() drains the node with Reason 'ugro: …', as scontrol itself shows it."""
    Slurm().drain(NODE, "gpu: the NVIDIA driver is not loaded (exit 9)")
    shown = slurm.show()
    assert "State=IDLE+DRAIN " in shown
    assert " Reason=ugro: gpu: the NVIDIA driver is not loaded (exit 9) [root@" in shown


def test_resume_lifts_ugros_drain(slurm: SlurmCluster) -> None:
    """resume() after ugro's drain brings the node back to IDLE, Reason gone."""
    made = Slurm()
    made.drain(NODE, "disk: /scratch full")
    assert made.resume(NODE) is True
    assert "DRAIN" not in slurm.state()
    assert "Reason=" not in slurm.show()
    # Slurm pings the node's slurmd after a resume; until it answers it shows NOT_RESPONDING.
    wait_for(lambda: slurm.state() == "IDLE", f"{NODE} to be IDLE")


def test_a_persons_drain_is_left_alone(slurm: SlurmCluster) -> None:
    """resume() leaves a person's drain, and drain() does not overwrite the person's Reason."""
    done = slurm.scontrol("update", f"NodeName={NODE}", "State=DRAIN", "Reason=fan replaced")
    assert done.returncode == 0, done.stderr
    made = Slurm()
    assert made.resume(NODE) is False
    made.drain(NODE, "gpu: lost")
    assert made.resume(NODE) is False
    info = parse_nodes(slurm.show())[NODE]
    assert info.drained
    assert info.reason == "fan replaced"


def test_resume_of_an_undrained_node_has_nothing_to_undo(slurm: SlurmCluster) -> None:
    """An IDLE node without a Reason: resume() is True and runs no update (Slurm refuses one)."""
    assert Slurm().resume(NODE) is True
    assert slurm.state() == "IDLE"


def test_slurm_node_names_are_mapped(slurm: SlurmCluster) -> None:
    """The node's ugro name is translated to its configured Slurm node name."""
    made = Slurm(node_names={"gpu1": NODE})
    made.drain("gpu1", "torch: CUDA not available")
    assert parse_nodes(slurm.show())[NODE].by_ugro
    assert made.resume("gpu1") is True


@pytest.mark.usefixtures("slurm")
def test_unknown_node_is_an_error_with_scontrols_message() -> None:
    """A node Slurm does not know: SchedulerError with scontrol's own words."""
    with pytest.raises(SchedulerError, match="Node nosuch not found"):
        Slurm().drain("nosuch", "x")
    with pytest.raises(SchedulerError, match=r"scontrol show node -o nosuch failed \(exit 1\)"):
        Slurm().resume("nosuch")


@pytest.mark.usefixtures("slurm")
def test_refused_update_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An update slurmctld refuses (here: a bogus state, through a wrapper) raises its message."""
    wrapper = tmp_path / "scontrol"
    wrapper.write_text(
        '#!/bin/sh\nif [ "$1" = update ]; then set -- update "$2" State=BOGUS; fi\n'
        'exec /usr/bin/scontrol "$@"\n',
        encoding="utf-8",
    )
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    with pytest.raises(SchedulerError, match=r"scontrol update NodeName=ugro-n1 .* failed"):
        Slurm().drain(NODE, "x")


@pytest.mark.integration
def test_controller_down_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No slurmctld answers: SchedulerError naming the failure, within the timeout."""
    conf = tmp_path / "slurm.conf"
    conf.write_text(
        "ClusterName=none\nSlurmctldHost=localhost\nSlurmctldPort=1\n"
        "MessageTimeout=2\nAuthType=auth/none\nNodeName=n1\nPartitionName=p Nodes=ALL\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("SLURM_CONF", str(conf))
    with pytest.raises(SchedulerError, match="Unable to contact slurm controller"):
        Slurm(timeout_s=30).drain("n1", "x")


def test_missing_scontrol_is_an_error() -> None:
    """A scontrol that is not installed: SchedulerError saying what to set."""
    with pytest.raises(SchedulerError, match=r"cannot run .*slurm: scontrol"):
        Slurm(scontrol="/nonexistent/scontrol").resume("gpu1")


def test_hanging_scontrol_is_killed_after_the_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scontrol that never returns: SchedulerError after timeout_s, its whole group killed."""
    pidfile = tmp_path / "child.pid"
    monkeypatch.setenv("UGRO_HANG_PIDFILE", str(pidfile))
    made = Slurm(scontrol=str(HANG_STUB), timeout_s=0.5)
    start = time.monotonic()
    with pytest.raises(SchedulerError, match=r"no answer within 0\.5 s \(slurm\.timeout_s\)"):
        made.drain("gpu1", "x")
    assert time.monotonic() - start < 5
    child = int(pidfile.read_text(encoding="utf-8"))
    wait_for(lambda: gone(child), "the stub's child to be gone", 5)


def gone(pid: int) -> bool:
    """Whether `pid` has exited (a zombie waiting for a reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except FileNotFoundError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"
