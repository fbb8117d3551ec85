"""The state file: round trips, atomic writes, corruption handling, and `ugro health` on top."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import stat
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from conftest import run_ugro
from hostile import HOSTILE, Entry, healthy, write_state
from ugro import paths
from ugro.errors import StateError
from ugro.model import (
    Alert,
    CheckResult,
    GpuMetrics,
    HostMetrics,
    NodeStatus,
    NodeVerdict,
    Status,
)
from ugro.store.state import ClusterState, StateStore, encode
from ugro.verdict import rows

if TYPE_CHECKING:
    from collections.abc import Callable

CHECKS = ("ssh", "gpu", "torch", "disk", "latency")
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$")


def verdict(
    name: str,
    status: NodeStatus = NodeStatus.HEALTHY,
    *,
    age_s: float = 0.0,
    score: float = 100.0,
) -> NodeVerdict:
    """A verdict for `name`, checked `age_s` seconds ago, with every check's result."""
    failing = Status.FAIL if status in (NodeStatus.UNHEALTHY, NodeStatus.UNREACHABLE) else None
    return NodeVerdict(
        name=name,
        address=f"{name}.example.org",
        status=status,
        health_score=score,
        pass_rate=1.0 if failing is None else 0.4,
        last_check=datetime.now(UTC) - timedelta(seconds=age_s),
        checks=tuple(
            CheckResult(
                name=check,
                status=failing if failing and check != "ssh" else Status.OK,
                message=f"{check} fine" if not failing else f"{check} broke",
                value=12.5 if check == "disk" else None,
                unit="GB" if check == "disk" else None,
                duration_ms=3.25,
            )
            for check in CHECKS
        ),
        alerts=(Alert("critical", f"{name} is {status.value}"),) if failing else (),
    )


def full_verdict() -> NodeVerdict:
    """A verdict with every optional part filled in: GPUs, host metrics, alerts."""
    gpu = GpuMetrics(0, "GPU-1234", "NVIDIA H100", 41.0, 97.0, 1024.0, 81559.0, 300.5, 700.0)
    blank = GpuMetrics(1, "GPU-5678", "NVIDIA H100", None, None, None, None, None, None)
    host = HostMetrics(1.5, 1.25, 1.0, 64, 512 * 2**30, 400 * 2**30)
    base = verdict("gpu1", NodeStatus.DEGRADED, score=72.5)
    return NodeVerdict(
        name=base.name,
        address="10.0.0.1",
        status=base.status,
        health_score=base.health_score,
        pass_rate=0.8,
        last_check=base.last_check,
        checks=base.checks,
        gpus=(gpu, blank),
        host=host,
        alerts=(Alert("warning", "GPU 0 at 97% while idle"), Alert("info", "a;b $(x)")),
    )


def files_in(directory: Path) -> set[str]:
    """Names in `directory`."""
    return {p.name for p in directory.iterdir()}


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    """A store whose file does not exist yet."""
    return StateStore(tmp_path / "state" / "cluster_state.json")


# --- round trip and format ----------------------------------------------------------------


def test_round_trip_gives_equal_verdicts(store: StateStore) -> None:
    """What update stores, read gives back equal, field for field."""
    stored = [full_verdict(), verdict("gpu2"), verdict("gpu3", NodeStatus.UNREACHABLE, score=0)]
    store.update(stored)
    state = store.read()
    assert state is not None
    assert state.nodes == {v.name: v for v in stored}
    assert state.updated_at is not None
    assert state.updated_at.utcoffset() == timedelta(0)


def test_file_is_private(store: StateStore) -> None:
    """The state file is readable by its owner only (mode 0600)."""
    store.update([verdict("gpu1")])
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


def test_json_document_shape(store: StateStore) -> None:
    """The file is versioned JSON with status, score, ISO-8601 UTC time and per-check results."""
    store.update([verdict("gpu1", NodeStatus.UNHEALTHY, score=40)])
    document = json.loads(store.path.read_text(encoding="utf-8"))
    assert document["schema_version"] == 1
    node = document["nodes"]["gpu1"]
    assert node["status"] == "unhealthy"
    assert node["health_score"] == 40
    assert ISO_UTC.match(node["last_check"]), node["last_check"]
    assert datetime.fromisoformat(node["last_check"]).utcoffset() == timedelta(0)
    assert set(node["checks"]) == set(CHECKS)
    assert node["checks"]["disk"] == {
        "status": "fail",
        "message": "disk broke",
        "value": 12.5,
        "unit": "GB",
        "duration_ms": 3.25,
    }
    assert node["checks"]["ssh"]["status"] == "ok"


