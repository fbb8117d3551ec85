"""Cordons: the store's semantics under concurrency and corruption, and the command line."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner, Result

from conftest import run_ugro
from recording_scheduler import Recorder
from ugro import cli, paths
from ugro.cli import cordons as cordon_commands
from ugro.errors import StateError
from ugro.model import NodeStatus
from ugro.store.cordons import Cordon, CordonStore
from ugro.store.history import opened
from ugro.store.state import StateStore

if TYPE_CHECKING:
    from pathlib import Path

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def manual(node: str, reason: str = "fan replaced") -> Cordon:
    """A person's cordon of `node`."""
    return Cordon(node, "manual", reason, NOW, user="alice")


def automatic(node: str, *, escalated: bool = False) -> Cordon:
    """The daemon's cordon of `node`."""
    return Cordon(node, "ugro", "unhealthy: gpu: driver not loaded", NOW, escalated=escalated)


@pytest.fixture
def store(tmp_path: Path) -> CordonStore:
    """A store whose file does not exist yet."""
    return CordonStore(tmp_path / "state" / "cordons.json")


# --- the store -------------------------------------------------------------------------------


def test_no_file_means_no_cordons(store: CordonStore) -> None:
    """Before anyone cordons anything, nothing is cordoned and no file is made."""
    assert store.read() == {}
    assert not store.path.exists()


def test_cordon_round_trips_and_is_private(store: CordonStore) -> None:
    """A cordon reads back equal, in a file only its owner can read."""
    assert store.cordon(manual("gpu1")) is None
    assert store.cordon(automatic("gpu2", escalated=True)) is None
    assert store.read() == {"gpu1": manual("gpu1"), "gpu2": automatic("gpu2", escalated=True)}
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


def test_cordon_keeps_the_cordon_in_place(store: CordonStore) -> None:
    """Cordoning a cordoned node changes nothing and returns the cordon already there."""
    store.cordon(manual("gpu1", "first"))
    assert store.cordon(manual("gpu1", "second")) == manual("gpu1", "first")
    assert store.cordon(automatic("gpu1"), replace_ugro=True) == manual("gpu1", "first")
    assert store.read()["gpu1"].reason == "first"


def test_reword_changes_only_a_persons_cordon_with_another_reason(store: CordonStore) -> None:
    """A person's cordon takes a new reason and its new author, keeping `since`; else nothing."""
    assert store.reword("gpu1", "second", user="bob") is None
    store.cordon(automatic("gpu2"))
    assert store.reword("gpu2", "second", user="bob") is None
    store.cordon(manual("gpu1", "first"))
    assert store.reword("gpu1", "first", user="bob") is None
    assert store.reword("gpu1", "second", user="bob") == manual("gpu1", "first")
    reworded = store.read()["gpu1"]
    assert (reworded.reason, reworded.user, reworded.since) == (
        "second",
        "bob",
        manual("gpu1").since,
    )
    assert store.read()["gpu2"] == automatic("gpu2")


def test_replace_ugro_takes_over_only_the_daemons_cordon(store: CordonStore) -> None:
    """A person (or an escalation) replaces a ugro cordon; without the flag it stays."""
    store.cordon(automatic("gpu1"))
    assert store.cordon(manual("gpu1")) == automatic("gpu1")
    assert store.read()["gpu1"].by == "ugro"
    assert store.cordon(manual("gpu1"), replace_ugro=True) == automatic("gpu1")
    assert store.read()["gpu1"] == manual("gpu1")


def test_uncordon_only_by_ugro_never_lifts_a_person_or_an_escalation(
    store: CordonStore,
) -> None:
    """The daemon's uncordon lifts its own plain cordons and nothing else."""
    store.cordon(manual("gpu1"))
    store.cordon(automatic("gpu2", escalated=True))
    store.cordon(automatic("gpu3"))
    assert store.uncordon("gpu1", only_by="ugro") is None
    assert store.uncordon("gpu2", only_by="ugro") is None
    assert store.uncordon("gpu3", only_by="ugro") == automatic("gpu3")
    assert sorted(store.read()) == ["gpu1", "gpu2"]
    assert store.uncordon("gpu1") == manual("gpu1")
    assert store.uncordon("gpu2") == automatic("gpu2", escalated=True)
    assert store.uncordon("gpu2") is None
    assert store.read() == {}


