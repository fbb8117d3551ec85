"""Alerts: what is wrong, raised from verdicts after hysteresis, once per problem.

`AlertEngine.evaluate` is pure bookkeeping: verdicts in, events out. An alert is keyed by
(node, key); it fires once, reminds every `repeat_interval_s` while it lasts and resolves
once. A node that changes status `flap_changes` times within `flap_window_s` gets one
`flapping` alert instead of a stream, as severe as the worst alert it holds back, until it
has gone `flap_settle_s` without a change; when `group_fraction` of the nodes go bad in one sweep,
one cluster alert stands for all of them. What it remembers between sweeps, and the
events it raises, are the records of `ugro.alerts.book`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING

from ugro.alerts.book import (
    DOWN_KEYS,
    EXTERNAL_KEYS,
    GROUP_KEY,
    SEVERITY_RANK,
    ActiveAlert,
    AlertBook,
    AlertEvent,
    ExternalCondition,
    Severity,
)
from ugro.model import CLUSTER, NodeStatus, Status, by_message

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from ugro.config import AlertSettings
    from ugro.model import NodeVerdict
    from ugro.store.history_records import Transition


_HELD = "its status keeps changing; its other alerts are held until it settles"


@dataclass(frozen=True, slots=True)
class _Condition:
    severity: Severity
    summary: str
    details: tuple[str, ...]
    check: str | None = None
    # A node's alert: the checks that are not ok.
    checks: tuple[str, ...] = ()


# The order of an unhealthy node's details: what failed, what could not be judged, warnings.
_DETAIL_ORDER = {Status.FAIL: 0, Status.UNKNOWN: 1, Status.WARN: 2, Status.OK: 3}


def _unhealthy(verdict: NodeVerdict) -> str:
    """'unhealthy: 3 of 12 checks fail, 6 unknown': a check not judged is not a failure."""
    total = len(verdict.checks)
    failed = sum(1 for c in verdict.checks if c.status is Status.FAIL)
    unknown = sum(1 for c in verdict.checks if c.status is Status.UNKNOWN)
    if not failed:
        return f"unhealthy: {unknown} of {total} checks unknown"
    return f"unhealthy: {failed} of {total} checks fail" + (
        f", {unknown} unknown" if unknown else ""
    )


def _group_summary(went: int, found: int, node_count: int) -> str:
    """The cluster alert's headline: nodes that went down now, and those down when first seen."""
    if not found:
        return f"{went} of {node_count} nodes went down at once"
    already = "already down when the monitor first checked them"
    if not went:
        return f"{found} of {node_count} nodes are down ({already})"
    return (
        f"{went + found} of {node_count} nodes are down: {went} went down at once, "
        f"{found} {already}"
    )


