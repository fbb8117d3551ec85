"""Every `--json` document has a published schema (docs/schemas/), and what ugro prints fits it.

conftest.py validates each JSON document any test sees; this module makes sure each schema is
exercised at least once here, with real commands on real files, and that a schema refuses
what it must.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from jsonschemas import SCHEMAS, schema, schema_for
from ugro import cli, paths
from ugro.alerts.book import book_to_json
from ugro.alerts.engine import AlertEngine
from ugro.config import AlertSettings
from ugro.model import CheckResult, GpuMetrics, NodeStatus, NodeVerdict, Status, Tracking
from ugro.store.history import opened
from ugro.store.history_records import Sample, Transition
from ugro.store.state import StateStore

if TYPE_CHECKING:
    from pathlib import Path

NOW = datetime.now(UTC)


def node(name: str, status: NodeStatus, score: float) -> NodeVerdict:
    """A verdict of two checks, the gpu one failing when the node is bad."""
    good = status in (NodeStatus.HEALTHY, NodeStatus.DEGRADED)
    gpu = CheckResult(
        "gpu", Status.OK if good else Status.FAIL, "2 × H100" if good else "driver", 2, "gpus", 4
    )
    return NodeVerdict(
        name,
        f"10.0.0.{len(name)}",
        status,
        score,
        1.0 if good else 0.5,
        NOW - timedelta(seconds=5),
        (CheckResult("ssh", Status.OK, "ok"), gpu),
        gpus=tuple(
            GpuMetrics(i, f"GPU-{i}", "H100", 40, 1, 10, 81559, 70, 700) for i in range(2 * good)
        ),
        tracking=Tracking(status, NOW, 0, 1, 0, NOW + timedelta(seconds=30)),
        versions={"torch": "2.4.1"},
    )


@pytest.fixture
def cluster(tmp_path: Path) -> Path:
    """Two workers with verdicts stored (one healthy, one unhealthy), a history and alerts."""
    path = tmp_path / "cluster.yaml"
    workers = [{"name": "gpu1", "ip": "10.0.0.1", "gpus": 2}, {"name": "gpu2", "ip": "10.0.0.2"}]
    path.write_text(yaml.safe_dump({"workers": workers}), encoding="utf-8")
    verdicts = [node("gpu1", NodeStatus.HEALTHY, 100), node("gpu2", NodeStatus.UNHEALTHY, 29.1)]
    engine = AlertEngine(AlertSettings(cluster="lab"))
    engine.evaluate(verdicts, ["gpu2"], 2, NOW)
    StateStore(paths.state_file()).update(verdicts, alerts=book_to_json(engine.book))
    with opened(paths.history_file()) as history:
        change = Transition(NOW, "gpu2", "healthy", "unhealthy", "gpu: driver")
        history.record([Sample(v, 30) for v in verdicts], [change])
    return path


def ugro(cluster: Path, *args: str) -> Any:
    """Run `ugro --config CLUSTER ARGS` in this process; its stdout, parsed and validated."""
    ran = CliRunner().invoke(cli.main, ["--config", str(cluster), *args])
    assert ran.exit_code in {0, 1, 2, 3}, ran.output
    document = json.loads(ran.stdout)
    name = schema_for(["--config", str(cluster), *args])
    assert name is not None
    jsonschema.validate(document, schema(name))
    return document


COMMANDS = [
    ("health", ["health", "--json"]),
    ("hosts", ["hosts", "--format", "json"]),
    ("preflight", ["preflight", "--json", "--max-age", "1h", "--nodes", "1"]),
    ("cordons", ["cordon", "--json"]),
    ("cordon-change", ["cordon", "gpu2", "--reason", "fan", "--json"]),
    ("history", ["history", "--json", "--check", "gpu"]),
    ("daemon-status", ["daemon", "status", "--json"]),
    ("alerts", ["alerts", "--json"]),
    ("config-show", ["config", "show", "--json"]),
]


@pytest.mark.parametrize(("name", "args"), COMMANDS, ids=[n for n, _ in COMMANDS])
def test_each_document_fits_its_schema(cluster: Path, name: str, args: list[str]) -> None:
    """What each `--json` command prints on a real state file validates against its schema."""
    assert schema_for(args) == name
    assert ugro(cluster, *args)


def test_cordon_changes_fit_the_change_schema(cluster: Path) -> None:
    """Placed, unchanged, given a new reason, lifted, and nothing to lift: one schema for all."""
    said = [
        ugro(cluster, "cordon", "gpu2", "--reason", "fan", "--json"),
        ugro(cluster, "cordon", "gpu2", "--reason", "fan", "--json"),
        ugro(cluster, "cordon", "gpu2", "--reason", "fan and PSU", "--json"),
        ugro(cluster, "uncordon", "gpu2", "--json"),
        ugro(cluster, "uncordon", "gpu2", "--json"),
    ]
    assert [d["changed"] for d in said] == [True, False, True, True, False]
    assert said[2]["reason_was"] == "fan"


def test_no_usable_host_is_an_empty_list_that_fits(cluster: Path) -> None:
    """`hosts --format json` with nothing usable prints `[]`, which the schema accepts."""
    StateStore(paths.state_file()).update([node("gpu1", NodeStatus.UNREACHABLE, 0)])
    assert ugro(cluster, "hosts", "--format", "json", "--min-score", "50") == []


def test_every_schema_is_valid_and_covers_a_command() -> None:
    """Each published file is a valid 2020-12 schema; each --json command has one."""
    published = {p.name.removesuffix(".schema.json") for p in SCHEMAS.glob("*.schema.json")}
    # Webhook bodies: tests/alerts/test_alert_reading.py validates what a receiver got.
    covered = {name for name, _ in COMMANDS} | {"alert-event"}
    assert published == covered
    for name in published:
        assert schema(name)["title"]


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (["--config", "c.yaml", "check", "--json"], "health"),
        (["health"], None),
        (["hosts"], None),
        (["hosts", "--format", "torchrun"], None),
        (["cordon", "--json"], "cordons"),
        (["cordon", "gpu1", "--reason", "x", "--json"], "cordon-change"),
        (["uncordon", "gpu1", "--json"], "cordon-change"),
        (["preflight", "--json", "--", "torchrun", "train.py"], None),
        (["alerts", "test"], None),
        (["daemon", "status", "--json"], "daemon-status"),
        (["config", "show", "--json"], "config-show"),
        (["health", "--json", "--help"], None),
    ],
)
def test_schema_for_names_the_document(args: list[str], name: str | None) -> None:
    """The test helper picks the schema of the document a command line prints, or none."""
    assert schema_for(args) == name


@pytest.mark.parametrize(
    ("name", "document"),
    [
        ("hosts", [{"name": "c", "address": "c", "gpus": 0, "score": 99, "status": "healthy"}]),
        ("health", {"schema_version": 1, "exit_code": 7, "nodes": []}),
        ("health", {"schema_version": 1, "exit_code": 0, "nodes": [{"name": "a", "status": "ok"}]}),
        ("cordon-change", {"node": "a", "changed": True}),
        ("alert-event", {"kind": "firing", "node": "a"}),
    ],
)
def test_a_schema_refuses_what_ugro_never_prints(name: str, document: object) -> None:
    """0 slots, an exit code off the Nagios scale, a made-up status, half a change: refused."""
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, schema(name))