def test_default_path_follows_ugro_home(isolated_home: Path) -> None:
    """The cordons file lives in $UGRO_HOME, beside the history, not in the cache."""
    assert CordonStore().path == isolated_home / "cordons.json" == paths.cordons_file()


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"[]",
        b'{"schema_version": 1}',
        b'{"schema_version": 7, "cordons": {}}',
        (
            b'{"schema_version": 1, "cordons": {"gpu1": {"node": "gpu1", "by": "robot",'
            b' "reason": "x", "since": "2026-11-28T12:00:00+00:00"}}}'
        ),
        (
            b'{"schema_version": 1, "cordons": {"gpu1": {"node": "gpu1", "by": "ugro",'
            b' "reason": "x", "since": "2026-11-28T12:00:00"}}}'
        ),
    ],
)
def test_corrupt_file_is_an_error_and_left_alone(store: CordonStore, content: bytes) -> None:
    """A corrupt file is reported, never rebuilt: it holds people's decisions."""
    store.path.parent.mkdir(parents=True)
    store.path.write_bytes(content)
    with pytest.raises(StateError, match=r"cordons\.json"):
        store.read()
    with pytest.raises(StateError):
        store.cordon(manual("gpu1"))
    with pytest.raises(StateError):
        store.uncordon("gpu1")
    assert store.path.read_bytes() == content


def test_newer_schema_asks_for_an_upgrade(store: CordonStore) -> None:
    """A file from a newer ugro says so instead of calling itself corrupt."""
    store.path.parent.mkdir(parents=True)
    store.path.write_text('{"schema_version": 2, "cordons": {}}', encoding="utf-8")
    with pytest.raises(StateError, match="newer ugro"):
        store.read()


WORKER = """
import sys
from datetime import UTC, datetime
from pathlib import Path
from ugro.store.cordons import Cordon, CordonStore

store = CordonStore(Path(sys.argv[1]))
worker = sys.argv[2]
for i in range(int(sys.argv[3])):
    node = f"{worker}-{i}"
    store.cordon(Cordon(node, "manual", "load test", datetime.now(UTC), user=worker))
    if i % 3 == 0:
        store.uncordon(node)
"""


@pytest.mark.integration
def test_concurrent_cordons_from_processes_lose_nothing(store: CordonStore) -> None:
    """Several processes cordoning and uncordoning at once: every change survives."""
    workers, each = 4, 15
    processes = [
        subprocess.Popen([sys.executable, "-c", WORKER, str(store.path), f"w{w}", str(each)])
        for w in range(workers)
    ]
    for process in processes:
        assert process.wait(timeout=120) == 0
    expected = {f"w{w}-{i}" for w in range(workers) for i in range(each) if i % 3}
    assert set(store.read()) == expected
    assert not list(store.path.parent.glob("*.tmp"))


# --- the command line --------------------------------------------------------------------------