class AlertEngine:
    """Turns each sweep's verdicts into alert events, remembering what was already said."""

    def __init__(self, settings: AlertSettings, book: AlertBook | None = None) -> None:
        """Raise alerts per `settings`, continuing from `book` (e.g. from the state file)."""
        self.settings = settings
        self.book = book or AlertBook()

    def after_sweep(
        self,
        verdicts: Sequence[NodeVerdict],
        changes: Sequence[Transition],
        conditions: Sequence[ExternalCondition] | None,
        node_count: int,
        now: datetime,
    ) -> list[AlertEvent]:
        """One sweep's events: `external` for `conditions`, then `evaluate` for `verdicts`.

        None for `conditions` leaves their alerts as they were. A node's first status (from
        unknown) is no change of status: it does not count towards flapping.
        """
        moved = [c.node for c in changes if c.before != NodeStatus.UNKNOWN.value]
        events = self.external(conditions, now) if conditions is not None else []
        return events + self.evaluate(verdicts, moved, node_count, now)

    def evaluate(
        self,
        verdicts: Sequence[NodeVerdict],
        changed: Sequence[str],
        node_count: int,
        now: datetime,
    ) -> list[AlertEvent]:
        """Events for one sweep: `verdicts` of the nodes swept, `changed` their status moves."""
        events: list[AlertEvent] = []
        for node in changed:
            self.book.changes.setdefault(node, []).append(now)
        self._forget_old_changes(now)
        events += self._flapping(now)
        went_down: list[str] = []
        found_down: list[str] = []
        moved = set(changed)
        for verdict in verdicts:
            conditions = self._conditions(verdict)
            if conditions is None:
                continue
            if any(k in conditions for k in DOWN_KEYS) and not any(
                (verdict.name, k) in self.book.firing for k in DOWN_KEYS
            ):
                # Only a node whose status moved in this sweep went down in it; one shown
                # down from its first check (as on a monitor's first sweep) already was.
                (went_down if verdict.name in moved else found_down).append(verdict.name)
            events += self._reconcile(verdict.name, conditions, now)
        grouped = self._group(went_down, found_down, node_count, now)
        if grouped:
            held = {*went_down, *found_down}
            events = [e for e in events if not (e.kind == "firing" and e.node in held)]
        events += grouped
        events += self._flap_severity(now)
        events += self._announce_released(now)
        events += self._reminders(now)
        self._forget_old_resolved(now)
        return events

    def _conditions(self, verdict: NodeVerdict) -> dict[str, _Condition] | None:
        """What is wrong with a node now; None while its status awaits confirmation."""
        tracking = verdict.tracking
        if tracking is not None and tracking.observed is not verdict.status:
            return None
        found: dict[str, _Condition] = {}
        if verdict.status is NodeStatus.UNREACHABLE:
            ssh = next((c.message for c in verdict.checks if c.name == "ssh"), "no session")
            found["unreachable"] = _Condition("critical", "unreachable", (ssh,))
            return found
        # The node's alert is the one message a person gets for the episode (chat, webhooks,
        # commands): it names every check that is not ok. The checks' own alerts below are
        # for Alertmanager's routing and the history (`sinks.accepts`).
        not_ok = [c for c in verdict.checks if c.status is not Status.OK]
        checks = tuple(c.name for c in not_ok)
        if verdict.status is NodeStatus.UNHEALTHY:
            # Failures first: the first detail is what a grouped alert quotes for the node.
            reasons = tuple(
                f"{c.name}: {c.message}"
                if c.status is Status.FAIL
                else f"{c.name} ({c.status.label}): {c.message}"
                for c in sorted(not_ok, key=lambda c: _DETAIL_ORDER[c.status])
            )
            found["unhealthy"] = _Condition("critical", _unhealthy(verdict), reasons, checks=checks)
        elif verdict.status is NodeStatus.DEGRADED:
            found["degraded"] = _Condition(
                "warning", "degraded", tuple(a.text for a in verdict.alerts), checks=checks
            )
        # Checks that say the same thing are one alert, keyed by the first of them.
        for (status, message), names in by_message(verdict.checks, lambda c: c.status).items():
            severity: Severity = "critical" if status is Status.FAIL else "warning"
            which = f"{', '.join(names)} check{'s' if len(names) > 1 else ''}"
            found[f"check:{names[0]}"] = _Condition(
                severity, f"{which} {status.label}", (message,), check=names[0]
            )
        return found

    def _reconcile(
        self, node: str, conditions: dict[str, _Condition], now: datetime
    ) -> list[AlertEvent]:
        """Fire new conditions, re-fire escalations, resolve what cleared."""
        events = []
        quiet = (node, "flapping") in self.book.firing
        for key, cond in conditions.items():
            current = self.book.firing.get((node, key))
            if current is None:
                alert = ActiveAlert(
                    node,
                    key,
                    cond.severity,
                    cond.summary,
                    cond.details,
                    now,
                    now,
                    cond.check,
                    grouped=quiet,
                    announced=not quiet,
                    checks=cond.checks,
                )
                self.book.firing[(node, key)] = alert
                if not quiet:
                    events.append(alert.event("firing", self.settings.cluster))
                continue
            escalated = SEVERITY_RANK[cond.severity] > SEVERITY_RANK[current.severity]
            updated = self.book.replace_alert(
                current,
                severity=cond.severity,
                summary=cond.summary,
                details=cond.details,
                checks=cond.checks,
                last_sent_at=now if escalated and not current.grouped else current.last_sent_at,
                # Worse than what its sinks were told, while held: they hear it on release.
                escalated=current.escalated
                or (escalated and current.grouped and current.announced),
            )
            if escalated and not updated.grouped:
                events.append(updated.event("firing", self.settings.cluster))
        for (alert_node, key), alert in list(self.book.firing.items()):
            if (
                alert_node == node
                and key not in conditions
                and key != "flapping"
                and key not in EXTERNAL_KEYS
            ):
                events += self._resolve(alert, now)
        return events

    def external(self, conditions: Sequence[ExternalCondition], now: datetime) -> list[AlertEvent]:
        """Fire, update and resolve the alerts of EXTERNAL_KEYS: `conditions` is all of them now."""
        events: list[AlertEvent] = []
        wanted = {(c.node, c.key): c for c in conditions}
        for (node, key), cond in wanted.items():
            current = self.book.firing.get((node, key))
            if current is None:
                alert = ActiveAlert(
                    node, key, cond.severity, cond.summary, cond.details, now, now, announced=True
                )
                self.book.firing[(node, key)] = alert
                events.append(alert.event("firing", self.settings.cluster))
            else:
                self.book.replace_alert(current, summary=cond.summary, details=cond.details)
        for (node, key), alert in list(self.book.firing.items()):
            if key in EXTERNAL_KEYS and (node, key) not in wanted:
                events += self._resolve(alert, now)
        return events

    def _resolve(self, alert: ActiveAlert, now: datetime) -> list[AlertEvent]:
        del self.book.firing[(alert.node, alert.key)]
        done = replace(alert, resolved_at=now)
        self.book.resolved.append(done)
        return [] if alert.grouped else [done.event("resolved", self.settings.cluster)]

    def _group(
        self, went_down: list[str], found_down: list[str], node_count: int, now: datetime
    ) -> list[AlertEvent]:
        """Many nodes down in one sweep: one cluster alert; their own alerts are held.

        `went_down` moved to down in this sweep; `found_down` were down when first seen
        (a monitor's first sweep): the summary tells them apart.
        """
        events: list[AlertEvent] = []
        down = [*went_down, *found_down]
        if len(down) >= 2 and len(down) >= self.settings.group_fraction * node_count:
            details = []
            for (node, key), alert in list(self.book.firing.items()):
                if node in down and alert.started_at == now:
                    # Its firing is withdrawn from this sweep's events: never announced.
                    self.book.replace_alert(alert, grouped=True, announced=False)
                    if key in DOWN_KEYS:
                        details.append(f"{node}: {alert.details[0] if alert.details else key}")
            before = self.book.firing.get((CLUSTER, GROUP_KEY))
            if before is not None:
                # One group at a time: a second wave joins it, or the first would never resolve.
                still = set(self._down_members(before))
                details += [d for d in before.details if d.split(":", 1)[0] in still]
            alert = ActiveAlert(
                CLUSTER,
                GROUP_KEY,
                "critical",
                _group_summary(len(went_down), len(found_down), node_count),
                tuple(sorted(details)),
                before.started_at if before else now,
                now,
            )
            self.book.firing[(CLUSTER, GROUP_KEY)] = alert
            events.append(alert.event("firing", self.settings.cluster))
        group = self.book.firing.get((CLUSTER, GROUP_KEY))
        if group is not None and not self._down_members(group):
            events += self._resolve(group, now)
        return events

    def _down_members(self, group: ActiveAlert) -> list[str]:
        members = {line.split(":", 1)[0] for line in group.details}
        return [n for n in members if any((n, k) in self.book.firing for k in DOWN_KEYS)]

    def _flapping(self, now: datetime) -> list[AlertEvent]:
        """One alert per flapping node instead of a stream; it resolves once the node settles."""
        events = []
        settle = timedelta(seconds=self.settings.flap_settle_s)
        flapping = {node for node, key in self.book.firing if key == "flapping"}
        for node in sorted(set(self.book.changes) | flapping):
            times = self.book.changes.get(node, [])
            key = (node, "flapping")
            if key in self.book.firing:
                if not times or now - times[-1] >= settle:
                    # Settled: its count starts afresh, or its old changes would re-trigger it.
                    self.book.changes.pop(node, None)
                    events += self._resolve(self.book.firing[key], now)
            elif len(times) >= self.settings.flap_changes:
                window = self.settings.flap_window_s
                self.book.firing[key] = ActiveAlert(
                    node,
                    "flapping",
                    "warning",
                    f"flapping: {len(times)} status changes in {window / 60:g} min",
                    (_HELD,),
                    now,
                    now,
                    announced=True,
                )
                for (n, k), other in list(self.book.firing.items()):
                    if n == node and k != "flapping":
                        self.book.replace_alert(other, grouped=True)
                events.append(self.book.firing[key].event("firing", self.settings.cluster))
        return events

    def _flap_severity(self, now: datetime) -> list[AlertEvent]:
        """A flapping alert takes the worst severity it holds back, and fires again when it rises.

        It never falls back while the node flaps: a critical that came and went in the hold
        was paged through it, and it stays paged until the node settles.
        """
        events = []
        for (node, key), alert in list(self.book.firing.items()):
            if key != "flapping":
                continue
            held = [a for (n, k), a in self.book.firing.items() if n == node and k != key]
            worst = max((a.severity for a in held), key=SEVERITY_RANK.__getitem__, default=None)
            details = (_HELD, *(f"held: {a.severity} {a.summary}" for a in held))
            if worst is not None and SEVERITY_RANK[worst] > SEVERITY_RANK[alert.severity]:
                raised = self.book.replace_alert(
                    alert, severity=worst, details=details, last_sent_at=now
                )
                events.append(raised.event("firing", self.settings.cluster))
            else:
                self.book.replace_alert(alert, details=details)
        return events

    def _announce_released(self, now: datetime) -> list[AlertEvent]:
        """When a hold ends: announce what still fires, and resolve what was announced."""
        group = self.book.firing.get((CLUSTER, GROUP_KEY))
        held = set(self._down_members(group)) if group else set()

        def released(node: str) -> bool:
            return node not in held and (node, "flapping") not in self.book.firing

        events = []
        for i, done in enumerate(self.book.resolved):
            if done.grouped and done.announced and released(done.node):
                self.book.resolved[i] = replace(done, grouped=False)
                events.append(done.event("resolved", self.settings.cluster))
        for (node, _), alert in list(self.book.firing.items()):
            if alert.grouped and released(node):
                self.book.replace_alert(
                    alert, grouped=False, announced=True, escalated=False, last_sent_at=now
                )
                if not alert.announced or alert.escalated:
                    events.append(alert.event("firing", self.settings.cluster))
        return events

    def _reminders(self, now: datetime) -> list[AlertEvent]:
        events = []
        every = timedelta(seconds=self.settings.repeat_interval_s)
        for alert in list(self.book.firing.values()):
            if not alert.grouped and now - alert.last_sent_at >= every:
                self.book.replace_alert(alert, last_sent_at=now)
                events.append(alert.event("reminder", self.settings.cluster))
        return events

    def _forget_old_changes(self, now: datetime) -> None:
        window = timedelta(seconds=self.settings.flap_window_s)
        for node in list(self.book.changes):
            recent = [t for t in self.book.changes[node] if now - t < window]
            if recent:
                self.book.changes[node] = recent
            else:
                del self.book.changes[node]

    def _forget_old_resolved(self, now: datetime) -> None:
        keep = timedelta(seconds=self.settings.keep_resolved_s)
        # A resolution still owed (announced, held) stays until it is sent, however short `keep`.
        self.book.resolved = [
            a
            for a in self.book.resolved
            if (a.grouped and a.announced) or (a.resolved_at and now - a.resolved_at < keep)
        ]

    def firing_events(self) -> list[AlertEvent]:
        """Every announced firing alert, as Alertmanager wants them re-sent."""
        return [
            a.event("firing", self.settings.cluster)
            for a in self.book.firing.values()
            if not a.grouped
        ]
