"""Recovery decisions (ugro.recovery): tables for the rules, Hypothesis for the invariants."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ugro import config
from ugro.alerts.book import ExternalCondition
from ugro.alerts.engine import AlertEngine
from ugro.config import AlertSettings, RecoverySettings, parse_text
from ugro.daemon.loop import Daemon
from ugro.errors import ConfigError
from ugro.model import CheckResult, NodeStatus, NodeVerdict, Status, Tracking
from ugro.recovery.plan import (
    Attempt,
    CordonOrder,
    Escalation,
    NodeRemediation,
    Plan,
    Situation,
    cordon_reason,
    plan,
    prune,
)
from ugro.store.cordons import Cordon
from ugro.store.history import opened
from ugro.store.history_records import Event

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
NODES = ("n1", "n2", "n3", "n4")
FIX_GPU = {
    "name": "fix-gpu",
    "check": "gpu",
    "run": "systemctl restart nvidia-fabricmanager",
    "max_attempts": 2,
    "window_s": 3600,
    "cooldown_s": 600,
}
POWER = {"name": "power-cycle", "check": "ssh", "run": "ipmitool power cycle", "where": "control"}


def recovery(**overrides: Any) -> RecoverySettings:
    """Recovery settings as cluster.yaml would give them."""
    return RecoverySettings.model_validate(overrides)


def node(
    name: str,
    status: NodeStatus = NodeStatus.HEALTHY,
    *,
    fail_streak: int | None = None,
    pass_streak: int | None = None,
    observed: NodeStatus | None = None,
    failing: tuple[str, ...] = ("gpu",),
) -> NodeVerdict:
    """A shown verdict with its tracking: bad ones failed `failing`, twice by default."""
    bad = status in (NodeStatus.UNHEALTHY, NodeStatus.UNREACHABLE)
    observed = observed or status
    unreachable = status is NodeStatus.UNREACHABLE

    def result(check: str) -> CheckResult:
        if unreachable:
            if check == "ssh":
                return CheckResult("ssh", Status.FAIL, "connection refused on port 22")
            return CheckResult(check, Status.UNKNOWN, "not run: node unreachable")
        if bad and check in failing:
            return CheckResult(check, Status.FAIL, f"{check} is broken")
        return CheckResult(check, Status.OK, "fine")

    observed_bad = observed in (NodeStatus.UNHEALTHY, NodeStatus.UNREACHABLE)
    return NodeVerdict(
        name=name,
        address=f"{name}.example.org",
        status=status,
        health_score=0 if bad else 100,
        pass_rate=0.6 if bad else 1.0,
        last_check=NOW,
        checks=tuple(result(c) for c in ("ssh", "gpu", "torch", "disk", "latency")),
        tracking=Tracking(
            observed=observed,
            since=NOW,
            fail_streak=(2 if observed_bad else 0) if fail_streak is None else fail_streak,
            pass_streak=(0 if observed_bad else 5) if pass_streak is None else pass_streak,
            unreachable_streak=2 if observed is NodeStatus.UNREACHABLE else 0,
            next_check_at=NOW,
        ),
    )


def situation(
    shown: list[NodeVerdict],
    *,
    cordons: Sequence[Cordon] = (),
    remediation: dict[str, NodeRemediation] | None = None,
    nodes: tuple[str, ...] = NODES,
    swept: tuple[str, ...] | None = None,
    running: frozenset[tuple[str, str]] = frozenset(),
    **settings: Any,
) -> Situation:
    """What the daemon knows after a sweep of `shown` (all nodes swept unless told)."""
    return Situation(
        settings=recovery(**settings),
        fail_after=2,
        nodes=nodes,
        shown={v.name: v for v in shown},
        swept=frozenset(swept if swept is not None else [v.name for v in shown]),
        cordons={c.node: c for c in cordons},
        remediation=remediation or {},
        now=NOW,
        running=running,
    )


def by_ugro(name: str, *, escalated: bool = False) -> Cordon:
    """The daemon's cordon of `name`."""
    return Cordon(name, "ugro", "unhealthy: gpu: gpu is broken", NOW, escalated=escalated)


