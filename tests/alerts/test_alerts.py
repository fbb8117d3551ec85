"""The alert engine: one message per problem, reminders, resolutions, flapping, grouping."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from ugro.alerts.engine import AlertEngine
from ugro.alerts.sinks import accepts
from ugro.config import AlertSettings
from ugro.config.settings import SinkSettings
from ugro.model import CheckResult, GpuMetrics, NodeStatus, NodeVerdict, Status, Tracking

if TYPE_CHECKING:
    from ugro.alerts.book import AlertEvent

T0 = datetime(2026, 11, 28, tzinfo=UTC)
SETTINGS = AlertSettings(
    cluster="lab", repeat_interval_s=4 * 3600, flap_changes=4, flap_window_s=3600
)
H, D, U, X = NodeStatus.HEALTHY, NodeStatus.DEGRADED, NodeStatus.UNHEALTHY, NodeStatus.UNREACHABLE


def verdict(
    node: str, shown: NodeStatus, observed: NodeStatus | None = None, *, temp: float = 40
) -> NodeVerdict:
    """A node's verdict after hysteresis; the gpu check fails when the node is unhealthy."""
    observed = observed or shown
    gpu = Status.FAIL if observed is U else Status.WARN if observed is D else Status.OK
    ssh = Status.FAIL if observed is X else Status.OK
    checks = (
        CheckResult("ssh", ssh, "connection refused" if ssh is Status.FAIL else "ok"),
        CheckResult(
            "gpu",
            gpu if ssh is Status.OK else Status.UNKNOWN,
            "driver not loaded" if gpu is Status.FAIL else "model differs",
        ),
    )
    gpus = (GpuMetrics(0, "GPU-1", "RTX 4090", temp, 0, 0, 24564, 50, 450),)
    tracking = Tracking(observed, T0, 0, 0, 0, T0)
    return NodeVerdict(node, "10.0.0.1", shown, 50.0, 0.5, T0, checks, gpus=gpus, tracking=tracking)


def said(events: list[AlertEvent]) -> list[tuple[str, str, str]]:
    """(kind, node, key) of each event, in order."""
    return [(e.kind, e.node, e.key) for e in events]


def test_fail_confirm_remind_resolve() -> None:
    """Pending: silence; confirmed: fire once; quiet until the repeat interval; resolve once."""
    engine = AlertEngine(SETTINGS)
    assert said(engine.evaluate([verdict("n1", H)], [], 4, T0)) == []
    assert said(engine.evaluate([verdict("n1", H, U)], [], 4, T0 + timedelta(seconds=30))) == []
    fired = engine.evaluate([verdict("n1", U)], ["n1"], 4, T0 + timedelta(seconds=35))
    assert said(fired) == [("firing", "n1", "unhealthy"), ("firing", "n1", "check:gpu")]
    assert fired[0].severity == "critical"
    assert fired[0].details == ("gpu: driver not loaded",)
    for minutes in (1, 60, 239):
        assert (
            engine.evaluate([verdict("n1", U)], [], 4, T0 + timedelta(minutes=minutes, seconds=35))
            == []
        )
    reminded = engine.evaluate([verdict("n1", U)], [], 4, T0 + timedelta(hours=4, seconds=40))
    assert said(reminded) == [("reminder", "n1", "unhealthy"), ("reminder", "n1", "check:gpu")]
    assert engine.evaluate([verdict("n1", U, H)], [], 4, T0 + timedelta(hours=5)) == []
    resolved = engine.evaluate([verdict("n1", H)], ["n1"], 4, T0 + timedelta(hours=5, seconds=5))
    assert said(resolved) == [("resolved", "n1", "unhealthy"), ("resolved", "n1", "check:gpu")]
    assert resolved[0].resolved_at == T0 + timedelta(hours=5, seconds=5)
    assert not engine.book.firing
    assert len(engine.book.resolved) == 2


def test_unreachable_is_one_alert() -> None:
    """An unreachable node raises one alert, not one per unknown check."""
    engine = AlertEngine(SETTINGS)
    assert said(engine.evaluate([verdict("n1", X)], ["n1"], 4, T0)) == [
        ("firing", "n1", "unreachable")
    ]


def test_degraded_alerts_and_a_hot_gpu_alone_does_not() -> None:
    """A degraded node warns once per finding; temperature alone is the temperature check's."""
    engine = AlertEngine(SETTINGS)
    assert engine.evaluate([verdict("n1", H, temp=95)], [], 4, T0) == []
    degraded = engine.evaluate([verdict("n1", D)], ["n1"], 4, T0 + timedelta(minutes=4))
    assert said(degraded) == [("firing", "n1", "degraded"), ("firing", "n1", "check:gpu")]
    assert {e.severity for e in degraded} == {"warning"}


