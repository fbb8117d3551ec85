"""A full state disk: `ugro check` still shows and judges, `ugro cordon` still drains."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner, Result

from recording_scheduler import Recorder
from ugro import cli, sweep
from ugro.cli import cordons as cordon_commands
from ugro.errors import NotWritten
from ugro.model import CheckResult, NodeStatus, NodeVerdict, Status
from ugro.store import atomicfile
from ugro.store.cordons import Cordon, CordonStore

if TYPE_CHECKING:
    from pathlib import Path

ENOSPC = "No space left on device"


def fill(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Writing the files called `names` fails as on a full disk; reading them works."""
    write = atomicfile.write

    def write_(path: Path, data: bytes) -> None:
        if path.name in names:
            raise NotWritten(f"{path}: cannot write: {ENOSPC}")
        write(path, data)

    monkeypatch.setattr(atomicfile, "write", write_)


def verdict(name: str, status: NodeStatus) -> NodeVerdict:
    """A node checked now, its gpu check passing or failing with `status`."""
    good = status is NodeStatus.HEALTHY
    gpu = CheckResult("gpu", Status.OK if good else Status.FAIL, "ok" if good else "no driver")
    return NodeVerdict(
        name, "10.0.0.1", status, 100.0 if good else 0.0, 1.0, datetime.now(UTC), (gpu,)
    )


@pytest.fixture
def home(isolated_home: Path) -> Path:
    """A cluster.yaml of two workers under $UGRO_HOME."""
    isolated_home.mkdir(parents=True, exist_ok=True)
    (isolated_home / "cluster.yaml").write_text(
        "workers:\n  - {name: gpu1, ip: 10.0.0.1}\n  - {name: gpu2, ip: 10.0.0.2}\n",
        encoding="utf-8",
    )
    return isolated_home


def invoke(*args: str) -> Result:
    """Run the command line in this process."""
    return CliRunner().invoke(cli.main, list(args))


@pytest.mark.parametrize("as_json", [False, True])
def test_check_on_a_full_disk_shows_the_verdicts_and_their_code(
    home: Path, monkeypatch: pytest.MonkeyPatch, as_json: bool
) -> None:
    """The verdicts are shown, the exit is the worst node's, one line says they are not saved."""
    checked = [verdict("gpu1", NodeStatus.HEALTHY), verdict("gpu2", NodeStatus.UNHEALTHY)]
    monkeypatch.setattr(sweep, "run_checks", lambda nodes, last, told, **_: checked)  # noqa: ARG005 - the signature
    fill(monkeypatch, "cluster_state.json")

    ran = invoke("check", *(["--json"] if as_json else []))

    assert ran.exit_code == 2, ran.output
    warning = [line for line in ran.stderr.splitlines() if line]
    assert len(warning) == 1, ran.stderr
    assert warning[0].startswith("ugro: warning: the verdicts were not saved: ")
    assert warning[0].endswith(ENOSPC)
    if as_json:
        document = json.loads(ran.stdout)
        assert [n["status"] for n in document["nodes"]] == ["healthy", "unhealthy"]
        assert document["notes"] == [warning[0].removeprefix("ugro: warning: ")]
    else:
        assert "gpu1" in ran.stdout
        assert "gpu2" in ran.stdout
    assert not (home / "cluster_state.json").exists()


@pytest.fixture
def recorder(home: Path, monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """The scheduler `ugro cordon` talks to, in this process; gpu2 it refuses."""
    assert (home / "cluster.yaml").exists()
    scheduler = Recorder(frozenset({"gpu2"}))
    monkeypatch.setattr(cordon_commands, "scheduler_for", lambda cfg: scheduler)  # noqa: ARG005 - the signature
    return scheduler


def test_cordon_on_a_full_disk_drains_and_says_it_is_not_recorded(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scheduler drains the node; one line says ugro holds no cordon, and why; exit 1."""
    fill(monkeypatch, "cordons.json")

    ran = invoke("cordon", "gpu1", "--reason", "bad fan")

    assert ran.exit_code == 1
    assert recorder.calls == [("drain", "gpu1", "bad fan")]
    assert ran.stdout == ""
    assert ran.stderr.count("\n") == 1, ran.stderr
    assert ran.stderr.startswith("ugro: gpu1: the cordon is not recorded in ugro (")
    assert f"cordons.json: cannot write: {ENOSPC}); recorder drained it" in ran.stderr
    assert CordonStore().read() == {}


@pytest.mark.usefixtures("recorder")
def test_cordon_json_on_a_full_disk_says_so_in_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    """`--json`: recorded false, why, and what the scheduler said (here: a refusal)."""
    fill(monkeypatch, "cordons.json")

    ran = invoke("cordon", "gpu2", "--reason", "bad fan", "--json")

    assert ran.exit_code == 1
    document = json.loads(ran.stdout)
    assert (document["node"], document["changed"], document["recorded"]) == ("gpu2", False, False)
    assert document["not_recorded"].endswith(f"cordons.json: cannot write: {ENOSPC}")
    assert document["scheduler"]["ok"] is False
    assert "recorder did not drain it either: Invalid node name" in ran.stderr


def test_a_persons_cordon_stands_on_a_full_disk(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node a person cordoned already: said so, exit 0, nobody told, as on any disk.

    A new reason cannot be recorded: the cordon stands as it was, and the command says so.
    """
    standing = Cordon("gpu1", "manual", "RMA", datetime.now(UTC), user="bob")
    CordonStore().cordon(standing)
    fill(monkeypatch, "cordons.json")

    ran = invoke("cordon", "gpu1", "--reason", "RMA")

    assert ran.exit_code == 0, ran.output
    assert "gpu1 is already cordoned" in ran.stdout
    reworded = invoke("cordon", "gpu1", "--reason", "bad fan")
    assert reworded.exit_code == 1
    assert "gpu1 stays cordoned by bob (manual) since " in reworded.stderr
    assert "the new reason is not recorded: " in reworded.stderr
    assert recorder.calls == []
    assert CordonStore().read()["gpu1"] == standing


def test_cordon_on_a_full_disk_without_a_scheduler_says_nothing_keeps_jobs_off(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no scheduler configured, the line says that nothing keeps jobs off the node."""
    assert (home / "cluster.yaml").exists()
    fill(monkeypatch, "cordons.json")

    ran = invoke("cordon", "gpu1", "--reason", "bad fan")

    assert ran.exit_code == 1
    assert ran.stderr.endswith(
        "; no scheduler is configured to drain it: nothing keeps jobs off it\n"
    )
