"""The state file is strict JSON both ways, and the history refuses what SQLite cannot hold."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from ugro.errors import StateError, UgroError
from ugro.model import CheckResult, NodeStatus, NodeVerdict, Status
from ugro.store.history import History
from ugro.store.history_records import Sample
from ugro.store.state import StateStore

if TYPE_CHECKING:
    from pathlib import Path


def verdict(value: float | None = 2.0) -> NodeVerdict:
    """A healthy verdict whose gpu check has `value`."""
    return NodeVerdict(
        name="n1",
        address="10.0.0.1",
        status=NodeStatus.HEALTHY,
        health_score=100.0,
        pass_rate=1.0,
        last_check=datetime(2026, 11, 28, tzinfo=UTC),
        checks=(CheckResult("gpu", Status.OK, "2 GPUs", value, "gpus", 3.0),),
    )


def strict(text: str) -> object:
    """`text` parsed as strict JSON: NaN and Infinity refused."""

    def refuse(constant: str) -> object:
        raise AssertionError(f"{constant} in JSON")

    return json.loads(text, parse_constant=refuse)


def test_the_state_file_is_strict_json(tmp_path: Path) -> None:
    """What the store writes parses under a strict reader."""
    store = StateStore(tmp_path / "state.json")
    store.update([verdict()])
    strict((tmp_path / "state.json").read_text(encoding="utf-8"))


def test_a_non_finite_number_is_never_written(tmp_path: Path) -> None:
    """A nan that got this far fails the write (allow_nan=False) rather than the readers."""
    store = StateStore(tmp_path / "state.json")
    with pytest.raises(ValueError, match="not JSON compliant"):
        store.update([verdict(float("nan"))])
    assert not (tmp_path / "state.json").exists()


@pytest.mark.parametrize(
    "written",
    ['"value": NaN', '"value": -Infinity', '"value": 1e400', '"value": ' + "9" * 310],
)
def test_a_node_with_numbers_no_reader_holds_is_left_out(tmp_path: Path, written: str) -> None:
    """NaN, Infinity, 1e400 or a 310-digit int in a node's entry: that node is left out."""
    path = tmp_path / "state.json"
    StateStore(path).update([verdict()])
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace('"value": 2.0', written), encoding="utf-8")
    state = StateStore(path).read()
    assert state is not None
    assert state.nodes == {}
    assert list(state.rejected) == ["n1"]


def test_deeply_nested_state_is_corrupt_not_a_crash(tmp_path: Path) -> None:
    """A file nested beyond what Python parses is corrupt (StateError), not a RecursionError."""
    path = tmp_path / "state.json"
    path.write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    with pytest.raises(StateError, match="nested too deep"):
        StateStore(path).read()


def test_history_refuses_an_integer_sqlite_cannot_hold(tmp_path: Path) -> None:
    """A 10^20 value in a sample is a UgroError (which the daemon logs), not an OverflowError."""
    history = History(tmp_path / "history.db")
    try:
        with pytest.raises(UgroError, match="cannot record history"):
            history.record([Sample(verdict(10**20), 30)])
        history.record([Sample(verdict(), 30)])
    finally:
        history.close()
