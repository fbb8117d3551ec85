"""Pure recovery decisions: from verdicts, cordons and past attempts, what to do now.

Nothing here touches a file, a node or the scheduler: `plan` takes what the daemon knows
after a sweep and returns a `Plan` (cordon these, lift those, run these actions, escalate
these nodes, hold these cordons back), which `ugro.recovery.recoverer` carries out. The rules
(README, "Cordons and remediation"):

- a node is *confirmed* bad when its shown status (after hysteresis) is unhealthy or
  unreachable and it failed at least `fail_after` checks in a row;
- with `auto_cordon`, a confirmed bad node is cordoned (`by="ugro"`); a ugro cordon that is
  not escalated is lifted after `recover_after` passing checks in a row; a person's cordon
  is never lifted, and neither is an escalated one;
- the breaker: new automatic cordons are placed only when, with them, no more than
  `max_cordoned_fraction` of the configured nodes are cordoned (a person's cordons count
  too); otherwise none of them is placed and the breaker is open. All or nothing: when many
  nodes fail at once, the network is the likelier culprit, and which of them would be
  cordoned first is an accident of timing;
- an action runs for a failing check of a confirmed bad node, at most once per
  `cooldown_s` and `max_attempts` times per `window_s`; a dry run only counts against the
  cooldown. When a real attempt is due again but the budget is spent, the node is
  escalated: no more actions, a cordon that only a person lifts, a critical alert. A person
  lifting that cordon ends the escalation and clears the node's attempts.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ugro.model import BAD_STATUSES, GOOD_STATUSES, NodeStatus, parse_utc

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from ugro.config import RecoveryAction, RecoverySettings
    from ugro.model import NodeVerdict
    from ugro.store.cordons import Cordon

# Cordon reasons end up in Slurm's Reason= and in one-line messages: keep them short.
REASON_CHARS = 240


@dataclass(frozen=True, slots=True)
class Attempt:
    """One run (or dry run) of an action on a node."""

    at: datetime
    dry_run: bool
    # None while it runs, or when it timed out or could not start.
    exit_status: int | None = None
    done: bool = False

    def to_json(self) -> dict[str, Any]:
        """The attempt in the remediation file."""
        return {
            "at": self.at.isoformat(),
            "dry_run": self.dry_run,
            "exit_status": self.exit_status,
            "done": self.done,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Attempt:
        """Inverse of `to_json`."""
        return cls(
            at=parse_utc(data["at"]),
            dry_run=bool(data["dry_run"]),
            exit_status=data.get("exit_status"),
            done=bool(data.get("done", True)),
        )


@dataclass(frozen=True, slots=True)
class Escalation:
    """Remediation gave up on a node: which action ran out, when, and whether it is cordoned."""

    at: datetime
    action: str
    reason: str
    # Whether a cordon was in place after escalating (one that only a person lifts).
    cordoned: bool = False

    def to_json(self) -> dict[str, Any]:
        """The escalation in the remediation file."""
        return {
            "at": self.at.isoformat(),
            "action": self.action,
            "reason": self.reason,
            "cordoned": self.cordoned,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Escalation:
        """Inverse of `to_json`."""
        return cls(
            at=parse_utc(data["at"]),
            action=str(data["action"]),
            reason=str(data["reason"]),
            cordoned=bool(data["cordoned"]),
        )


@dataclass(frozen=True, slots=True)
class NodeRemediation:
    """What remediation did to one node: attempts per action, and its escalation."""

    attempts: Mapping[str, tuple[Attempt, ...]] = field(default_factory=dict)
    escalated: Escalation | None = None

    def to_json(self) -> dict[str, Any]:
        """The node's entry in the remediation file."""
        return {
            "attempts": {n: [a.to_json() for a in tries] for n, tries in self.attempts.items()},
            "escalated": self.escalated.to_json() if self.escalated else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NodeRemediation:
        """Inverse of `to_json`."""
        escalated = data.get("escalated")
        return cls(
            attempts={
                str(name): tuple(Attempt.from_json(a) for a in tries)
                for name, tries in data["attempts"].items()
            },
            escalated=Escalation.from_json(escalated) if escalated else None,
        )


@dataclass(frozen=True, slots=True)
class CordonOrder:
    """Cordon `node` (by ugro) for `reason`; `escalated` ones are never lifted automatically."""

    node: str
    reason: str
    escalated: bool = False


@dataclass(frozen=True, slots=True)
class RunOrder:
    """Run `action` for `node` now (or, in a dry run, say that it would)."""

    node: str
    action: RecoveryAction
    dry_run: bool
    # The failing check's message, for the log and the history.
    why: str


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do after one sweep."""

    cordon: tuple[CordonOrder, ...] = ()
    uncordon: tuple[str, ...] = ()
    run: tuple[RunOrder, ...] = ()
    escalate: tuple[tuple[str, Escalation], ...] = ()
    # Nodes whose escalation ended because a person lifted its cordon.
    reset: tuple[str, ...] = ()
    # Escalated nodes that now have a cordon (placed by this plan or by a person).
    escalation_cordoned: tuple[str, ...] = ()
    # Cordons the breaker held back; non-empty means the breaker is open.
    held: tuple[CordonOrder, ...] = ()

    @property
    def breaker_open(self) -> bool:
        """Whether automatic cordons are held back this sweep."""
        return bool(self.held)


@dataclass(frozen=True)
class Situation:
    """What the daemon knows after a sweep: the input of `plan`."""

    settings: RecoverySettings
    fail_after: int
    nodes: Sequence[str]
    shown: Mapping[str, NodeVerdict]
    swept: frozenset[str]
    cordons: Mapping[str, Cordon]
    remediation: Mapping[str, NodeRemediation]
    now: datetime
    # (node, action) pairs whose command is still running.
    running: frozenset[tuple[str, str]] = frozenset()


def confirmed_bad(verdict: NodeVerdict, fail_after: int) -> bool:
    """Whether hysteresis confirmed the node bad: shown bad after `fail_after` bad checks."""
    tracking = verdict.tracking
    return (
        verdict.status in BAD_STATUSES
        and tracking is not None
        and tracking.observed in BAD_STATUSES
        and tracking.fail_streak >= fail_after
    )


def recovered(verdict: NodeVerdict, recover_after: int) -> bool:
    """Whether the node is shown good after `recover_after` passing checks in a row."""
    tracking = verdict.tracking
    return (
        verdict.status in GOOD_STATUSES
        and tracking is not None
        and tracking.pass_streak >= recover_after
    )


def cordon_reason(verdict: NodeVerdict) -> str:
    """Why ugro cordons a bad node: its status and every failing check's message."""
    if verdict.status is NodeStatus.UNREACHABLE:
        ssh = next((c.message for c in verdict.checks if c.name == "ssh"), "no session")
        return _short(f"unreachable: {ssh}")
    failing = "; ".join(f"{c.name}: {c.message}" for c in verdict.failing())
    return _short(f"{verdict.status.value}: {failing or 'checks fail'}")


@dataclass
class _Decisions:
    """What `plan` has decided so far, node by node."""

    uncordon: list[str] = field(default_factory=list)
    wanted: list[CordonOrder] = field(default_factory=list)
    replacing: list[CordonOrder] = field(default_factory=list)
    runs: list[RunOrder] = field(default_factory=list)
    escalations: list[tuple[str, Escalation]] = field(default_factory=list)
    escalation_cordoned: list[str] = field(default_factory=list)


def plan(situation: Situation) -> Plan:
    """Decide what to do after a sweep (module docstring)."""
    s = situation
    configured = sorted(set(s.nodes))
    reset = tuple(
        sorted(
            node
            for node, rem in s.remediation.items()
            if rem.escalated is not None and rem.escalated.cordoned and node not in s.cordons
        )
    )
    remediation = {n: r for n, r in s.remediation.items() if n not in reset}
    d = _Decisions()
    for node in configured:
        _decide(s, node, remediation.get(node, NodeRemediation()), d)

    cordoned_now = sum(1 for n in s.cordons if n in configured)
    total = len(configured)
    limit = s.settings.max_cordoned_fraction
    fits = not d.wanted or (cordoned_now + len(d.wanted)) / total <= limit
    placed = tuple(d.wanted) if fits else ()
    placed_nodes = {o.node for o in (*placed, *d.replacing)}
    escalate = tuple(
        (node, replace(e, cordoned=node in placed_nodes or node in s.cordons))
        for node, e in d.escalations
    )
    pending = [n for n, r in remediation.items() if r.escalated is not None]
    d.escalation_cordoned += [o.node for o in placed if o.escalated and o.node in pending]
    return Plan(
        cordon=(*placed, *d.replacing),
        uncordon=tuple(d.uncordon),
        run=tuple(d.runs),
        escalate=escalate,
        reset=reset,
        escalation_cordoned=tuple(sorted(d.escalation_cordoned)),
        held=() if fits else tuple(d.wanted),
    )


def _decide(s: Situation, node: str, rem: NodeRemediation, d: _Decisions) -> None:
    """One node's part of the plan; the breaker is applied afterwards, to all at once."""
    verdict = s.shown.get(node)
    cordon = s.cordons.get(node)
    if rem.escalated is not None:
        if cordon is None:
            d.wanted.append(CordonOrder(node, rem.escalated.reason, escalated=True))
        elif not rem.escalated.cordoned:
            d.escalation_cordoned.append(node)
        return
    if verdict is None:
        return
    if cordon is not None and cordon.lifts_itself and recovered(verdict, s.settings.recover_after):
        d.uncordon.append(node)
        return
    if not confirmed_bad(verdict, s.fail_after):
        return
    if s.settings.auto_cordon and cordon is None:
        d.wanted.append(CordonOrder(node, cordon_reason(verdict)))
    if node in s.swept:
        _escalate(node, cordon, _remediate(s, node, verdict, rem, d.runs), d)


def _escalate(node: str, cordon: Cordon | None, ran_out: Escalation | None, d: _Decisions) -> None:
    """Order the escalated cordon of a node whose remediation ran out, if it did."""
    if ran_out is None:
        return
    d.escalations.append((node, ran_out))
    order = CordonOrder(node, ran_out.reason, escalated=True)
    # An escalation supersedes the node's own automatic cordon, wanted or placed.
    d.wanted = [w for w in d.wanted if w.node != node]
    if cordon is None:
        d.wanted.append(order)
    elif cordon.by == "ugro":
        d.replacing.append(order)


def _remediate(
    s: Situation, node: str, verdict: NodeVerdict, rem: NodeRemediation, runs: list[RunOrder]
) -> Escalation | None:
    """Add the actions due for `node` to `runs`; the escalation when one ran out of attempts."""
    failing = {c.name: c.message for c in verdict.checks if not c.status.passed}
    unreachable = verdict.status is NodeStatus.UNREACHABLE
    for action in s.settings.actions:
        if action.check not in failing or (node, action.name) in s.running:
            continue
        if action.where == "node" and unreachable:
            continue
        tries = rem.attempts.get(action.name, ())
        if tries and s.now - max(a.at for a in tries) < timedelta(seconds=action.cooldown_s):
            continue
        why = f"{action.check}: {failing[action.check]}"
        if s.settings.dry_run:
            runs.append(RunOrder(node, action, dry_run=True, why=why))
            continue
        window = timedelta(seconds=action.window_s)
        real = [a for a in tries if not a.dry_run and s.now - a.at < window]
        if len(real) < action.max_attempts:
            runs.append(RunOrder(node, action, dry_run=False, why=why))
            continue
        # Anything already ordered for this node stands down: escalation stops all action.
        runs[:] = [r for r in runs if r.node != node]
        return Escalation(
            at=s.now,
            action=action.name,
            reason=_short(
                f"remediation failed: {action.name} ran {len(real)} times in "
                f"{_span(action.window_s)} and {why}"
            ),
        )
    return None


def prune(
    remediation: Mapping[str, NodeRemediation], settings: RecoverySettings, now: datetime
) -> dict[str, NodeRemediation]:
    """Forget attempts older than their action's window and cooldown; keep escalations."""
    keep_s = {a.name: max(a.window_s, a.cooldown_s) for a in settings.actions}
    out = {}
    for node, rem in remediation.items():
        attempts = {}
        for name, tries in rem.attempts.items():
            horizon = timedelta(seconds=keep_s.get(name, 0))
            recent = tuple(a for a in tries if now - a.at < horizon or not a.done)
            if recent:
                attempts[name] = recent
        if attempts or rem.escalated is not None:
            out[node] = NodeRemediation(attempts, rem.escalated)
    return out


def _span(seconds: float) -> str:
    if seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 1] + "…"