def test_each_node_is_one_line_of_the_file(store: StateStore) -> None:
    """A node's entry is one line (grep finds it whole), and a key of the document a line."""
    store.update([full_verdict(), verdict("gpu2"), verdict("gpu3")])
    lines = store.path.read_text(encoding="utf-8").splitlines()
    for name in ("gpu1", "gpu2", "gpu3"):
        (line,) = [line for line in lines if f'"{name}": {{' in line]
        node = json.loads("{" + line.strip().rstrip(",") + "}")[name]
        assert node["name"] == name
    assert lines[1].startswith(' "schema_version": ')


def test_the_daemon_does_not_parse_back_what_it_wrote(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An update reads the file only when another writer replaced it since the last one."""
    parsed: list[object] = []
    real = ClusterState.from_json

    def counted(data: object) -> ClusterState:
        parsed.append(data)
        return real(data)

    monkeypatch.setattr(ClusterState, "from_json", counted)
    store.update([verdict("a")], keep={"a", "b"})
    store.update([verdict("a", NodeStatus.DEGRADED, score=70)], keep={"a", "b"})
    assert parsed == []
    StateStore(store.path).update([verdict("b")])  # another writer: `ugro check b`
    parsed.clear()
    state = store.update([verdict("a")], keep={"a", "b"})
    assert len(parsed) == 1
    assert set(state.nodes) == {"a", "b"}
    assert state.configured == ("a", "b")


def test_a_write_encodes_only_the_nodes_with_a_new_verdict(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other nodes' entries are the ones written last time; the file is the same."""
    store.update([verdict("a"), verdict("b"), full_verdict()], keep={"a", "b", "gpu1"})
    encoded: list[str] = []
    real = NodeVerdict.to_json

    def counted(self: NodeVerdict) -> dict[str, object]:
        encoded.append(self.name)
        return real(self)

    monkeypatch.setattr(NodeVerdict, "to_json", counted)
    state = store.update([verdict("b", NodeStatus.DEGRADED, score=70)], keep={"a", "b", "gpu1"})
    assert encoded == ["b"]
    assert store.path.read_bytes() == encode(state.to_json())
    # Another writer replaced the file: its nodes are new objects, encoded afresh.
    StateStore(store.path).update([verdict("c")])
    encoded.clear()
    store.update([verdict("a")])
    assert sorted(encoded) == ["a", "b", "c", "gpu1"]


def test_update_without_keep_keeps_other_nodes(store: StateStore) -> None:
    """keep=None (a check of some nodes) leaves the nodes it did not check alone."""
    store.update([verdict("a"), verdict("b")])
    store.update([verdict("b", NodeStatus.DEGRADED, score=70)])
    state = store.read()
    assert state is not None
    assert set(state.nodes) == {"a", "b"}
    assert state.nodes["b"].status is NodeStatus.DEGRADED


def test_update_with_keep_drops_removed_nodes(store: StateStore) -> None:
    """keep= names the configured nodes: one removed from the config disappears."""
    store.update([verdict("a"), verdict("b"), verdict("c")])
    store.update([verdict("a")], keep={"a", "b"})
    state = store.read()
    assert state is not None
    assert set(state.nodes) == {"a", "b"}


# --- the writers' rule ---------------------------------------------------------------------


def test_an_older_verdict_never_replaces_a_newer_one(store: StateStore) -> None:
    """A writer whose check started earlier than the stored one's leaves the stored one."""
    newer = verdict("a", NodeStatus.UNREACHABLE, score=0)
    older = verdict("a", age_s=5)
    store.update([newer])

    state = store.update([older, verdict("b")])

    assert state.nodes["a"] == newer
    assert set(state.nodes) == {"a", "b"}
    assert store.read() == state


def test_a_verdict_from_the_future_does_not_block_the_present(store: StateStore) -> None:
    """A stored verdict dated after now (the clock was set back) is replaced, not kept forever."""
    store.update([verdict("a", age_s=-3600)])
    now = verdict("a", NodeStatus.DEGRADED, score=70)

    assert store.update([now]).nodes["a"] == now


def test_fold_sees_the_stored_verdict_under_the_lock(store: StateStore) -> None:
    """`fold` makes what is stored from the stored verdict (None at first) and the new one."""
    seen: list[tuple[NodeVerdict | None, NodeVerdict]] = []

    def fold(stored: NodeVerdict | None, new: NodeVerdict) -> NodeVerdict:
        seen.append((stored, new))
        return new if stored is None else dataclasses.replace(new, health_score=1.0)

    first, second = verdict("a"), verdict("a", NodeStatus.DEGRADED)
    store.update([first], fold=fold)
    state = store.update([second], fold=fold)

    assert seen == [(None, first), (first, second)]
    assert state.nodes["a"].health_score == 1.0


def test_read_without_file_is_none(store: StateStore) -> None:
    """No file yet means no state, not an error, and reading creates nothing."""
    assert store.read() is None
    assert not store.path.parent.exists()


# --- atomic writes ------------------------------------------------------------------------


def test_no_temp_files_left_behind(store: StateStore) -> None:
    """After many writes only the state file and its lock file remain."""
    for i in range(5):
        store.update([verdict(f"n{i}")])
    assert files_in(store.path.parent) == {"cluster_state.json", "cluster_state.json.lock"}


def test_write_goes_through_temp_file_and_rename(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is written whole beside the target, then renamed over it."""
    renames: list[tuple[str, str]] = []
    real_replace = os.replace

    def spy(src: str, dst: str) -> None:
        renames.append((os.fspath(src), os.fspath(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    store.update([verdict("gpu1")])
    [(src, dst)] = renames
    assert dst == os.fspath(store.path)
    temp = Path(src)
    assert temp.parent == store.path.parent
    assert temp.name.startswith(".cluster_state.json.")
    assert temp.name.endswith(".tmp")


def test_failed_rename_keeps_original(store: StateStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the rename fails: StateError, the old file intact, and no temp file left."""
    store.update([verdict("gpu1")])
    before = store.path.read_bytes()

    def broken(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device", src, None, dst)

    with monkeypatch.context() as patched:
        patched.setattr(os, "replace", broken)
        with pytest.raises(StateError, match="cannot write"):
            store.update([verdict("gpu2")])
    assert store.path.read_bytes() == before
    assert files_in(store.path.parent) == {"cluster_state.json", "cluster_state.json.lock"}


# --- corrupt and newer files --------------------------------------------------------------


def valid_document() -> bytes:
    """A well-formed state file's bytes."""
    state = ClusterState(nodes={"gpu1": verdict("gpu1")}, updated_at=datetime.now(UTC))
    return json.dumps(state.to_json()).encode()


CORRUPT = [
    pytest.param(b"\x00\xff\xfe garbage \x89PNG", id="garbage-bytes"),
    pytest.param(valid_document()[:57], id="truncated-json"),
    pytest.param(b"", id="empty-file"),
    pytest.param(b"[1, 2, 3]", id="json-array"),
    pytest.param(b'{"schema_version": 1}', id="no-nodes"),
    pytest.param(b'{"schema_version": 1, "nodes": []}', id="nodes-a-list"),
    pytest.param(b"[" * 100_000, id="nested-too-deep"),
    pytest.param(
        valid_document().replace(b'"stale_after_s": 90.0', b'"stale_after_s": 1e999'),
        id="infinite-staleness",
    ),
    pytest.param(valid_document().replace(b'"schema_version": 1', b'"schema_version": 0'), id="v0"),
]


@pytest.mark.parametrize("content", CORRUPT)
def test_read_of_corrupt_file_raises_and_leaves_it(store: StateStore, content: bytes) -> None:
    """read() reports a corrupt file as StateError and neither moves nor changes it."""
    store.path.parent.mkdir(parents=True)
    store.path.write_bytes(content)
    with pytest.raises(StateError, match="corrupt"):
        store.read()
    assert store.path.read_bytes() == content
    assert files_in(store.path.parent) == {"cluster_state.json"}


@pytest.mark.parametrize("content", CORRUPT)
def test_update_moves_corrupt_file_aside(
    store: StateStore, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """update() moves a corrupt file to .corrupt-<stamp>, warns once, and writes a fresh file."""
    store.path.parent.mkdir(parents=True)
    store.path.write_bytes(content)
    with caplog.at_level(logging.DEBUG):
        store.update([verdict("gpu2")])
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, caplog.text
    assert warnings[0].levelno == logging.WARNING
    assert "corrupt" in warnings[0].getMessage()
    asides = sorted(store.path.parent.glob("cluster_state.json.corrupt-*"))
    assert len(asides) == 1
    assert re.fullmatch(r"cluster_state\.json\.corrupt-\d{8}T\d{6}\.\d{6}Z", asides[0].name)
    assert asides[0].read_bytes() == content
    state = store.read()
    assert state is not None
    assert set(state.nodes) == {"gpu2"}


@pytest.mark.parametrize("mutate", HOSTILE)
def test_hostile_node_is_left_out_and_the_others_read(
    store: StateStore, mutate: Callable[[Entry], object], caplog: pytest.LogCaptureFixture
) -> None:
    """One node with absurd or malformed data is left out with a warning; the rest read."""
    write_state(store.path, mutate)
    content = store.path.read_bytes()
    state = store.read()
    assert state is not None
    assert set(state.nodes) == {"gpu1", "gpu3"}
    assert state.nodes["gpu1"].disks == healthy("gpu1").disks
    assert set(state.rejected) == {"gpu2"}
    [warning] = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert "node 'gpu2' left out" in warning
    assert len(warning) < 300, "a 310-digit value is cut, not copied whole into the log"
    assert store.path.read_bytes() == content, "a reader never changes the file"


@pytest.mark.parametrize("mutate", HOSTILE[:3])
def test_update_drops_a_hostile_node_without_moving_the_file_aside(
    store: StateStore, mutate: Callable[[Entry], object]
) -> None:
    """The next writer rewrites the file without the hostile node; nothing is quarantined."""
    write_state(store.path, mutate)
    store.update([verdict("gpu4")])
    state = store.read()
    assert state is not None
    assert set(state.nodes) == {"gpu1", "gpu3", "gpu4"}
    assert state.rejected == {}
    assert not list(store.path.parent.glob("*.corrupt-*"))


def test_newer_schema_is_never_moved_aside(
    store: StateStore, caplog: pytest.LogCaptureFixture
) -> None:
    """A file from a newer ugro makes read and update fail with 'upgrade', and stays put."""
    content = valid_document().replace(b'"schema_version": 1', b'"schema_version": 99')
    store.path.parent.mkdir(parents=True)
    store.path.write_bytes(content)
    with pytest.raises(StateError, match="upgrade"):
        store.read()
    with caplog.at_level(logging.DEBUG), pytest.raises(StateError, match="upgrade"):
        store.update([verdict("gpu2")])
    assert store.path.read_bytes() == content
    assert not list(store.path.parent.glob("*.corrupt-*"))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# --- ugro health --------------------------------------------------------------------------


def save(*verdicts: NodeVerdict) -> None:
    """Store verdicts where `ugro health` looks for them."""
    StateStore(paths.state_file()).update(verdicts)


@pytest.mark.integration
def test_health_without_state_says_run_check() -> None:
    """No state yet: exit 3 and one line pointing at `ugro check`."""
    ran = run_ugro("health")
    assert ran.code == 3
    assert ran.out == ""
    [line] = ran.err.strip().splitlines()
    assert "no health data yet" in line
    assert "`ugro check`" in line


@pytest.mark.integration
def test_health_json_without_state_is_still_json() -> None:
    """No state yet with --json: exit 3 and a JSON document with no nodes and an error."""
    ran = run_ugro("health", "--json")
    assert ran.code == 3
    document = ran.json()
    assert document["nodes"] == []
    assert "no health data yet" in document["error"]
    assert document["exit_code"] == 3


@pytest.mark.integration
def test_health_with_corrupt_state_says_why() -> None:
    """A corrupt state file: exit 3, one line naming the problem, and the file untouched."""
    path = paths.state_file()
    path.parent.mkdir(parents=True)
    path.write_bytes(b'{"schema_version": 1, "nodes": {"gpu1": ')
    ran = run_ugro("health")
    assert ran.code == 3
    [line] = ran.err.strip().splitlines()
    assert str(path) in line
    assert "corrupt" in line
    assert path.read_bytes() == b'{"schema_version": 1, "nodes": {"gpu1": '
    assert files_in(path.parent) == {"cluster_state.json"}


@pytest.mark.integration
def test_health_shows_every_node_and_exits_with_the_worst() -> None:
    """Healthy, degraded and unreachable nodes: all shown, exit 2 for the unreachable one."""
    save(
        verdict("alpha"),
        verdict("bravo", NodeStatus.DEGRADED, score=70),
        verdict("charlie", NodeStatus.UNREACHABLE, score=0),
    )
    ran = run_ugro("health")
    assert ran.code == 2, ran.err
    for name, status in (("alpha", "healthy"), ("bravo", "degraded"), ("charlie", "unreachable")):
        [row] = [line for line in ran.out.splitlines() if line.startswith(name)]
        assert status in row
    ran = run_ugro("health", "--json")
    assert ran.code == 2
    document = ran.json()
    assert document["exit_code"] == 2
    assert {n["name"]: n["status"] for n in document["nodes"]} == {
        "alpha": "healthy",
        "bravo": "degraded",
        "charlie": "unreachable",
    }


@pytest.mark.integration
def test_old_verdict_is_stale() -> None:
    """A verdict older than stale_after_s shows as stale (exit 3) and keeps its checked status."""
    save(verdict("fresh"), verdict("old", age_s=3600))
    ran = run_ugro("health", "--json")
    assert ran.code == 3
    nodes = {n["name"]: n for n in ran.json()["nodes"]}
    assert (nodes["fresh"]["status"], nodes["fresh"]["checked_status"]) == ("healthy", "healthy")
    assert (nodes["old"]["status"], nodes["old"]["checked_status"]) == ("stale", "healthy")
    assert nodes["old"]["age_s"] >= 3600
    ran = run_ugro("health")
    assert ran.code == 3
    [row] = [line for line in ran.out.splitlines() if line.startswith("old")]
    assert "stale" in row


@pytest.mark.integration
def test_stale_after_comes_from_the_state_file() -> None:
    """The threshold stored in the file is the one applied: 10 minutes old is fresh under 1 h."""
    state = ClusterState(
        nodes={"old": verdict("old", age_s=600)}, updated_at=datetime.now(UTC), stale_after_s=3600
    )
    path = paths.state_file()
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(state.to_json()), encoding="utf-8")
    ran = run_ugro("health", "--json")
    assert ran.code == 0, ran.err
    assert ran.json()["nodes"][0]["status"] == "healthy"


def row(status: NodeStatus) -> rows.Row:
    """A row showing `status` (stale rows keep a healthy checked status)."""
    checked = NodeStatus.HEALTHY if status is NodeStatus.STALE else status
    return rows.Row(verdict(status.value, checked), status, 0.0)


@pytest.mark.parametrize(
    ("statuses", "code"),
    [
        pytest.param([], 3, id="no-nodes"),
        pytest.param(["healthy"], 0, id="healthy"),
        pytest.param(["healthy", "degraded"], 1, id="degraded-over-healthy"),
        pytest.param(["degraded", "stale"], 3, id="stale-over-degraded"),
        pytest.param(["degraded", "unknown"], 3, id="unknown-over-degraded"),
        pytest.param(["stale", "unhealthy"], 2, id="unhealthy-over-stale"),
        pytest.param(["unknown", "unreachable", "degraded"], 2, id="unreachable-over-unknown"),
    ],
)
def test_exit_code_ordering(statuses: list[str], code: int) -> None:
    """Unhealthy (2) outranks stale/unknown (3), which outranks degraded (1), then healthy."""
    assert rows.exit_code([row(NodeStatus(s)) for s in statuses]) == code


@pytest.mark.integration
@pytest.mark.parametrize(
    ("verdicts", "code"),
    [
        pytest.param(
            [("a", NodeStatus.UNHEALTHY, 0), ("b", NodeStatus.HEALTHY, 3600)],
            2,
            id="unhealthy+stale",
        ),
        pytest.param(
            [("a", NodeStatus.DEGRADED, 0), ("b", NodeStatus.HEALTHY, 3600)], 3, id="degraded+stale"
        ),
    ],
)
def test_health_exit_code_ordering(
    verdicts: list[tuple[str, NodeStatus, float]], code: int
) -> None:
    """Through the real command: unhealthy beats stale, and stale beats degraded."""
    save(*(verdict(name, status, age_s=age) for name, status, age in verdicts))
    assert run_ugro("health").code == code


# --- concurrency --------------------------------------------------------------------------

WRITER = """\
import sys
from datetime import UTC, datetime
from pathlib import Path

from ugro.model import CheckResult, NodeStatus, NodeVerdict, Status
from ugro.store.state import StateStore

store = StateStore(Path(sys.argv[1]))
checks = tuple(CheckResult(c, Status.OK, "fine " * 20, 1.0, "ms", 2.0) for c in "abcdefgh")
for i in range(200):
    store.update(
        NodeVerdict(f"node{n:03}", "10.0.0.1", NodeStatus.HEALTHY, i / 2, 1.0,
                    datetime.now(UTC), checks)
        for n in range(40)
    )
"""


@pytest.mark.integration
def test_readers_never_see_a_partial_file(store: StateStore) -> None:
    """A reader racing 500 reads against 200 rewrites by another process never fails to parse."""
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(store.path)])
    try:
        deadline = time.monotonic() + 30
        while not store.path.exists():
            assert writer.poll() is None or writer.returncode == 0, "writer died"
            assert time.monotonic() < deadline, "writer never wrote"
            time.sleep(0.001)
        seen: set[float] = set()
        for _ in range(500):
            state = store.read()  # a StateError here is the failure this test looks for
            assert state is not None
            assert len(state.nodes) == 40
            seen.update(v.health_score for v in state.nodes.values())
    finally:
        assert writer.wait(timeout=60) == 0
    assert len(seen) > 1, "the reads did not overlap the writes"


# --- the configured nodes -----------------------------------------------------------------


def test_a_full_writer_records_the_configured_nodes_and_config(store: StateStore) -> None:
    """`keep` is the cluster: recorded, sorted, with its config; a partial write keeps it."""
    store.update([verdict("b")], keep=["b", "a"], config="/etc/ugro/cluster.yaml")
    store.update([verdict("a")])
    state = store.read()
    assert state is not None
    assert (state.configured, state.config) == (("a", "b"), "/etc/ugro/cluster.yaml")
    document = json.loads(store.path.read_text(encoding="utf-8"))
    assert document["cluster"] == {"nodes": ["a", "b"], "config": "/etc/ugro/cluster.yaml"}


def test_a_file_without_the_node_list_reads_as_before(store: StateStore) -> None:
    """A state file from before the list was recorded: no configured nodes, verdicts intact."""
    store.update([verdict("a")])
    document = json.loads(store.path.read_text(encoding="utf-8"))
    del document["cluster"]
    store.path.write_text(json.dumps(document), encoding="utf-8")
    state = store.read()
    assert state is not None
    assert state.configured is None
    assert set(state.nodes) == {"a"}


@pytest.mark.parametrize(
    "cluster",
    [
        pytest.param([], id="not-an-object"),
        pytest.param({"nodes": "a"}, id="nodes-not-a-list"),
        pytest.param({"nodes": ["a", 7]}, id="a-name-not-a-string"),
        pytest.param({"nodes": ["a"], "config": {"x": 1}}, id="config-not-a-string"),
    ],
)
def test_an_unusable_node_list_costs_only_itself(
    store: StateStore, cluster: object, caplog: pytest.LogCaptureFixture
) -> None:
    """A malformed `cluster` is ignored with one warning; the verdicts are still read."""
    store.update([verdict("a")], keep=["a"])
    document = json.loads(store.path.read_text(encoding="utf-8"))
    document["cluster"] = cluster
    store.path.write_text(json.dumps(document), encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        state = store.read()
    assert state is not None
    assert (state.configured, state.config) == (None, None)
    assert set(state.nodes) == {"a"}
    assert "configured nodes' list is unusable" in caplog.text