def by_person(name: str) -> Cordon:
    """A person's cordon of `name`."""
    return Cordon(name, "manual", "maintenance", NOW, user="alice")


def tried(*ages_s: float, dry_run: bool = False) -> tuple[Attempt, ...]:
    """Attempts made `ages_s` seconds ago."""
    return tuple(
        Attempt(NOW - timedelta(seconds=a), dry_run=dry_run, exit_status=1, done=True)
        for a in ages_s
    )


# --- cordons ---------------------------------------------------------------------------------


def test_nothing_to_do_for_healthy_nodes() -> None:
    """Healthy nodes, no cordons: an empty plan, auto_cordon or not."""
    shown = [node(n) for n in NODES]
    assert plan(situation(shown, auto_cordon=True)) == Plan()


def test_auto_cordon_is_opt_in() -> None:
    """A confirmed bad node is cordoned only with auto_cordon."""
    shown = [node("n1", NodeStatus.UNHEALTHY)]
    assert plan(situation(shown)).cordon == ()
    assert plan(situation(shown, auto_cordon=True)).cordon == (
        CordonOrder("n1", "unhealthy: gpu: gpu is broken"),
    )


@pytest.mark.parametrize(
    ("verdict", "why"),
    [
        (node("n1", NodeStatus.UNHEALTHY, fail_streak=1), "a first bad check is not confirmed"),
        (
            node("n1", NodeStatus.HEALTHY, observed=NodeStatus.UNHEALTHY, fail_streak=1),
            "awaiting confirmation",
        ),
        (
            node("n1", NodeStatus.UNHEALTHY, observed=NodeStatus.HEALTHY, pass_streak=1),
            "recovering",
        ),
        (node("n1", NodeStatus.DEGRADED), "degraded can still train"),
    ],
)
def test_only_confirmed_bad_nodes_are_cordoned(verdict: NodeVerdict, why: str) -> None:
    """Hysteresis must confirm a node bad before it is cordoned."""
    assert plan(situation([verdict], auto_cordon=True)).cordon == (), why


def test_cordon_reasons_name_what_failed() -> None:
    """The reason says unhealthy or unreachable, then what failed, in one bounded line."""
    gone = node("n1", NodeStatus.UNREACHABLE)
    assert cordon_reason(gone) == "unreachable: connection refused on port 22"
    sick = node("n2", NodeStatus.UNHEALTHY, failing=("gpu", "torch"))
    assert cordon_reason(sick) == "unhealthy: gpu: gpu is broken; torch: torch is broken"
    long = dataclasses.replace(sick, checks=(CheckResult("gpu", Status.FAIL, "x" * 1000),))
    assert len(cordon_reason(long)) <= 240


def test_recovered_ugro_cordon_is_lifted_after_recover_after() -> None:
    """A ugro cordon is lifted after recover_after passing checks in a row, not before."""
    cordons = [by_ugro("n1")]
    early = node("n1", pass_streak=2)
    assert plan(situation([early], cordons=cordons, auto_cordon=True)).uncordon == ()
    ready = node("n1", pass_streak=3)
    assert plan(situation([ready], cordons=cordons, auto_cordon=True)).uncordon == ("n1",)
    # Lifting does not depend on auto_cordon still being on.
    assert plan(situation([ready], cordons=cordons)).uncordon == ("n1",)
    assert plan(situation([node("n1", pass_streak=5)], cordons=cordons, recover_after=6)) == Plan()


def test_person_and_escalated_cordons_are_never_lifted() -> None:
    """Recovery never lifts a cordon a person placed, nor one remediation escalated."""
    cordons = [by_person("n1"), by_ugro("n2", escalated=True)]
    shown = [node("n1", pass_streak=50), node("n2", pass_streak=50)]
    assert plan(situation(shown, cordons=cordons, auto_cordon=True)).uncordon == ()