def write_cluster(home: Path, extra: str = "") -> Path:
    """A cluster.yaml of three workers in `home`, the default location under $UGRO_HOME."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "cluster.yaml"
    path.write_text(
        "workers:\n"
        "  - {name: gpu1, ip: 10.0.0.1}\n"
        "  - {name: gpu2, ip: 10.0.0.2}\n"
        "  - {name: gpu3, ip: 10.0.0.3}\n" + extra,
        encoding="utf-8",
    )
    return path


@pytest.mark.integration
def test_cordon_list_and_uncordon(isolated_home: Path) -> None:
    """A person cordons with a reason, lists, and uncordons; each step says what it did."""
    write_cluster(isolated_home)
    listed = run_ugro("cordon")
    assert (listed.code, listed.out) == (0, "no node is cordoned\n")

    done = run_ugro("cordon", "gpu2", "--reason", "  replacing the\nPSU ")
    assert done.code == 0, done.err
    assert done.out.splitlines() == ["cordoned gpu2: replacing the PSU"]
    cordon = CordonStore().read()["gpu2"]
    assert (cordon.by, cordon.reason, cordon.escalated) == ("manual", "replacing the PSU", False)
    assert cordon.user
    assert abs((datetime.now(UTC) - cordon.since).total_seconds()) < 60

    table = run_ugro("cordon")
    assert table.code == 0
    assert "gpu2" in table.out
    assert "replacing the PSU" in table.out
    assert f"{cordon.user} (manual)" in table.out
    as_json = run_ugro("cordon", "--json").json()
    assert as_json == {"schema_version": 1, "cordons": [cordon.to_json()]}

    again = run_ugro("cordon", "gpu2", "--reason", "replacing the PSU")
    assert again.code == 0
    assert "already cordoned" in again.out
    assert "replacing the PSU" in again.out
    assert CordonStore().read()["gpu2"] == cordon

    reworded = run_ugro("cordon", "gpu2", "--reason", "PSU and fan")
    assert reworded.code == 0, reworded.err
    assert reworded.out == (
        "gpu2 was already cordoned; reason updated: 'replacing the PSU' → 'PSU and fan'\n"
    )
    assert CordonStore().read()["gpu2"] == dataclasses.replace(cordon, reason="PSU and fan")
    cordon = CordonStore().read()["gpu2"]

    lifted = run_ugro("uncordon", "gpu2")
    assert lifted.code == 0, lifted.err
    assert "uncordoned gpu2" in lifted.out
    assert f"by {cordon.user} (manual)" in lifted.out
    assert "PSU and fan" in lifted.out
    assert CordonStore().read() == {}

    idle = run_ugro("uncordon", "gpu2")
    assert (idle.code, idle.out) == (0, "gpu2 is not cordoned\n")
    assert run_ugro("uncordon", "gpu2", "--json").json() == {
        "node": "gpu2",
        "changed": False,
        "cordon": None,
    }


@pytest.mark.integration
def test_cordon_json_reports_the_change(isolated_home: Path) -> None:
    """`--json` on cordon and uncordon describes the cordon and what the scheduler said."""
    write_cluster(isolated_home)
    placed = run_ugro("cordon", "gpu1", "--reason", "maintenance", "--json")
    assert placed.code == 0, placed.err
    document = placed.json()
    assert document["changed"] is True
    assert document["node"] == "gpu1"
    assert document["by"] == "manual"
    assert document["reason"] == "maintenance"
    assert document["scheduler"] == {"name": "none", "ok": True}
    lifted = run_ugro("uncordon", "gpu1", "--json").json()
    assert lifted["changed"] is True
    assert lifted["lifted"]["reason"] == "maintenance"


@pytest.mark.integration
def test_person_takes_over_an_automatic_cordon(isolated_home: Path) -> None:
    """Cordoning a node ugro cordoned makes it a person's cordon, which ugro never lifts."""
    write_cluster(isolated_home)
    CordonStore().cordon(automatic("gpu3"))
    done = run_ugro("cordon", "gpu3", "--reason", "RMA")
    assert done.code == 0, done.err
    assert "took over ugro's own cordon" in done.out
    assert CordonStore().read()["gpu3"].by == "manual"


@pytest.mark.integration
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["cordon", "gpu9", "--reason", "x"], "unknown node 'gpu9'; nodes: gpu1, gpu2, gpu3"),
        (["uncordon", "gpu9"], "unknown node 'gpu9'; nodes: gpu1, gpu2, gpu3"),
        (["cordon", "gpu1"], "--reason is required"),
        (["cordon", "gpu1", "--reason", "  "], "--reason is required"),
        (["cordon", "--reason", "x"], "--reason needs a NODE"),
    ],
)
def test_usage_errors_exit_2(isolated_home: Path, args: list[str], message: str) -> None:
    """A wrong node name or a missing reason is a usage error that says what is expected."""
    write_cluster(isolated_home)
    ran = run_ugro(*args)
    assert ran.code == 2
    assert message in ran.err
    assert not CordonStore().path.exists()


