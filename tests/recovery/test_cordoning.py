"""Cordoning (ugro.recovery.cordoning): what a person's cordon and uncordon do, and tell."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from ugro.errors import SchedulerError
from ugro.recovery.cordoning import Change, cordon_by_hand, tell, uncordon_by_hand
from ugro.store.cordons import Cordon, CordonStore

if TYPE_CHECKING:
    from pathlib import Path

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


class Scheduler:
    """Records its calls; refuses the nodes in `refuse`; `ours=False`: no drain is ugro's."""

    name = "recorder"

    def __init__(self, refuse: frozenset[str] = frozenset(), *, ours: bool = True) -> None:
        """Refuse drains and resumes of `refuse`."""
        self.calls: list[tuple[str, ...]] = []
        self.refuse = refuse
        self.ours = ours

    def drain(self, node: str, reason: str) -> None:
        """Record; refuse the nodes in `refuse`."""
        self.calls.append(("drain", node, reason))
        if node in self.refuse:
            raise SchedulerError(f"Invalid node name specified: {node}")

    def resume(self, node: str) -> bool:
        """Record; refuse the nodes in `refuse`."""
        self.calls.append(("resume", node))
        if node in self.refuse:
            raise SchedulerError(f"Invalid node name specified: {node}")
        return self.ours


@pytest.fixture
def store(tmp_path: Path) -> CordonStore:
    """A store whose file does not exist yet."""
    return CordonStore(tmp_path / "cordons.json")


def test_tell_says_what_the_scheduler_said() -> None:
    """A drain taken, a drain refused, and a resume of a drain that is not ugro's."""
    assert tell(Scheduler(), "drain", "gpu1", "fan") == ({"name": "recorder", "ok": True}, "")
    refused = "Invalid node name specified: gpu9"
    assert tell(Scheduler(frozenset({"gpu9"})), "drain", "gpu9", "fan") == (
        {"name": "recorder", "ok": False, "error": refused},
        refused,
    )
    assert tell(Scheduler(ours=False), "resume", "gpu1") == (
        {"name": "recorder", "ok": True, "note": "drain not placed by ugro; left"},
        "",
    )


def test_cordon_by_hand_places_drains_and_records(store: CordonStore) -> None:
    """A person's cordon is placed with a one-line reason, drained, and described for history."""
    scheduler = Scheduler()
    done = cordon_by_hand(store, scheduler, "gpu1", "  new\nPSU ", user="alice")
    assert isinstance(done, Change)
    assert (done.cordon.by, done.cordon.user, done.cordon.reason) == ("manual", "alice", "new PSU")
    assert store.read() == {"gpu1": done.cordon}
    assert scheduler.calls == [("drain", "gpu1", "new PSU")]
    assert (done.event.node, done.event.kind) == ("gpu1", "cordon")
    assert done.event.detail == {**done.cordon.to_json(), "scheduler": done.said}
    assert (done.said, done.error, done.took_over) == ({"name": "recorder", "ok": True}, "", None)


def test_cordon_by_hand_takes_over_ugros_cordon_but_not_a_persons(store: CordonStore) -> None:
    """The daemon's cordon becomes the person's; another person's stays, and nobody is told."""
    ugro = Cordon("gpu1", "ugro", "unhealthy: gpu: driver not loaded", NOW)
    store.cordon(ugro)
    taken = cordon_by_hand(store, Scheduler(), "gpu1", "RMA", user="alice")
    assert isinstance(taken, Change)
    assert taken.took_over == ugro
    assert taken.event.detail["took_over"] == ugro.to_json()
    scheduler = Scheduler()
    assert cordon_by_hand(store, scheduler, "gpu1", "other", user="bob") == taken.cordon
    assert store.read() == {"gpu1": taken.cordon}
    assert scheduler.calls == []


def test_a_refused_drain_leaves_the_cordon_in_place(store: CordonStore) -> None:
    """The scheduler's refusal is reported; the cordon stands regardless."""
    done = cordon_by_hand(store, Scheduler(frozenset({"gpu3"})), "gpu3", "x", user="alice")
    assert isinstance(done, Change)
    assert done.error == "Invalid node name specified: gpu3"
    assert done.said["ok"] is False
    assert "gpu3" in store.read()


def test_uncordon_by_hand_lifts_any_cordon_and_resumes(store: CordonStore) -> None:
    """Whoever placed it, the cordon goes, the node is resumed, and the history is told."""
    escalated = Cordon("gpu2", "ugro", "remediation failed", NOW, escalated=True)
    store.cordon(escalated)
    scheduler = Scheduler()
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