def test_an_already_cordoned_node_is_not_cordoned_again() -> None:
    """A bad node with any cordon in place gets no second one."""
    shown = [node("n1", NodeStatus.UNHEALTHY), node("n2", NodeStatus.UNREACHABLE)]
    cordons = [by_person("n1"), by_ugro("n2")]
    assert plan(situation(shown, cordons=cordons, auto_cordon=True)).cordon == ()


# --- the breaker -----------------------------------------------------------------------------


def test_breaker_allows_up_to_the_fraction() -> None:
    """Half of four nodes may be cordoned with the default 0.5."""
    shown = [node("n1", NodeStatus.UNHEALTHY), node("n2", NodeStatus.UNREACHABLE)]
    decided = plan(situation(shown, auto_cordon=True))
    assert [o.node for o in decided.cordon] == ["n1", "n2"]
    assert not decided.breaker_open


def test_breaker_holds_all_when_too_many_fail_at_once() -> None:
    """Three of four nodes down (a network blip?): none is cordoned, and the breaker opens."""
    shown = [node(n, NodeStatus.UNREACHABLE) for n in ("n1", "n2", "n3")]
    decided = plan(situation(shown, auto_cordon=True))
    assert decided.cordon == ()
    assert [o.node for o in decided.held] == ["n1", "n2", "n3"]
    assert decided.breaker_open


def test_breaker_counts_a_persons_cordons() -> None:
    """A person's cordon uses up the same budget: one cordoned plus two bad is too many."""
    shown = [node("n2", NodeStatus.UNHEALTHY), node("n3", NodeStatus.UNHEALTHY)]
    decided = plan(situation(shown, cordons=[by_person("n1")], auto_cordon=True))
    assert decided.cordon == ()
    assert [o.node for o in decided.held] == ["n2", "n3"]
    one_more = plan(situation(shown[:1], cordons=[by_person("n1")], auto_cordon=True))
    assert [o.node for o in one_more.cordon] == ["n2"]


def test_breaker_ignores_cordons_of_nodes_not_configured() -> None:
    """A cordon left on a node removed from the config does not count."""
    shown = [node("n1", NodeStatus.UNHEALTHY), node("n2", NodeStatus.UNHEALTHY)]
    decided = plan(situation(shown, cordons=[by_person("old")], auto_cordon=True))
    assert [o.node for o in decided.cordon] == ["n1", "n2"]


def test_breaker_at_zero_never_cordons() -> None:
    """max_cordoned_fraction 0 turns automatic cordons into alerts only."""
    decided = plan(
        situation([node("n1", NodeStatus.UNHEALTHY)], auto_cordon=True, max_cordoned_fraction=0)
    )
    assert decided.cordon == ()
    assert decided.breaker_open


statuses = st.sampled_from(list(NodeStatus))
#: A budget of remediation attempts spent: the next confirmed failure of the gpu check escalates.
SPENT = NodeRemediation({"fix-gpu": tried(700, 1400)})


@st.composite
def clusters(
    draw: st.DrawFn,
    /,
    planted: Sequence[tuple[NodeVerdict, Cordon | None]] = (),
    **fixed: Any,
) -> Situation:
    """Any cluster: some nodes bad, some cordoned by people or by ugro, any fraction.

    `planted` nodes (each with its cordon, if any) join the drawn ones, so a property that is
    about them always has them to judge; `fixed` settings override the drawn ones.
    """
    count = draw(st.integers(1, 12))
    names = [f"n{i}" for i in range(count)]
    shown = [
        node(
            name,
            draw(statuses),
            fail_streak=draw(st.integers(0, 4)),
            pass_streak=draw(st.integers(0, 4)),
        )
        for name in names
    ]
    cordons = []
    for name in names:
        kind = draw(st.sampled_from(["none", "none", "manual", "ugro", "escalated"]))
        if kind == "manual":
            cordons.append(by_person(name))
        elif kind != "none":
            cordons.append(by_ugro(name, escalated=kind == "escalated"))
    shown += [verdict for verdict, _ in planted]
    cordons += [cordon for _, cordon in planted if cordon is not None]
    settings_ = {
        "auto_cordon": draw(st.booleans()),
        "recover_after": draw(st.integers(1, 4)),
        "max_cordoned_fraction": draw(st.sampled_from([0.0, 0.1, 0.25, 1 / 3, 0.5, 0.75, 1.0])),
        **fixed,
    }
    return situation(shown, cordons=cordons, nodes=tuple(v.name for v in shown), **settings_)