@pytest.mark.integration
def test_uncordon_of_a_node_no_longer_configured(isolated_home: Path) -> None:
    """A node removed from the config while cordoned can still be uncordoned."""
    write_cluster(isolated_home)
    CordonStore().cordon(manual("old7"))
    ran = run_ugro("uncordon", "old7")
    assert ran.code == 0, ran.err
    assert CordonStore().read() == {}


@pytest.mark.integration
def test_corrupt_cordons_file_fails_clearly(isolated_home: Path) -> None:
    """A corrupt file makes cordon, uncordon and health fail with one line, no traceback."""
    write_cluster(isolated_home)
    StateStore(paths.state_file()).update([verdict("gpu1")])
    CordonStore().path.write_text("{oops", encoding="utf-8")
    for args, code in (
        (["cordon"], 1),
        (["cordon", "gpu1", "--reason", "x"], 1),
        (["uncordon", "gpu1"], 1),
        (["health"], 3),
    ):
        ran = run_ugro(*args)
        assert ran.code == code, (args, ran)
        assert "cordons.json: corrupt" in ran.err
    assert CordonStore().path.read_text(encoding="utf-8") == "{oops"


@pytest.mark.integration
def test_cordon_and_uncordon_are_in_the_history(isolated_home: Path) -> None:
    """Who cordoned and uncordoned, and why, is kept in the history and shown by `ugro history`."""
    write_cluster(isolated_home)
    assert run_ugro("cordon", "gpu1", "--reason", "bad fan").code == 0
    assert run_ugro("uncordon", "gpu1").code == 0
    with opened(paths.history_file()) as history:
        events = history.events("gpu1", NOW - timedelta(days=1))
    assert [e.kind for e in events] == ["cordon", "uncordon"]
    assert events[0].detail["reason"] == "bad fan"
    assert events[1].detail["lifted"]["reason"] == "bad fan"
    shown = run_ugro("history", "gpu1")
    assert shown.code == 0, shown.err
    assert "cordon" in shown.out
    assert "bad fan" in shown.out
    document = run_ugro("history", "gpu1", "--json").json()
    assert [e["kind"] for e in document["events"]] == ["cordon", "uncordon"]


@pytest.mark.integration
def test_history_off_means_no_database(isolated_home: Path) -> None:
    """With the history disabled, cordoning writes no database."""
    write_cluster(isolated_home, "history: {enabled: false}\n")
    assert run_ugro("cordon", "gpu1", "--reason", "x").code == 0
    assert not paths.history_file().exists()


# --- ugro health ---------------------------------------------------------------------------


def verdict(name: str, status: NodeStatus = NodeStatus.HEALTHY) -> Any:
    """A minimal verdict of `name`, checked just now."""
    from ugro.model import CheckResult, NodeVerdict, Status

    return NodeVerdict(
        name=name,
        address="10.0.0.1",
        status=status,
        health_score=100.0,
        pass_rate=1.0,
        last_check=datetime.now(UTC),
        checks=(CheckResult("ssh", Status.OK, "ok"),),
    )


@pytest.mark.integration
def test_health_shows_cordoned_nodes() -> None:
    """`ugro health` marks a cordoned node, says by whom and why, and its JSON has the cordon."""
    StateStore(paths.state_file()).update([verdict("gpu1"), verdict("gpu2")])
    CordonStore().cordon(manual("gpu2", "waiting for a new GPU"))
    shown = run_ugro("health")
    assert shown.code == 0, shown.err
    lines = shown.out.splitlines()
    [row] = [line for line in lines if line.startswith("gpu2")]
    assert "cordoned by alice (manual)" in row
    assert row.endswith("waiting for a new GPU")
    assert row.split()[1] == "healthy,cordoned", "the STATUS column marks it"
    assert not any(line.startswith("gpu1") and "cordoned" in line for line in lines)
    assert any(line.endswith("; cordoned: gpu2") for line in lines)
    document = run_ugro("health", "--json").json()
    cordons = {n["name"]: n["cordon"] for n in document["nodes"]}
    assert cordons == {"gpu1": None, "gpu2": manual("gpu2", "waiting for a new GPU").to_json()}