def test_flapping_becomes_one_alert() -> None:
    """A node that keeps changing gets one flapping alert, then silence, then the outcome."""
    engine = AlertEngine(SETTINGS)
    events = []
    statuses = [U, H, U, H, U, H, U]
    for i, status in enumerate(statuses):
        events += engine.evaluate([verdict("n1", status)], ["n1"], 4, T0 + timedelta(minutes=i))
    assert said(events) == [
        ("firing", "n1", "unhealthy"),
        ("firing", "n1", "check:gpu"),
        ("resolved", "n1", "unhealthy"),
        ("resolved", "n1", "check:gpu"),
        ("firing", "n1", "unhealthy"),
        ("firing", "n1", "check:gpu"),
        ("firing", "n1", "flapping"),
        ("firing", "n1", "flapping"),
    ]
    # It fires as a warning over a healthy node, again as critical once it holds a failure.
    assert [e.severity for e in events[-2:]] == ["warning", "critical"]
    settle = T0 + timedelta(minutes=6, seconds=SETTINGS.flap_settle_s)
    assert engine.evaluate([verdict("n1", U)], [], 4, settle - timedelta(seconds=1)) == []
    settled = engine.evaluate([verdict("n1", U)], [], 4, settle)
    # The incident announced before the hold resolves; the one now current fires.
    assert said(settled) == [
        ("resolved", "n1", "flapping"),
        ("resolved", "n1", "unhealthy"),
        ("resolved", "n1", "check:gpu"),
        ("firing", "n1", "unhealthy"),
        ("firing", "n1", "check:gpu"),
    ]


def test_half_the_cluster_down_is_one_cluster_alert() -> None:
    """Two of four nodes down in one sweep: one cluster alert; their recovery: one resolution."""
    engine = AlertEngine(SETTINGS)
    nodes = ["n1", "n2", "n3", "n4"]
    assert engine.evaluate([verdict(n, H) for n in nodes], [], 4, T0) == []
    down = engine.evaluate(
        [verdict("n1", X), verdict("n2", U), verdict("n3", H), verdict("n4", H)],
        ["n1", "n2"],
        4,
        T0 + timedelta(minutes=1),
    )
    assert said(down) == [("firing", "cluster", "nodes_down")]
    assert down[0].summary == "2 of 4 nodes went down at once"
    assert down[0].details == ("n1: connection refused", "n2: gpu: driver not loaded")
    assert (
        engine.evaluate([verdict("n1", H), verdict("n2", U)], ["n1"], 4, T0 + timedelta(minutes=2))
        == []
    )
    back = engine.evaluate([verdict("n2", H)], ["n2"], 4, T0 + timedelta(minutes=3))
    assert said(back) == [("resolved", "cluster", "nodes_down")]
    assert not engine.book.firing


def test_one_node_of_four_down_is_not_grouped() -> None:
    """Below the group fraction each node speaks for itself."""
    engine = AlertEngine(SETTINGS)
    events = engine.evaluate([verdict("n1", X), verdict("n2", H), verdict("n3", H)], ["n1"], 4, T0)
    assert said(events) == [("firing", "n1", "unreachable")]


def test_events_carry_alertmanager_names_and_json() -> None:
    """Events name themselves for Alertmanager and serialise for webhooks."""
    engine = AlertEngine(SETTINGS)
    event = engine.evaluate([verdict("n1", U)], ["n1"], 4, T0)[1]
    assert event.alertname == "UgroCheckGpu"
    assert event.check == "gpu"
    assert event.to_json()["cluster"] == "lab"
    assert event.title() == "[CRITICAL] n1: gpu check fail"


def test_checks_that_say_the_same_are_one_alert() -> None:
    """Six checks unknown for one broken driver page once, keyed by the first of them."""
    message = "not read: the NVIDIA driver is not loaded (exit 9) (see the gpu check)"
    base = verdict("n1", U)
    checks = (
        *base.checks,
        *(CheckResult(name, Status.UNKNOWN, message) for name in ("ecc", "remap", "pcie")),
    )
    events = AlertEngine(SETTINGS).evaluate(
        [dataclasses.replace(base, checks=checks)], ["n1"], 4, T0
    )
    assert said(events) == [
        ("firing", "n1", "unhealthy"),
        ("firing", "n1", "check:gpu"),
        ("firing", "n1", "check:ecc"),
    ]
    assert events[2].summary == "ecc, remap, pcie checks unknown"


CRITICAL_ONLY = SinkSettings(
    name="oncall", type="webhook", url="http://127.0.0.1:9", min_severity="critical"
)
CRITICAL_AM = SinkSettings(
    name="am", type="alertmanager", url="http://127.0.0.1:9", min_severity="critical"
)


def test_failure_after_short_outages_pages_a_critical_only_sink_within_one_sweep() -> None:
    """Two short outages, then a lasting GPU failure: the flapping alert pages it as critical."""
    engine = AlertEngine(SETTINGS)
    engine.evaluate([verdict("n1", H)], [], 4, T0)
    for i, status in enumerate([X, H, X, H], start=1):
        engine.evaluate([verdict("n1", status)], ["n1"], 4, T0 + timedelta(seconds=30 * i))
    assert engine.book.firing[("n1", "flapping")].severity == "warning"
    failed = engine.evaluate([verdict("n1", U)], ["n1"], 4, T0 + timedelta(seconds=150))
    paged = [e for e in failed if accepts(CRITICAL_ONLY, e)]
    assert said(paged) == [("firing", "n1", "flapping")]
    assert paged[0].severity == "critical"
    assert "held: critical gpu check fail" in paged[0].details