@settings(max_examples=300, deadline=None)
@given(clusters([(node("due", NodeStatus.UNHEALTHY), None)], auto_cordon=True))
def test_breaker_never_lets_the_cordoned_fraction_exceed_the_max(s: Situation) -> None:
    """New cordons never push the cordoned share above max_cordoned_fraction; held ones would.

    Every example has a confirmed bad, uncordoned node ("due") that auto_cordon wants
    cordoned, so each one is either placed or held by the breaker, never neither.
    """
    decided = plan(s)
    new = [o.node for o in decided.cordon if o.node not in s.cordons]
    held = [o.node for o in decided.held]
    assert "due" in new + held
    assert not (new and held), "all or nothing"
    share = len(set(s.cordons) | set(new + held)) / len(s.nodes)
    if new:
        assert share <= s.settings.max_cordoned_fraction
    else:
        assert share > s.settings.max_cordoned_fraction
        assert decided.breaker_open


#: Three nodes recovered well past recover_after (at most 4 in `clusters`), each cordoned
#: differently: only ugro's own plain cordon may be lifted.
RECOVERED = [
    (node("back-ugro", pass_streak=5), by_ugro("back-ugro")),
    (node("back-person", pass_streak=5), by_person("back-person")),
    (node("back-escalated", pass_streak=5), by_ugro("back-escalated", escalated=True)),
]


@settings(max_examples=300, deadline=None)
@given(clusters(RECOVERED))
def test_only_plain_ugro_cordons_are_ever_lifted(s: Situation) -> None:
    """A person's cordon, or an escalated one, is never in the plan's uncordon list.

    Every example has a recovered node under each kind of cordon: ugro's plain one is lifted,
    so the property always has a lifted cordon to judge, and the others stay.
    """
    lifted = plan(s).uncordon
    assert "back-ugro" in lifted
    assert "back-person" not in lifted
    assert "back-escalated" not in lifted
    for name in lifted:
        assert s.cordons[name].by == "ugro"
        assert not s.cordons[name].escalated


#: Two confirmed bad nodes whose remediation is spent, one cordoned by ugro, one by a person:
#: escalation replaces ugro's cordon with an escalated one, and must leave the person's.
STUCK = [
    (node("stuck-ugro", NodeStatus.UNHEALTHY), by_ugro("stuck-ugro")),
    (node("stuck-person", NodeStatus.UNHEALTHY), by_person("stuck-person")),
]


@st.composite
def escalating_clusters(draw: st.DrawFn) -> Situation:
    """`clusters` with STUCK planted, real runs of FIX_GPU, and spent budgets here and there."""
    s = draw(clusters(STUCK, actions=[FIX_GPU], dry_run=False))
    spent = {name: SPENT for name in s.nodes if name.startswith("stuck-") or draw(st.booleans())}
    return dataclasses.replace(s, remediation=spent)


@settings(max_examples=300, deadline=None)
@given(escalating_clusters())
def test_a_persons_cordon_is_never_replaced(s: Situation) -> None:
    """No cordon order ever targets a node a person cordoned, not even an escalation's.

    Every example escalates a ugro-cordoned and a person-cordoned node: the first cordon is
    replaced by an escalated one, so there is always an order to judge; the second stays.
    """
    decided = plan(s)
    assert {name for name, _ in decided.escalate} >= {"stuck-ugro", "stuck-person"}
    orders = decided.cordon
    assert [o.escalated for o in orders if o.node == "stuck-ugro"] == [True]
    for order in orders:
        assert order.node not in s.cordons or s.cordons[order.node].by == "ugro"


