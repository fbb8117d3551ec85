"""The daemon's per-node schedule and containment, in-process, over captured node answers.

The daemon runs in this process (`Daemon.run`) against nodes whose sessions answer each
command with captured output from tests/fixtures after a short delay; a test makes one node
hang or one step fail for one node, and judges the others by what the daemon recorded.
Cadence bounds here are structural (a 1.5 s hang against a 0.2 s interval), never speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import signal
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import pytest

from conftest import fixture_text
from ugro import config
from ugro.checks import gpu, reachability
from ugro.daemon.loop import Daemon
from ugro.errors import CommandTimeout, StateError, UgroError
from ugro.model import CommandResult, NodeVerdict
from ugro.store import atomicfile
from ugro.store.history import History, opened
from ugro.sweep import Transports
from ugro.verdict import hysteresis

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from ugro.config import Worker
    from ugro.transport import Session

INTERVAL_S = 0.2
#: The hung node's gpu timeout: many of the others' intervals.
HANG_S = 1.5
NODES = [f"n{i}" for i in range(5)]
VICTIM = "n2"
ANSWERS = {
    reachability.COMMAND: CommandResult(0, fixture_text("proc", "healthy.txt")),
    gpu.COMMAND: CommandResult(0, fixture_text("nvidia-smi", "healthy-2x4090.csv")),
}


class Nodes:
    """Captured nodes: who ran what when, how many checks ran at once, and who hangs."""

    def __init__(self) -> None:
        """Every node answers; none hangs."""
        self.hung: set[str] = set()
        self.starts: dict[str, list[float]] = defaultdict(list)
        self.running: dict[str, int] = defaultdict(int)
        self.most_at_once: dict[str, int] = defaultdict(int)

    def transports(self) -> Transports:
        """Transports whose sessions are these nodes."""
        transport = _Transport(self)
        return Transports(ssh=transport, local=transport)


class _Session:
    def __init__(self, nodes: Nodes, name: str) -> None:
        self.nodes = nodes
        self.name = name
        self.peer = None

    def round_trip(self) -> None:
        """No TCP connection of its own: the latency check falls back to probes."""

    async def run(self, command: str, *, timeout: float) -> CommandResult:
        nodes, name = self.nodes, self.name
        if command == reachability.COMMAND:
            nodes.starts[name].append(time.monotonic())
            nodes.running[name] += 1
            nodes.most_at_once[name] = max(nodes.most_at_once[name], nodes.running[name])
        try:
            if command == gpu.COMMAND and name in nodes.hung:
                await asyncio.sleep(timeout)
                raise CommandTimeout(f"did not finish within {timeout:g} s")
            await asyncio.sleep(0.01)
            return ANSWERS[command]
        finally:
            if command == reachability.COMMAND:
                nodes.running[name] -= 1


class _Transport:
    def __init__(self, nodes: Nodes) -> None:
        self.nodes = nodes

    async def open(self, node: Worker) -> Session:
        return _Session(self.nodes, node.name)

    async def close(self) -> None:
        pass


def write_config(path: Path, names: list[str], **monitor: object) -> Path:
    """A cluster.yaml of captured nodes with the ssh and gpu checks, a fast interval."""
    document = {
        "checks": ["ssh", "gpu"],
        "timeouts": {"gpu": HANG_S, "ssh": 2},
        "monitor": {"interval_s": INTERVAL_S, "confirm_s": INTERVAL_S, **monitor},
        "exporter": {"enabled": False},
        "workers": [
            {"name": n, "ip": f"10.0.0.{i + 1}", "gpus": 2, "gpu": "NVIDIA GeForce RTX 4090"}
            for i, n in enumerate(names)
        ],
    }
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


@contextlib.contextmanager
def running(daemon: Daemon, seconds: float) -> Iterator[None]:
    """Run `daemon` in this process for `seconds`, then SIGTERM it (as its handler would)."""

    async def main() -> None:
        task = asyncio.create_task(daemon.run())
        await asyncio.sleep(seconds)
        assert not task.done(), task
        daemon._stop(signal.SIGTERM)  # noqa: SLF001 - what the signal handler runs
        await asyncio.wait_for(task, 10)

    asyncio.run(main())
    yield


def state(home: Path) -> dict[str, Any]:
    """The state file as JSON."""
    document: dict[str, Any] = json.loads((home / "cluster_state.json").read_bytes())
    return document


def gaps(starts: list[float]) -> list[float]:
    """Seconds between consecutive check starts."""
    return [b - a for a, b in itertools.pairwise(starts)]


# --- scheduling -------------------------------------------------------------------------------


def test_a_hung_node_costs_no_other_node_its_cadence(tmp_path: Path, isolated_home: Path) -> None:
    """A node whose gpu check hangs for 1.5 s delays nobody: the others keep their 0.2 s cadence."""
    nodes = Nodes()
    nodes.hung.add(VICTIM)
    path = write_config(tmp_path / "cluster.yaml", NODES)
    daemon = Daemon(path, config.load(path), transports=nodes.transports)

    with running(daemon, 2 * HANG_S):
        pass

    for name in NODES:
        assert nodes.most_at_once[name] == 1, f"{name} was checked twice at once"
        if name == VICTIM:
            continue
        spacing = gaps(nodes.starts[name])
        assert len(spacing) >= 8, (name, spacing)
        # Structural, not a speed target: a wait on the hung node would be ≥ 1.5 s.
        assert max(spacing) < HANG_S / 2, (name, spacing)
    assert len(nodes.starts[VICTIM]) <= 4, "the hung node costs its own timeout each time"
    document = state(isolated_home)
    victim = document["nodes"][VICTIM]
    assert victim["checks"]["gpu"]["message"].startswith(f"no answer within {HANG_S:g} s"), victim
    for name in NODES:
        if name != VICTIM:
            assert document["nodes"][name]["status"] == "healthy", name
    info = document["daemon"]
    assert info["running"] is False
    assert info["checks"] > info["sweeps"], "checks completing together settle as one pass"
    assert info["errors"] == 0


def test_stop_abandons_the_hung_check_and_keeps_the_last_verdict(
    tmp_path: Path, isolated_home: Path
) -> None:
    """SIGTERM while a check hangs: the daemon stops at once and the last verdicts stay."""
    nodes = Nodes()
    path = write_config(tmp_path / "cluster.yaml", NODES, interval_s=0.5)
    daemon = Daemon(path, config.load(path), transports=nodes.transports)

    async def main() -> float:
        task = asyncio.create_task(daemon.run())
        await asyncio.sleep(1.0)
        assert state(isolated_home)["daemon"]["sweeps"] >= 1
        nodes.hung.add(VICTIM)
        await asyncio.sleep(1.0)
        assert VICTIM in daemon.schedule.running
        start = time.monotonic()
        daemon._stop(signal.SIGTERM)  # noqa: SLF001 - what the signal handler runs
        await asyncio.wait_for(task, 10)
        return time.monotonic() - start

    took = asyncio.run(main())

    assert took < HANG_S / 2, "the hung check is abandoned, not waited for"
    document = state(isolated_home)
    assert set(document["nodes"]) == set(NODES)
    assert document["nodes"][VICTIM]["checks"]["gpu"]["status"] == "ok", "its last verdict stays"
    assert document["daemon"]["running"] is False


# --- containment ------------------------------------------------------------------------------


ERROR = OverflowError("Python int too large to convert to SQLite INTEGER")


def break_checking(monkeypatch: pytest.MonkeyPatch) -> None:
    """Opening VICTIM's session raises what no transport should."""
    original = _Transport.open

    async def open_(self: _Transport, node: Worker) -> Session:
        if node.name == VICTIM:
            raise ERROR
        return await original(self, node)

    monkeypatch.setattr(_Transport, "open", open_)


