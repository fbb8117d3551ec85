"""`ugro describe NODE`: one node in full, from the state file and the history database."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, datetime, timedelta

from click.testing import CliRunner, Result

from hostile import healthy
from ugro import config, paths
from ugro.cli import main
from ugro.model import Alert, CheckResult, NodeStatus, NodeVerdict, Status
from ugro.store.cordons import Cordon, CordonStore
from ugro.store.history import opened, path_for
from ugro.store.history_records import Sample, Transition
from ugro.store.state import StateStore

CONTROL = re.compile("[\x1b\x07\x9b\x9c\x9d]")


def ugro(*args: str) -> Result:
    """Run the real command line in this process."""
    return CliRunner().invoke(main, list(args))


def sick() -> NodeVerdict:
    """gpu1, unhealthy, with a hostile message, GPU name and version."""
    base = healthy("gpu1")
    hostile = "Xid 79 \x1b]0;owned\x07[bold]x[/]"
    return dataclasses.replace(
        base,
        status=NodeStatus.UNHEALTHY,
        health_score=41.0,
        checks=(*base.checks, CheckResult("xid", Status.FAIL, hostile, 79.0, None, 8.5)),
        alerts=(Alert("critical", f"xid: {hostile}"),),
        versions={"driver": "550\x1b[2J", "torch": "2.4.0"},
    )


def test_describe_shows_every_part_of_the_node() -> None:
    """Checks with value, message and duration; GPUs, host, disks, versions, cordon, tracking."""
    StateStore(paths.state_file()).update([sick()], keep=["gpu1"], config="/c\x1b]0;x\x07.yaml")
    CordonStore().cordon(Cordon("gpu1", "manual", "RMA", datetime.now(UTC), user="ops"))
    ran = ugro("describe", "gpu1")
    assert ran.exit_code == 0, ran.output
    text = ran.output
    assert text.startswith("gpu1 (gpu1.example.org): unhealthy, score 41")
    [xid] = [line for line in text.splitlines() if line.strip().startswith("xid  ")]
    assert xid.split()[:4] == ["xid", "fail", "79", "8"]
    assert xid.rstrip().endswith("Xid 79 [bold]x[/]")
    assert "NVIDIA H100" in text
    assert "64 CPUs" in text
    assert "100.0 GiB" in text
    assert "versions: driver 550, torch 2.4.0" in text
    assert "cordoned by ops (manual) since" in text
    assert "tracking (the daemon's hysteresis):" in text
    assert "recent status changes: no history yet" in text
    assert text.splitlines()[-1].startswith("config: /c.yaml; state: ")
    assert not CONTROL.search(text)


def test_describe_shows_recent_transitions_from_the_history() -> None:
    """The node's status changes from the history database, newest last."""
    node = sick()
    StateStore(paths.state_file()).update([node], keep=["gpu1"])
    now = datetime.now(UTC)
    with opened(path_for(config.load(None).history)) as history:
        history.record(
            [Sample(node, 30)],
            [
                Transition(now - timedelta(hours=2), "gpu1", "unknown", "healthy", "all pass"),
                Transition(now - timedelta(minutes=5), "gpu1", "healthy", "unhealthy", "xid"),
            ],
        )
    ran = ugro("describe", "gpu1")
    assert ran.exit_code == 0, ran.output
    lines = ran.output.splitlines()
    start = lines.index("recent status changes:")
    assert lines[start + 1].split() == ["AT", "FROM", "TO", "WHY"]
    assert lines[start + 2].split()[2:] == ["unknown", "healthy", "all", "pass"]
    assert lines[start + 3].split()[2:] == ["healthy", "unhealthy", "xid"]
    document = json.loads(ugro("describe", "gpu1", "--json").output)
    assert [t["after"] for t in document["transitions"]] == ["healthy", "unhealthy"]
    assert document["node"]["checks"]["xid"]["value"] == 79.0
    assert document["history_note"] is None


def test_describe_a_node_never_checked() -> None:
    """A configured node without a verdict is described as such, exit 0."""
    StateStore(paths.state_file()).update([healthy("gpu1")], keep=["gpu1", "gpu2"])
    ran = ugro("describe", "gpu2")
    assert ran.exit_code == 0, ran.output
    assert ran.output.startswith("gpu2: unknown, never checked")
    document = json.loads(ugro("describe", "gpu2", "--json").output)
    assert document["node"]["checked"] is False


def test_describe_an_unknown_node_names_the_known_ones() -> None:
    """No such node: exit 1, and the nodes there are, runs compressed."""
    StateStore(paths.state_file()).update(
        [healthy(f"gpu{i}") for i in range(1, 6)], keep=[f"gpu{i}" for i in range(1, 6)]
    )
    ran = ugro("describe", "gpu9\x1b[2J")
    assert ran.exit_code == 1
    assert "no node 'gpu9" in ran.output
    assert "nodes: gpu1…gpu5" in ran.output
    assert not CONTROL.search(ran.output)


def test_describe_with_a_corrupt_state_says_why() -> None:
    """An unreadable state file: one line naming it, exit 1, no traceback."""
    path = paths.state_file()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"{")
    ran = ugro("describe", "gpu1")
    assert ran.exit_code == 1
    assert "corrupt" in ran.output