# --- remediation -------------------------------------------------------------------------------


def test_dry_run_is_the_default_and_only_says_what_would_run() -> None:
    """By default an action is a dry run: ordered as such, never escalating."""
    sick = node("n1", NodeStatus.UNHEALTHY)
    decided = plan(situation([sick], actions=[FIX_GPU]))
    assert [(r.node, r.action.name, r.dry_run) for r in decided.run] == [("n1", "fix-gpu", True)]
    assert decided.run[0].why == "gpu: gpu is broken"
    # Many dry runs later, still no escalation: only real attempts count.
    many = {"n1": NodeRemediation({"fix-gpu": tried(700, 1400, 2100, dry_run=True)})}
    again = plan(situation([sick], remediation=many, actions=[FIX_GPU]))
    assert [r.dry_run for r in again.run] == [True]
    assert again.escalate == ()


def test_dry_runs_respect_the_cooldown() -> None:
    """A dry run counts against the cooldown, so the log is not flooded."""
    sick = node("n1", NodeStatus.UNHEALTHY)
    recent = {"n1": NodeRemediation({"fix-gpu": tried(60, dry_run=True)})}
    assert plan(situation([sick], remediation=recent, actions=[FIX_GPU])).run == ()


@pytest.mark.parametrize(
    ("ages_s", "runs", "escalates"),
    [
        ((), True, False),
        ((60,), False, False),  # within the cooldown
        ((700,), True, False),
        ((700, 1400), False, True),  # the budget of two is spent: escalate
        ((700, 4000), True, False),  # one of them fell out of the window
        ((4000, 8000), True, False),
    ],
)
def test_attempts_cooldown_and_window(
    ages_s: tuple[float, ...], runs: bool, escalates: bool
) -> None:
    """An action runs once per cooldown, max_attempts times per window; then it escalates."""
    sick = node("n1", NodeStatus.UNHEALTHY)
    remediation = {"n1": NodeRemediation({"fix-gpu": tried(*ages_s)})} if ages_s else {}
    decided = plan(situation([sick], remediation=remediation, dry_run=False, actions=[FIX_GPU]))
    assert [r.action.name for r in decided.run] == (["fix-gpu"] if runs else [])
    assert bool(decided.escalate) is escalates
    assert all(not r.dry_run for r in decided.run)


def test_escalation_cordons_the_node_for_a_person_to_lift() -> None:
    """Out of attempts: escalate, stop every action, and order an escalated cordon."""
    sick = node("n1", NodeStatus.UNHEALTHY, failing=("gpu", "torch"))
    fix_torch = {**FIX_GPU, "name": "fix-torch", "check": "torch"}
    remediation = {"n1": NodeRemediation({"fix-gpu": tried(700, 1400)})}
    decided = plan(
        situation([sick], remediation=remediation, dry_run=False, actions=[fix_torch, FIX_GPU])
    )
    assert decided.run == (), "escalation stops the other actions too"
    ((name, escalation),) = decided.escalate
    assert name == "n1"
    assert escalation.action == "fix-gpu"
    assert escalation.reason.startswith("remediation failed: fix-gpu ran 2 times in 1 h")
    assert escalation.cordoned
    assert decided.cordon == (CordonOrder("n1", escalation.reason, escalated=True),)


def test_escalation_replaces_ugros_cordon_but_not_a_persons() -> None:
    """An escalation turns ugro's own cordon into an escalated one; a person's stays."""
    sick = node("n1", NodeStatus.UNHEALTHY)
    remediation = {"n1": NodeRemediation({"fix-gpu": tried(700, 1400)})}
    for cordon, replaced in ((by_ugro("n1"), True), (by_person("n1"), False)):
        decided = plan(
            situation(
                [sick],
                cordons=[cordon],
                remediation=remediation,
                dry_run=False,
                actions=[FIX_GPU],
            )
        )
        assert [o.escalated for o in decided.cordon] == ([True] if replaced else [])
        assert decided.escalate[0][1].cordoned