@pytest.mark.integration
def test_health_imports_nothing_heavy_for_cordons() -> None:
    """Reading cordons keeps `ugro health` instant: no pydantic, YAML, asyncssh or sqlite."""
    probe = (
        "import sys, ugro.cli, ugro.store.cordons, ugro.verdict.rows, ugro.cli.views.verdicts;"
        "print(sorted(m for m in ('pydantic', 'yaml', 'asyncssh', 'sqlite3') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ},
    )
    assert json.loads(done.stdout.replace("'", '"')) == []


# --- the scheduler -----------------------------------------------------------------------------


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch, isolated_home: Path) -> Recorder:
    """The scheduler `ugro cordon` and `ugro uncordon` talk to, in this process."""
    write_cluster(isolated_home)
    scheduler = Recorder(frozenset({"gpu3"}))
    monkeypatch.setattr(cordon_commands, "scheduler_for", lambda cfg: scheduler)  # noqa: ARG005 - the signature
    return scheduler


def invoke(*args: str) -> Result:
    """Run the command line in this process (so the scheduler can be replaced)."""
    return CliRunner().invoke(cli.main, list(args))


def test_cordon_and_uncordon_tell_the_scheduler(recorder: Recorder) -> None:
    """A cordon drains the node with its reason; an uncordon resumes it; a repeat says nothing."""
    assert invoke("cordon", "gpu1", "--reason", "bad fan").exit_code == 0
    assert invoke("cordon", "gpu1", "--reason", "bad fan").exit_code == 0
    assert invoke("uncordon", "gpu1").exit_code == 0
    assert invoke("uncordon", "gpu1").exit_code == 0
    assert recorder.calls == [("drain", "gpu1", "bad fan"), ("resume", "gpu1")]


def test_a_new_reason_is_told_to_the_scheduler_and_recorded(recorder: Recorder) -> None:
    """Re-cordoning with a new reason drains again with it, says so, and keeps it in history."""
    assert invoke("cordon", "gpu1", "--reason", "bad fan").exit_code == 0
    again = invoke("cordon", "gpu1", "--reason", "bad fan and PSU", "--json")
    assert again.exit_code == 0, again.output
    said = json.loads(again.stdout)
    assert (said["changed"], said["reason"], said["reason_was"]) == (
        True,
        "bad fan and PSU",
        "bad fan",
    )
    assert recorder.calls == [("drain", "gpu1", "bad fan"), ("drain", "gpu1", "bad fan and PSU")]
    with opened(paths.history_file()) as history:
        events = history.events("gpu1", datetime.now(UTC) - timedelta(days=1))
    assert [e.detail["reason"] for e in events] == ["bad fan", "bad fan and PSU"]


@pytest.mark.usefixtures("recorder")
def test_scheduler_refusal_exits_1_and_keeps_the_cordon() -> None:
    """When the scheduler refuses, the command fails, but ugro's cordon is recorded."""
    placed = invoke("cordon", "gpu3", "--reason", "bad fan")
    assert placed.exit_code == 1
    assert "cordoned gpu3: bad fan" in placed.stdout
    assert "gpu3 is cordoned, but recorder did not drain it: Invalid node name" in placed.stderr
    assert CordonStore().read()["gpu3"].reason == "bad fan"
    lifted = invoke("uncordon", "gpu3")
    assert lifted.exit_code == 1
    assert "gpu3 is uncordoned, but recorder did not resume it" in lifted.stderr
    assert CordonStore().read() == {}


def test_uncordon_leaves_a_drain_that_is_not_ugros(recorder: Recorder) -> None:
    """A drain somebody else placed in the scheduler is left, and the command says so."""
    recorder.ours = False
    assert invoke("cordon", "gpu1", "--reason", "x").exit_code == 0
    lifted = invoke("uncordon", "gpu1")
    assert lifted.exit_code == 0
    assert "the drain was not placed by ugro; left as it is" in lifted.stdout