def break_judging(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hysteresis raises on VICTIM's verdicts."""
    original = hysteresis.advance

    def advance(previous: Any, observed: NodeVerdict, *args: Any) -> hysteresis.Step:
        if observed.name == VICTIM:
            raise ERROR
        return original(previous, observed, *args)

    monkeypatch.setattr(hysteresis, "advance", advance)


def break_persisting(monkeypatch: pytest.MonkeyPatch) -> None:
    """VICTIM's verdict does not serialise."""
    original = NodeVerdict.to_json

    def to_json(self: NodeVerdict) -> dict[str, Any]:
        if self.name == VICTIM:
            raise ERROR
        return original(self)

    monkeypatch.setattr(NodeVerdict, "to_json", to_json)


def break_history(monkeypatch: pytest.MonkeyPatch) -> None:
    """VICTIM's history sample fails in a way the history itself does not foresee."""
    original = History._record_sample  # noqa: SLF001 - the failing write itself

    def record_sample(self: History, sample: Any) -> None:
        if sample.verdict.name == VICTIM:
            # Not the OverflowError of an oversized int: the history translates that one.
            raise RuntimeError("history broke")
        original(self, sample)

    monkeypatch.setattr(History, "_record_sample", record_sample)


BREAK = {
    "checking": break_checking,
    "judging": break_judging,
    "persisting": break_persisting,
    "history": break_history,
}


@pytest.mark.parametrize("step", list(BREAK))
def test_a_fault_in_any_step_is_that_nodes_alone(
    tmp_path: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    """Whatever one node's check, verdict or record raises, the daemon and the others go on."""
    nodes = Nodes()
    path = write_config(tmp_path / "cluster.yaml", NODES)
    daemon = Daemon(path, config.load(path), transports=nodes.transports)
    BREAK[step](monkeypatch)

    with running(daemon, 1.2):
        pass

    document = state(isolated_home)
    info = document["daemon"]
    assert info["errors"] > 0
    assert info["sweeps"] >= 3, "passes went on"
    others = [n for n in NODES if n != VICTIM]
    for name in others:
        assert document["nodes"][name]["status"] == "healthy", name
        assert len(nodes.starts[name]) >= 4, name
    victim = document["nodes"].get(VICTIM)
    if step == "checking":
        assert victim is not None
        assert victim["status"] == "unknown"
        said = victim["alerts"][0]["text"]
        assert "ugro failed checking the node (OverflowError: Python int" in said
    elif step in ("judging", "persisting"):
        assert victim is None, "a verdict that could not be judged or written is not shown"
    else:
        assert victim is not None
        with opened(isolated_home / "history.db") as history:
            assert set(history.nodes()) == set(others)
    if step != "checking":
        assert len(nodes.starts[VICTIM]) >= 4, "the node is still checked at its interval"


# --- a full disk ------------------------------------------------------------------------------


def test_a_full_disk_is_logged_once_per_episode_and_checks_go_on(
    tmp_path: Path,
    isolated_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """State and history writes fail for a while: one line each way per file, checks go on."""
    nodes = Nodes()
    path = write_config(tmp_path / "cluster.yaml", NODES)
    daemon = Daemon(path, config.load(path), transports=nodes.transports)
    full = asyncio.Event()
    write, record = atomicfile.write, History.record

    def write_(target: Path, data: bytes) -> None:
        if full.is_set() and target.name == "cluster_state.json":
            raise StateError(f"{target}: cannot write: No space left on device")
        write(target, data)

    def record_(self: History, *args: Any) -> None:
        if full.is_set():
            raise UgroError(f"{self.path}: cannot record history: database or disk is full")
        record(self, *args)

    monkeypatch.setattr(atomicfile, "write", write_)
    monkeypatch.setattr(History, "record", record_)
    checked: list[int] = []

    async def main() -> None:
        task = asyncio.create_task(daemon.run())
        for _episode in range(2):
            await asyncio.sleep(0.5)
            full.set()
            checked.append(len(nodes.starts[NODES[0]]))
            await asyncio.sleep(0.8)
            checked.append(len(nodes.starts[NODES[0]]))
            full.clear()
        await asyncio.sleep(0.5)
        daemon._stop(signal.SIGTERM)  # noqa: SLF001 - what the signal handler runs
        await asyncio.wait_for(task, 10)

    with caplog.at_level("INFO"):
        asyncio.run(main())

    said = [r.getMessage() for r in caplog.records]
    for what in ("the state", "the history"):
        failed = [m for m in said if m.startswith(f"cannot write {what}: ")]
        assert len(failed) == 2, (what, said)
        assert all(m.endswith("(monitoring goes on)") for m in failed), failed
        assert len([m for m in said if m.startswith(f"{what} is written again")]) == 2, said
    assert "No space left on device" in "".join(said)
    assert checked[1] - checked[0] >= 3, "checks went on while the disk was full"
    assert checked[3] - checked[2] >= 3, checked
    info = state(isolated_home)["daemon"]
    assert info["running"] is False
    assert info["checks"] > checked[3], "the counters went on, and were written once it could"