def test_escalated_node_gets_no_more_actions() -> None:
    """Once escalated, a node is left alone until a person uncordons it."""
    sick = node("n1", NodeStatus.UNHEALTHY)
    escalated = Escalation(NOW, "fix-gpu", "remediation failed", cordoned=True)
    remediation = {"n1": NodeRemediation({}, escalated)}
    decided = plan(
        situation(
            [sick],
            cordons=[by_ugro("n1", escalated=True)],
            remediation=remediation,
            dry_run=False,
            actions=[FIX_GPU],
        )
    )
    assert decided == Plan()


def test_lifting_an_escalated_cordon_starts_afresh() -> None:
    """A person uncordoning an escalated node ends the escalation; actions may run again."""
    sick = node("n1", NodeStatus.UNHEALTHY)
    escalated = Escalation(NOW, "fix-gpu", "remediation failed", cordoned=True)
    remediation = {"n1": NodeRemediation({"fix-gpu": tried(700, 1400)}, escalated)}
    decided = plan(situation([sick], remediation=remediation, dry_run=False, actions=[FIX_GPU]))
    assert decided.reset == ("n1",)
    assert [r.action.name for r in decided.run] == ["fix-gpu"]


def test_held_escalation_cordon_is_placed_when_the_breaker_closes() -> None:
    """An escalated node the breaker kept uncordoned is cordoned once there is room."""
    escalated = Escalation(NOW, "fix-gpu", "remediation failed", cordoned=False)
    remediation = {"n1": NodeRemediation({}, escalated)}
    shown = [node("n1", NodeStatus.UNHEALTHY)]
    full = plan(
        situation(shown, cordons=[by_person("n2"), by_person("n3")], remediation=remediation)
    )
    assert full.held == (CordonOrder("n1", "remediation failed", escalated=True),)
    assert full.reset == ()
    room = plan(situation(shown, cordons=[by_person("n2")], remediation=remediation))
    assert room.cordon == (CordonOrder("n1", "remediation failed", escalated=True),)
    assert room.escalation_cordoned == ("n1",)


@pytest.mark.parametrize(
    ("verdict", "swept", "running", "why"),
    [
        (node("n1", NodeStatus.UNHEALTHY, failing=("torch",)), None, frozenset(), "gpu passes"),
        (node("n1", NodeStatus.UNHEALTHY), (), frozenset(), "not swept this time"),
        (
            node("n1", NodeStatus.UNHEALTHY),
            None,
            frozenset({("n1", "fix-gpu")}),
            "still running",
        ),
        (node("n1", NodeStatus.UNREACHABLE), None, frozenset(), "no session to run it in"),
        (node("n1", NodeStatus.UNHEALTHY, fail_streak=1), None, frozenset(), "not confirmed"),
    ],
)
def test_when_an_action_does_not_run(
    verdict: NodeVerdict,
    swept: tuple[str, ...] | None,
    running: frozenset[tuple[str, str]],
    why: str,
) -> None:
    """An action runs only for its failing check of a confirmed, swept, reachable node."""
    decided = plan(situation([verdict], swept=swept, running=running, actions=[FIX_GPU]))
    assert decided.run == (), why


def test_control_action_runs_for_an_unreachable_node() -> None:
    """A control-node action (a power cycle) is what an unreachable node can still get."""
    gone = node("n1", NodeStatus.UNREACHABLE)
    decided = plan(situation([gone], actions=[FIX_GPU, POWER]))
    assert [r.action.name for r in decided.run] == ["power-cycle"]


