"""The issue's reproductions, each through the real path: what crashed or lied, and no more.

A torch probe reporting 10^20 devices crashed the daemon writing the history; a 400-digit
line from the ssh check crashed scoring; a 310-digit free space from df made every scrape
of /metrics fail; nan or -500 °C passed the temperature check and `--json` printed NaN.
(100 MB from nvidia-smi is tests/integration/test_flooding_node.py: it needs sshd.)
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner
from prometheus_client import generate_latest

from hostilenodes import HEALTHY, VICTIM, HostileTransport, with_number, write_config
from ugro import config, exporter, paths, sweep
from ugro.cli import main
from ugro.model import CommandResult, NodeStatus, Status
from ugro.store.history import History
from ugro.store.history_records import Sample
from ugro.store.state import StateStore
from ugro.sweep import Transports

if TYPE_CHECKING:
    from pathlib import Path

    from ugro.model import CheckResult, NodeVerdict


def swept(tmp_path: Path, kind: str, text: str) -> dict[str, NodeVerdict]:
    """One sweep of the hostile cluster, the victim answering `text` to the `kind` command."""
    cfg = config.load(write_config(tmp_path / "cluster.yaml"))
    transport = HostileTransport({kind: CommandResult(0, text)})

    async def run() -> list[NodeVerdict]:
        return await sweep.sweep(cfg.nodes, Transports(ssh=transport, local=transport))

    return {v.name: v for v in asyncio.run(run())}


def check(verdict: NodeVerdict, name: str) -> CheckResult:
    """The check called `name` of `verdict`."""
    return next(c for c in verdict.checks if c.name == name)


def test_a_device_count_of_ten_to_the_twenty_is_unknown_and_recorded(tmp_path: Path) -> None:
    """A torch probe reporting 10^20 devices is unknown, naming it; the history records it."""
    report = json.loads(HEALTHY["torch"].removeprefix("UGRO-TORCH "))
    report["devices"] = 10**20
    verdicts = swept(tmp_path, "torch", "UGRO-TORCH " + json.dumps(report) + "\n")
    torch = check(verdicts[VICTIM], "torch")
    assert torch.status is Status.UNKNOWN
    assert "the CUDA device count is 100000000000000000000, not a reading" in torch.message
    assert torch.value is None
    history = History(tmp_path / "history.db")
    try:
        history.record([Sample(v, 30) for v in verdicts.values()])
    finally:
        history.close()


def test_a_400_digit_line_from_the_ssh_check_is_unknown_not_a_crash(tmp_path: Path) -> None:
    """A 400-digit CPU count: the sweep survives; ssh is unknown and the node not healthy."""
    text = HEALTHY["ssh"].replace("\n32\n", "\n" + "7" * 400 + "\n")
    verdicts = swept(tmp_path, "ssh", text)
    ssh = check(verdicts[VICTIM], "ssh")
    assert ssh.status is Status.UNKNOWN
    assert "the CPU count is '7777" in ssh.message
    assert len(ssh.message) < 200
    assert verdicts[VICTIM].status is NodeStatus.UNHEALTHY
    assert verdicts["n1"].status is NodeStatus.HEALTHY


def test_a_310_digit_free_space_leaves_metrics_working(tmp_path: Path) -> None:
    """A df saying 10^310 KiB available: disk unknown; /metrics and `ugro metrics` still work."""
    text = with_number("disk", 2, "1" + "0" * 310)
    verdicts = swept(tmp_path, "disk", text)
    disk = check(verdicts[VICTIM], "disk")
    assert disk.status is Status.UNKNOWN
    assert "available space of / is '1000" in disk.message
    assert verdicts[VICTIM].disks == ()
    StateStore(paths.state_file()).update(verdicts.values())
    metrics = generate_latest(exporter.registry(paths.state_file())).decode()
    assert 'ugro_node_up{node="n2"} 1.0' in metrics
    ran = CliRunner().invoke(main, ["metrics"])
    assert ran.exit_code == 0, ran.output


@pytest.mark.parametrize("reading", ["nan", "-500", "NaN", "inf"])
def test_an_impossible_temperature_is_unknown_and_json_stays_strict(
    tmp_path: Path, reading: str
) -> None:
    """A GPU at nan or -500 °C: temperature unknown naming it, node not healthy, JSON strict."""
    verdicts = swept(tmp_path, "health", with_number("health", 2, reading))
    temperature = check(verdicts[VICTIM], "temperature")
    assert temperature.status is Status.UNKNOWN
    assert f"temperature.gpu of GPU 0 is '{reading}', not a reading in -40 to 150 °C" in (
        temperature.message
    )
    assert verdicts[VICTIM].status is not NodeStatus.HEALTHY
    StateStore(paths.state_file()).update(verdicts.values())
    ran = CliRunner().invoke(main, ["health", "--json"])

    def refuse(constant: str) -> object:
        raise AssertionError(f"{constant} in `ugro health --json`")

    nodes = json.loads(ran.stdout, parse_constant=refuse)["nodes"]
    assert {n["name"]: n["status"] for n in nodes}[VICTIM] != "healthy"
