"""Alerts that read right: one message per node episode, unknown apart from fail, no false wave.

Issue #15: "went down at once" is said only of nodes whose status moved in the sweep.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import jsonschema
from click.testing import CliRunner

from alerting import settings, until
from jsonschemas import schema
from ugro import cli, paths
from ugro.alerts.book import book_to_json
from ugro.alerts.delivery import Dispatcher
from ugro.alerts.engine import AlertEngine
from ugro.alerts.sinks import build
from ugro.config import AlertSettings
from ugro.model import CheckResult, NodeStatus, NodeVerdict, Status
from ugro.store.history_records import Transition
from ugro.store.state import StateStore

if TYPE_CHECKING:
    from conftest import Receiver, Request
    from ugro.alerts.book import AlertEvent

T0 = datetime(2026, 11, 28, tzinfo=UTC)
SETTINGS = AlertSettings(cluster="lab")
H, U, X = NodeStatus.HEALTHY, NodeStatus.UNHEALTHY, NodeStatus.UNREACHABLE


def verdict(node: str, status: NodeStatus, *checks: CheckResult) -> NodeVerdict:
    """A node's shown (and observed) verdict with these checks."""
    if not checks:
        ssh = Status.FAIL if status is X else Status.OK
        checks = (CheckResult("ssh", ssh, "connection refused" if status is X else "ok"),)
    return NodeVerdict(node, "10.0.0.1", status, 0.0 if status is X else 95.0, 1.0, T0, checks)


def twelve(failed: int, unknown: int) -> tuple[CheckResult, ...]:
    """Twelve checks: `failed` fail, then `unknown` unknown, the rest ok."""
    statuses = [Status.FAIL] * failed + [Status.UNKNOWN] * unknown
    statuses += [Status.OK] * (12 - len(statuses))
    return tuple(CheckResult(f"c{i}", s, f"says {i}") for i, s in enumerate(statuses))


def test_failures_come_first_in_the_details() -> None:
    """A warning before a failure in check order still comes after it: groups quote the first."""
    engine = AlertEngine(SETTINGS)
    checks = (
        CheckResult("gpu", Status.WARN, "model differs"),
        CheckResult("torch", Status.UNKNOWN, "timed out"),
        CheckResult("disk", Status.FAIL, "/ has 1 GB free"),
    )
    fired = engine.evaluate([verdict("n1", U, *checks)], ["n1"], 4, T0)
    assert fired[0].details == (
        "disk: / has 1 GB free",
        "torch (unknown): timed out",
        "gpu (warn): model differs",
    )
    assert fired[0].checks == ("gpu", "torch", "disk")


def test_unknown_is_counted_apart_from_fail() -> None:
    """'9 of 12 checks fail' with 6 unknown was wrong: a check not judged did not fail."""
    engine = AlertEngine(SETTINGS)
    both = engine.evaluate([verdict("n1", U, *twelve(3, 6))], ["n1"], 4, T0)
    only_unknown = engine.evaluate([verdict("n2", U, *twelve(0, 6))], ["n2"], 4, T0)
    only_failed = engine.evaluate([verdict("n3", U, *twelve(2, 0))], ["n3"], 4, T0)
    assert [e.summary for e in (both[0], only_unknown[0], only_failed[0])] == [
        "unhealthy: 3 of 12 checks fail, 6 unknown",
        "unhealthy: 6 of 12 checks unknown",
        "unhealthy: 2 of 12 checks fail",
    ]
    assert both[0].details[:4] == ("c0: says 0", "c1: says 1", "c2: says 2", "c3 (unknown): says 3")


def transitions(now: datetime, before: str, *nodes: str) -> list[Transition]:
    """The status moves of `nodes` from `before` to unreachable, as the daemon records them."""
    return [Transition(now, n, before, "unreachable", "connection refused") for n in nodes]


def test_nodes_down_before_the_monitor_started_did_not_go_down_at_once() -> None:
    """A monitor's first sweep finding 5 of 5 nodes down says they are down, not that they fell."""
    engine = AlertEngine(SETTINGS)
    nodes = [f"n{i}" for i in range(5)]
    first = engine.after_sweep(
        [verdict(n, X) for n in nodes], transitions(T0, "unknown", *nodes), None, 5, T0
    )
    assert [(e.node, e.key) for e in first] == [("cluster", "nodes_down")]
    assert first[0].summary == (
        "5 of 5 nodes are down (already down when the monitor first checked them)"
    )
    assert "went down at once" not in first[0].summary


def test_a_wave_beside_nodes_already_down_is_told_apart() -> None:
    """Two nodes that fell in this sweep and one found down at its first check: both said."""
    engine = AlertEngine(SETTINGS)
    engine.after_sweep([verdict(n, H) for n in ("n0", "n1", "n2")], [], None, 4, T0)
    later = T0 + timedelta(minutes=1)
    moves = [*transitions(later, "healthy", "n0", "n1"), *transitions(later, "unknown", "n3")]
    down = engine.after_sweep(
        [verdict("n0", X), verdict("n1", X), verdict("n2", H), verdict("n3", X)],
        moves,
        None,
        4,
        later,
    )
    assert [e.summary for e in down] == [
        (
            "3 of 4 nodes are down: 2 went down at once, 1 already down when the monitor "
            "first checked them"
        )
    ]


def test_a_wave_of_nodes_that_fell_still_went_down_at_once() -> None:
    """Nodes whose status moved from healthy to down in one sweep keep the old headline."""
    engine = AlertEngine(SETTINGS)
    engine.after_sweep([verdict(n, H) for n in ("n0", "n1")], [], None, 2, T0)
    later = T0 + timedelta(minutes=1)
    down = engine.after_sweep(
        [verdict("n0", X), verdict("n1", X)],
        transitions(later, "healthy", "n0", "n1"),
        None,
        2,
        later,
    )
    assert [e.summary for e in down] == ["2 of 2 nodes went down at once"]