def test_prune_forgets_old_attempts_and_keeps_escalations() -> None:
    """Attempts outside their window and cooldown go; escalations and running ones stay."""
    settings_ = recovery(actions=[FIX_GPU])
    running = Attempt(NOW - timedelta(days=2), dry_run=False)
    records = {
        "n1": NodeRemediation({"fix-gpu": (*tried(7200), *tried(60))}),
        "n2": NodeRemediation({"fix-gpu": tried(7200)}),
        "n3": NodeRemediation({"gone": tried(5)}, Escalation(NOW, "gone", "x")),
        "n4": NodeRemediation({"fix-gpu": (running,)}),
    }
    assert prune(records, settings_, NOW) == {
        "n1": NodeRemediation({"fix-gpu": tried(60)}),
        "n3": NodeRemediation({}, Escalation(NOW, "gone", "x")),
        "n4": NodeRemediation({"fix-gpu": (running,)}),
    }


def test_records_round_trip_through_json() -> None:
    """What remediation.json keeps reads back equal."""
    record = NodeRemediation(
        {"fix-gpu": (*tried(10), Attempt(NOW, dry_run=True, done=True))},
        Escalation(NOW, "fix-gpu", "remediation failed", cordoned=True),
    )
    assert NodeRemediation.from_json(record.to_json()) == record


# --- alerts ------------------------------------------------------------------------------------


def test_external_alerts_fire_once_and_resolve_when_gone() -> None:
    """The breaker and escalation alerts fire once, survive node sweeps, resolve when cleared."""
    engine = AlertEngine(AlertSettings())
    breaker = ExternalCondition("cluster", "cordon_breaker", "critical", "breaker open")
    fired = engine.external([breaker], NOW)
    assert [(e.kind, e.node, e.key, e.severity) for e in fired] == [
        ("firing", "cluster", "cordon_breaker", "critical")
    ]
    assert engine.external([breaker], NOW + timedelta(seconds=1)) == []
    escalation = ExternalCondition("n1", "remediation_failed", "critical", "remediation failed")
    engine.external([breaker, escalation], NOW)
    # A sweep of n1 that finds it healthy leaves its remediation alert alone.
    later = NOW + timedelta(seconds=2)
    swept = engine.evaluate([node("n1")], [], 4, later)
    assert swept == []
    assert ("n1", "remediation_failed") in engine.book.firing
    resolved = engine.external([], later)
    assert sorted((e.kind, e.key) for e in resolved) == [
        ("resolved", "cordon_breaker"),
        ("resolved", "remediation_failed"),
    ]


# --- config ------------------------------------------------------------------------------------

BASE = "workers:\n  - {name: gpu1, ip: 10.0.0.1}\n"


def test_recovery_defaults_are_safe() -> None:
    """Without a recovery section: no automatic cordons, dry runs, no actions."""
    parsed = parse_text(BASE, "cluster.yaml").recovery
    assert parsed == RecoverySettings()
    assert (parsed.auto_cordon, parsed.dry_run, parsed.actions) == (False, True, [])
    assert (parsed.recover_after, parsed.max_cordoned_fraction) == (3, 0.5)


def test_recovery_section_loads() -> None:
    """The documented example loads, with each action's defaults filled in."""
    text = BASE + (
        "recovery:\n"
        "  auto_cordon: true\n"
        "  dry_run: false\n"
        "  actions:\n"
        "    - name: restart-fabricmanager\n"
        "      check: gpu\n"
        '      run: "sudo systemctl restart nvidia-fabricmanager"\n'
    )
    action = parse_text(text, "cluster.yaml").recovery.actions[0]
    assert (action.where, action.max_attempts, action.window_s) == ("node", 3, 3600)
    assert (action.cooldown_s, action.timeout_s) == (600, 60)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("  auto_cordn: true\n", "cluster.yaml:4: recovery.auto_cordn: unknown key; did you mean"),
        (
            "  actions:\n    - {name: a, check: gpu, run: x, wher: node}\n",
            "cluster.yaml:5: recovery.actions[0].wher: unknown key; did you mean 'where'?",
        ),
        ("  actions:\n    - {name: a, check: gpus, run: x}\n", "recovery.actions[0].check"),
        ("  actions:\n    - {name: a, check: ssh, run: x}\n", "use `where: control`"),
        (
            (
                "  actions:\n    - {name: a, check: gpu, run: x}\n"
                "    - {name: a, check: disk, run: y}\n"
            ),
            "action names must be unique",
        ),
        ("  max_cordoned_fraction: 1.5\n", "recovery.max_cordoned_fraction"),
        ("  dry_run: no\n  recover_after: 0\n", "recovery.recover_after"),
        ("  actions:\n    - {name: a, check: gpu, run: ''}\n", "recovery.actions[0].run"),
    ],
)
def test_recovery_mistakes_are_reported_by_line(section: str, message: str) -> None:
    """Mistakes in the recovery section name the line, the field and what was expected."""
    with pytest.raises(ConfigError) as caught:
        parse_text(BASE + "recovery:\n" + section, "cluster.yaml")
    assert message in str(caught.value)