def test_fault_churn_ends_with_every_firing_resolved() -> None:
    """Five minutes of churn, then health: every firing a sink got gets its resolved."""
    engine = AlertEngine(SETTINGS.model_copy(update={"keep_resolved_s": 0}))
    nodes = ["n1", "n2", "n3", "n4"]
    churn = {"n1": [U, H, X, H], "n2": [D, U, H], "n3": [X, X, H, U, U, H], "n4": [H]}
    shown = dict.fromkeys(nodes, H)
    engine.evaluate([verdict(n, H) for n in nodes], [], 4, T0)
    fired: dict[tuple[str, str, datetime], str] = {}
    resolved: set[tuple[str, str, datetime]] = set()
    paged: set[tuple[str, str, datetime]] = set()
    now = T0
    for step in range(40):  # 5 min of churn, then healthy, every 30 s for 15 min
        now = T0 + timedelta(seconds=30 * (step + 1))
        before = dict(shown)
        for node in nodes:
            pattern = churn[node]
            shown[node] = pattern[step % len(pattern)] if step < 10 else H
        moved = [n for n in nodes if shown[n] is not before[n]]
        for event in engine.evaluate([verdict(n, shown[n]) for n in nodes], moved, 4, now):
            sent = (event.node, event.key, event.started_at)
            if event.kind == "firing":
                fired[sent] = event.severity
                if accepts(CRITICAL_ONLY, event):
                    paged.add(sent)
            elif event.kind == "resolved":
                assert sent in fired, f"a resolved for {sent} that never fired"
                resolved.add(sent)
    assert set(fired) == resolved
    assert ("n1", "flapping") not in engine.book.firing
    assert not engine.book.firing
    assert not engine.book.resolved  # kept only while owed, with keep_resolved_s 0
    # Each node that failed was paged, through its own alerts or its flapping alert.
    assert {"n1", "n2", "n3"} <= {node for node, _, _ in paged}


def test_flapping_resolves_after_the_quiet_period() -> None:
    """A node that stops changing settles after `flap_settle_s`, not after the whole window."""
    engine = AlertEngine(SETTINGS)
    for i, status in enumerate([U, H, U, H]):
        engine.evaluate([verdict("n1", status)], ["n1"], 4, T0 + timedelta(seconds=30 * i))
    assert ("n1", "flapping") in engine.book.firing
    last = T0 + timedelta(seconds=90)
    quiet = timedelta(seconds=SETTINGS.flap_settle_s)
    held = engine.evaluate([verdict("n1", H)], [], 4, last + quiet - timedelta(seconds=1))
    assert held == []
    settled = engine.evaluate([verdict("n1", H)], [], 4, last + quiet)
    assert said(settled) == [
        ("resolved", "n1", "flapping"),
        ("resolved", "n1", "unhealthy"),
        ("resolved", "n1", "check:gpu"),
    ]
    # Its failure was paged before the hold and had cleared when it began: it held no critical.
    assert settled[0].severity == "warning"
    assert not engine.book.firing
    # Its count starts afresh: one more change is no flapping.
    again = engine.evaluate([verdict("n1", U)], ["n1"], 4, last + quiet + timedelta(seconds=30))
    assert said(again) == [("firing", "n1", "unhealthy"), ("firing", "n1", "check:gpu")]


def test_an_alert_that_grew_worse_while_held_is_sent_again_on_release() -> None:
    """A warning sent before the hold that turned critical in it pages critical sinks on release."""
    engine = AlertEngine(SETTINGS)
    engine.evaluate([verdict("n1", D)], [], 4, T0)
    # Its shown status flaps while its gpu check keeps warning: that alert stays, sent once.
    for i, status in enumerate([H, D, H, D], start=1):
        engine.evaluate([verdict("n1", status, D)], ["n1"], 4, T0 + timedelta(seconds=30 * i))
    held = engine.book.firing[("n1", "check:gpu")]
    assert (held.severity, held.grouped, held.announced) == ("warning", True, True)
    failed = T0 + timedelta(seconds=150)
    engine.evaluate([verdict("n1", U)], ["n1"], 4, failed)
    settled = failed + timedelta(seconds=SETTINGS.flap_settle_s)
    released = engine.evaluate([verdict("n1", U)], [], 4, settled)
    again = [e for e in released if e.kind == "firing" and e.key == "check:gpu"]
    assert [e.severity for e in again] == ["critical"]
    assert accepts(CRITICAL_AM, again[0])
    assert not engine.book.firing[("n1", "check:gpu")].escalated
    # The pager hears of it through the node's own alert, which names the check.
    paged = [e for e in released if accepts(CRITICAL_ONLY, e)]
    assert [(e.kind, e.key, e.checks) for e in paged] == [
        ("resolved", "flapping", ()),
        ("firing", "unhealthy", ("gpu",)),
    ]