def broken(status: NodeStatus = U) -> NodeVerdict:
    """A node with two failing checks and a warning, or the same node recovered."""
    if status is H:
        return verdict("gpu1", H, CheckResult("gpu", Status.OK, "8 × H100"))
    return verdict(
        "gpu1",
        U,
        CheckResult("gpu", Status.FAIL, "7 of 8 GPUs"),
        CheckResult("xid", Status.FAIL, "GPU 3: Xid 79 (GPU has fallen off the bus)"),
        CheckResult("temperature", Status.WARN, "GPU 1 at 88 °C"),
    )


def deliver(receiver: Receiver, *waves: list[AlertEvent]) -> list[list[Request]]:
    """Deliver each wave of events through a webhook and an Alertmanager sink to `receiver`.

    What each wave brought, in order. Alertmanager takes every event; once it has them all,
    the webhook's are in too (one lane each, posting at once), with time for any extra one.
    A `resolved` goes only to a sink that got the firing: one dispatcher delivers all waves.
    """
    hook = settings(name="hook", url=receiver.url("/hook"))
    am = settings(name="am", type="alertmanager", url=receiver.url(""))
    brought: list[list[Request]] = []

    async def main() -> None:
        dispatcher = Dispatcher([(hook, build(hook)), (am, build(am))])
        dispatcher.start()
        for events in waves:
            receiver.requests.clear()
            dispatcher.submit(events)
            await until(lambda: len(receiver.at("/api/v2/alerts")) >= len(events))  # noqa: B023 - awaited within the iteration
            await until(lambda: receiver.at("/hook"))
            await asyncio.sleep(0.2)
            brought.append(list(receiver.requests))
        await dispatcher.close()

    asyncio.run(main())
    return brought


def test_one_notification_per_node_episode(receiver: Receiver) -> None:
    """A broken node is one webhook message naming all its checks; Alertmanager gets each key."""
    engine = AlertEngine(SETTINGS)
    fired = engine.evaluate([broken()], ["gpu1"], 1, T0)
    assert sorted(e.key for e in fired) == [
        "check:gpu",
        "check:temperature",
        "check:xid",
        "unhealthy",
    ]
    resolved = engine.evaluate([broken(H)], ["gpu1"], 1, T0 + timedelta(minutes=5))
    assert len(resolved) == len(fired)
    firing, resolving = deliver(receiver, fired, resolved)

    hook = [r.body for r in firing if r.path == "/hook"]
    assert len(hook) == 1
    for body in (*hook, *(r.body for r in resolving if r.path == "/hook")):
        jsonschema.validate(body, schema("alert-event"))
    assert (hook[0]["key"], hook[0]["checks"]) == ("unhealthy", ["gpu", "xid", "temperature"])
    assert hook[0]["details"] == [
        "gpu: 7 of 8 GPUs",
        "xid: GPU 3: Xid 79 (GPU has fallen off the bus)",
        "temperature (warn): GPU 1 at 88 °C",
    ]
    routed = sorted(a["labels"]["key"] for r in firing if r.path != "/hook" for a in r.body)
    assert routed == ["check:gpu", "check:temperature", "check:xid", "unhealthy"]

    assert [(r.body["kind"], r.body["key"]) for r in resolving if r.path == "/hook"] == [
        ("resolved", "unhealthy")
    ]
    assert len([a for r in resolving if r.path != "/hook" for a in r.body]) == len(fired)


def show_alerts(engine: AlertEngine) -> str:
    """What `ugro alerts` prints for the engine's book, as the daemon saves it, 200 wide."""
    StateStore(paths.state_file()).update([], alerts=book_to_json(engine.book))
    ran = CliRunner().invoke(cli.main, ["alerts"], env={"COLUMNS": "200"})
    assert ran.exit_code == 0, ran.output
    return ran.output


def test_held_is_explained_where_it_is_shown() -> None:
    """`(held)` says what holds the alert (flapping, the cluster's group), and a note says why."""
    engine = AlertEngine(SETTINGS)
    nodes = ["n0", "n1", "n2"]
    engine.after_sweep([verdict(n, H) for n in nodes], [], None, 3, T0)
    later = T0 + timedelta(minutes=1)
    engine.after_sweep(
        [verdict("n0", X), verdict("n1", X), verdict("n2", H)],
        transitions(later, "healthy", "n0", "n1"),
        None,
        3,
        later,
    )
    out = show_alerts(engine)
    assert out.count("(held: many nodes down, see nodes_down)") == 2
    assert "(held): not sent on its own while another alert stands for it" in out

    flapping = AlertEngine(AlertSettings(cluster="lab", flap_changes=2))
    flapping.after_sweep([verdict("n0", H)], [], None, 3, T0)
    for i, status in enumerate([U, H, U], start=1):
        when = T0 + timedelta(minutes=i)
        moves = [Transition(when, "n0", "x", status.value, "")]
        flapping.after_sweep([verdict("n0", status, *twelve(1, 0))], moves, None, 3, when)
    out = show_alerts(flapping)
    assert "(held: the node is flapping)" in out
    assert "flapping: " in out


def test_nothing_held_needs_no_note() -> None:
    """Without a held alert, no note: the explanation is where `(held)` is shown."""
    engine = AlertEngine(SETTINGS)
    engine.after_sweep([verdict("n0", X)], [], None, 3, T0)
    out = show_alerts(engine)
    assert "n0" in out
    assert "held" not in out