def test_the_templates_recovery_example_validates() -> None:
    """Uncommented, the recovery section of `ugro init`'s template is valid as written."""
    template = files("ugro").joinpath("data/cluster.yaml").read_text(encoding="utf-8")
    lines = template.splitlines()
    start = lines.index("# recovery:")
    block = []
    for line in lines[start:]:
        if not line.startswith("#"):
            break
        block.append(line.removeprefix("# "))
    parsed = parse_text(BASE + "\n".join(block) + "\n", "cluster.yaml").recovery
    assert [a.name for a in parsed.actions] == ["restart-fabricmanager"]
    assert parsed == RecoverySettings.model_validate(
        {"actions": [{**parsed.actions[0].model_dump()}]}
    )


# --- history events ----------------------------------------------------------------------------


def test_events_are_kept_queried_by_node_and_pruned(tmp_path: Path) -> None:
    """Events read back in order, a node's with the cluster's, and go with the retention."""
    old, new = NOW - timedelta(days=40), NOW - timedelta(minutes=5)
    with opened(tmp_path / "history.db") as history:
        history.record_events(
            [
                Event(old, "n1", "cordon", {"reason": "old"}),
                Event(new, "n1", "cordon", {"reason": "gpu: broken", "by": "ugro"}),
                Event(new, "cluster", "breaker", {"state": "open", "held": ["n2", "n3"]}),
                Event(new + timedelta(seconds=1), "n2", "remediation", {"action": "fix"}),
            ]
        )
        since = NOW - timedelta(days=60)
        assert [(e.node, e.kind) for e in history.events("n1", since)] == [
            ("n1", "cordon"),
            ("n1", "cordon"),
            ("cluster", "breaker"),
        ]
        assert len(history.events(None, since)) == 4
        assert history.events("n1", since)[1].detail == {"reason": "gpu: broken", "by": "ugro"}
        assert "cluster" not in history.nodes(), "the cluster is not a node of the summaries"
        history.prune(NOW - timedelta(days=30))
        assert [e.detail.get("reason") for e in history.events("n1", since)] == [
            "gpu: broken",
            None,
        ]


def test_reload_follows_the_configured_scheduler(tmp_path: Path, isolated_home: Path) -> None:
    """SIGHUP's reload rebuilds the scheduler from the new config (none → slurm)."""
    del isolated_home
    path = tmp_path / "cluster.yaml"
    path.write_text("workers:\n  - name: gpu1\n    ip: 192.168.1.10\n", encoding="utf-8")
    monitor = Daemon(path, config.load(path))
    assert monitor.settler.recoverer.scheduler.name == "none"
    path.write_text(
        "scheduler: slurm\nworkers:\n  - name: gpu1\n    ip: 192.168.1.10\n", encoding="utf-8"
    )

    async def reload() -> None:
        try:
            await monitor._reload()  # noqa: SLF001 - what SIGHUP runs
        finally:
            await monitor.transports.close()
            if monitor.settler.history is not None:
                monitor.settler.history.close()

    asyncio.run(reload())
    assert monitor.settler.recoverer.scheduler.name == "slurm"
