"""Cordoning (ugro.recovery.cordoning): what a person's cordon and uncordon do, and tell."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from recording_scheduler import Recorder
from ugro.recovery.cordoning import Change, cordon_by_hand, tell, uncordon_by_hand
from ugro.store.cordons import Cordon, CordonStore

if TYPE_CHECKING:
    from pathlib import Path

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> CordonStore:
    """A store whose file does not exist yet."""
    return CordonStore(tmp_path / "cordons.json")


def test_tell_says_what_the_scheduler_said() -> None:
    """A drain taken, a drain refused, and a resume of a drain that is not ugro's."""
    assert tell(Recorder(), "drain", "gpu1", "fan") == ({"name": "recorder", "ok": True}, "")
    refused = "Invalid node name specified: gpu9"
    assert tell(Recorder(frozenset({"gpu9"})), "drain", "gpu9", "fan") == (
        {"name": "recorder", "ok": False, "error": refused},
        refused,
    )
    assert tell(Recorder(ours=False), "resume", "gpu1") == (
        {"name": "recorder", "ok": True, "note": "drain not placed by ugro; left"},
        "",
    )


def test_cordon_by_hand_places_drains_and_records(store: CordonStore) -> None:
    """A person's cordon is placed with a one-line reason, drained, and described for history."""
    scheduler = Recorder()
    done = cordon_by_hand(store, scheduler, "gpu1", "  new\nPSU ", user="alice")
    assert isinstance(done, Change)
    assert (done.cordon.by, done.cordon.user, done.cordon.reason) == ("manual", "alice", "new PSU")
    assert store.read() == {"gpu1": done.cordon}
    assert scheduler.calls == [("drain", "gpu1", "new PSU")]
    assert (done.event.node, done.event.kind) == ("gpu1", "cordon")
    assert done.event.detail == {**done.cordon.to_json(), "scheduler": done.said}
    assert (done.said, done.error, done.took_over) == ({"name": "recorder", "ok": True}, "", None)


def test_cordon_by_hand_takes_over_ugros_cordon_but_not_a_persons(store: CordonStore) -> None:
    """The daemon's cordon becomes the person's; the same again changes nothing, tells nobody."""
    ugro = Cordon("gpu1", "ugro", "unhealthy: gpu: driver not loaded", NOW)
    store.cordon(ugro)
    taken = cordon_by_hand(store, Recorder(), "gpu1", "RMA", user="alice")
    assert isinstance(taken, Change)
    assert taken.took_over == ugro
    assert taken.event.detail["took_over"] == ugro.to_json()
    scheduler = Recorder()
    assert cordon_by_hand(store, scheduler, "gpu1", "RMA", user="bob") == taken.cordon
    assert store.read() == {"gpu1": taken.cordon}
    assert scheduler.calls == []


def test_a_new_reason_rewords_a_persons_cordon(store: CordonStore) -> None:
    """A person's cordon takes the new reason and its author, keeps its since; Slurm is told."""
    placed = cordon_by_hand(store, Recorder(), "gpu1", "RMA", user="alice")
    assert isinstance(placed, Change)
    scheduler = Recorder()
    reworded = cordon_by_hand(store, scheduler, "gpu1", "RMA and fan", user="bob")
    assert isinstance(reworded, Change)
    assert reworded.reworded == placed.cordon
    assert (reworded.cordon.reason, reworded.cordon.user, reworded.cordon.since) == (
        "RMA and fan",
        "bob",
        placed.cordon.since,
    )
    assert store.read() == {"gpu1": reworded.cordon}
    assert scheduler.calls == [("drain", "gpu1", "RMA and fan")]
    assert reworded.event.detail["reason_was"] == "RMA"


def test_a_refused_drain_leaves_the_cordon_in_place(store: CordonStore) -> None:
    """The scheduler's refusal is reported; the cordon stands regardless."""
    done = cordon_by_hand(store, Recorder(frozenset({"gpu3"})), "gpu3", "x", user="alice")
    assert isinstance(done, Change)
    assert done.error == "Invalid node name specified: gpu3"
    assert done.said["ok"] is False
    assert "gpu3" in store.read()


def test_uncordon_by_hand_lifts_any_cordon_and_resumes(store: CordonStore) -> None:
    """Whoever placed it, the cordon goes, the node is resumed, and the history is told."""
    escalated = Cordon("gpu2", "ugro", "remediation failed", NOW, escalated=True)
    store.cordon(escalated)
    scheduler = Recorder()
    done = uncordon_by_hand(store, scheduler, "gpu2", user="alice")
    assert done is not None
    assert (done.cordon, store.read(), scheduler.calls) == (escalated, {}, [("resume", "gpu2")])
    assert (done.event.node, done.event.kind) == ("gpu2", "uncordon")
    assert done.event.detail == {
        "by": "manual",
        "user": "alice",
        "lifted": escalated.to_json(),
        "scheduler": {"name": "recorder", "ok": True},
    }
    assert uncordon_by_hand(store, scheduler, "gpu2", user="alice") is None
    assert len(scheduler.calls) == 1
