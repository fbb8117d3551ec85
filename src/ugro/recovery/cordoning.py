"""Placing and lifting cordons, and telling the scheduler: for the daemon and for `ugro cordon`.

Both write the cordons file the same way (`place`) and tell the scheduler the same way
(`tell`). A person's command waits for the scheduler and reports its answer with the cordon
(`cordon_by_hand`, `uncordon_by_hand`). The daemon's `Cordoner` tells the scheduler in the
background instead: a hung scontrol costs its own timeout, never the sweeps. What the
scheduler refused, the daemon tries again `SCHEDULER_RETRY_S` later, with an alert
meanwhile: a drain Slurm never got would leave jobs landing on a cordoned node.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from ugro.alerts.book import SCHEDULER_KEY, ExternalCondition
from ugro.errors import NotWritten, SchedulerError, StateError
from ugro.store.cordons import Cordon
from ugro.store.history_records import Event

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ugro.recovery.plan import CordonOrder, Plan
    from ugro.recovery.scheduler import Scheduler
    from ugro.store.cordons import CordonStore

log = logging.getLogger(__name__)

Call = Literal["drain", "resume"]
# A scheduler call that failed is tried again after this long, not in a loop (ugro.slurm).
SCHEDULER_RETRY_S = 60.0


def tell(
    scheduler: Scheduler, call: Call, node: str, reason: str = ""
) -> tuple[dict[str, Any], str]:
    """Drain `node` (for `reason`) or resume it: what the scheduler said, and its refusal.

    What it said is kept in the history and in `--json` output; the refusal is "" when
    there was none. A resume of a drain ugro did not place is no refusal: the drain stays.
    """
    answer = True
    try:
        if call == "drain":
            scheduler.drain(node, reason)
        else:
            answer = scheduler.resume(node)
    except SchedulerError as exc:
        return {"name": scheduler.name, "ok": False, "error": str(exc)}, str(exc)
    note = {"note": "drain not placed by ugro; left"} if answer is False else {}
    return {"name": scheduler.name, "ok": True, **note}, ""


def place(store: CordonStore, cordon: Cordon, *, replace_ugro: bool) -> tuple[bool, Cordon | None]:
    """Put `cordon` in place unless another stands: whether it now is, and the one found.

    `replace_ugro` takes over a cordon the daemon placed (a person taking it, or remediation
    escalating it); a person's cordon always stays. StateError when the file fails.
    """
    existing = store.cordon(cordon, replace_ugro=replace_ugro)
    return existing is None or (replace_ugro and existing.by == "ugro"), existing


@dataclass(frozen=True, slots=True)
class Change:
    """A cordon a person placed or lifted, for the command's output and for the history."""

    # The cordon placed, or the one lifted.
    cordon: Cordon
    event: Event
    # What the scheduler said, and its refusal ("" when none).
    said: dict[str, Any]
    error: str
    # The daemon's own cordon that a person's cordon replaced.
    took_over: Cordon | None = None
    # Why the cordons file does not hold this change ("" when it does): the scheduler was
    # told all the same.
    unrecorded: str = ""
    # A person's cordon that stood already and now has the new reason: as it was before.
    reworded: Cordon | None = None


def cordon_by_hand(
    store: CordonStore, scheduler: Scheduler, node: str, reason: str, *, user: str
) -> Change | Cordon:
    """`user` cordons `node` for `reason`, taking over the daemon's cordon, and drains it.

    When a person's cordon is there already, it takes the new reason (the scheduler is told
    it too, and the change names the old one); with the same reason, that cordon is returned:
    nothing changes and nobody is told. StateError when the cordons file cannot be read; a
    scheduler's refusal is in the change, the cordon placed regardless.

    When the file can be read but not written (a full disk), the scheduler is still told,
    so that jobs stay off the node, and the change says why ugro does not hold the cordon.
    """
    now = datetime.now(UTC)
    placed = Cordon(node, "manual", " ".join(reason.split()), now, user=user)
    unrecorded = ""
    try:
        changed, existing = place(store, placed, replace_ugro=True)
    except NotWritten as exc:
        unrecorded = str(exc)
        existing = store.read().get(node)
        changed = existing is None or existing.by == "ugro"
    if not changed and existing is not None:
        return _reword(store, scheduler, existing, placed.reason, user=user)
    said, error = tell(scheduler, "drain", node, placed.reason)
    detail = {**placed.to_json(), "scheduler": said}
    if unrecorded:
        # The daemon's cordon stays in the file: nothing was taken over.
        existing = None
        detail["not_recorded"] = unrecorded
    if existing is not None:
        detail["took_over"] = existing.to_json()
    event = Event(now, node, "cordon", detail)
    return Change(placed, event, said, error, took_over=existing, unrecorded=unrecorded)


def _reword(
    store: CordonStore, scheduler: Scheduler, existing: Cordon, reason: str, *, user: str
) -> Change | Cordon:
    """`user` gives the person's cordon that stands `reason`; `existing` when it has it."""
    try:
        was = store.reword(existing.node, reason, user=user)
    except NotWritten as exc:
        # Nothing changed, so the scheduler is not told: its drain keeps the old reason too.
        raise NotWritten(
            f"{existing.node} stays cordoned {existing.describe()}; the new reason is not "
            f"recorded: {exc}"
        ) from exc
    if was is None:
        return existing
    cordon = replace(was, reason=reason, user=user)
    said, error = tell(scheduler, "drain", cordon.node, cordon.reason)
    detail = {**cordon.to_json(), "scheduler": said, "reason_was": was.reason}
    event = Event(datetime.now(UTC), cordon.node, "cordon", detail)
    return Change(cordon, event, said, error, reworded=was)


def uncordon_by_hand(
    store: CordonStore, scheduler: Scheduler, node: str, *, user: str
) -> Change | None:
    """`user` lifts `node`'s cordon, whoever placed it, and resumes it; None when it had none.

    StateError when the cordons file fails; a scheduler's refusal is in the change, the
    cordon lifted regardless.
    """
    lifted = store.uncordon(node)
    if lifted is None:
        return None
    said, error = tell(scheduler, "resume", node)
    detail = {"by": "manual", "user": user, "lifted": lifted.to_json(), "scheduler": said}
    return Change(lifted, Event(datetime.now(UTC), node, "uncordon", detail), said, error)


@dataclass(frozen=True, slots=True)
class _Unsynced:
    """A drain or resume the scheduler refused, to be tried again."""

    call: Call
    reason: str
    error: str
    retry_at: float


class Cordoner:
    """The daemon's cordons: placed and lifted per plan, passed on to the scheduler meanwhile.

    A `scheduler` event for the history is appended to `finished` when the scheduler
    answers.
    """

    def __init__(self, store: CordonStore, scheduler: Scheduler, finished: list[Event]) -> None:
        """Cordon in `store`, telling `scheduler`."""
        self.store = store
        self.scheduler = scheduler
        self.finished = finished
        self.unsynced: dict[str, _Unsynced] = {}
        self.telling: dict[str, asyncio.Task[None]] = {}

    async def read(self) -> dict[str, Cordon]:
        """The cordons now, off the event loop; StateError when the file fails."""
        return await asyncio.to_thread(self.store.read)

    async def apply(
        self, plan: Plan, covered: set[str], recover_after: int, now: datetime
    ) -> tuple[set[str], list[Event]]:
        """Place and lift the plan's cordons: the nodes under a cordon afterwards, and events.

        `covered` are the nodes under a cordon before.
        """
        events: list[Event] = []
        for order in plan.cordon:
            if await self._cordon(order, now, events):
                covered.add(order.node)
        why = f"recovered: {recover_after} passing checks in a row"
        for node in plan.uncordon:
            await self._uncordon(node, why, now, events)
        return covered - set(plan.uncordon), events

    async def _cordon(self, order: CordonOrder, now: datetime, events: list[Event]) -> bool:
        """Place (or escalate) a cordon; whether the node is under one now, whoever's."""
        cordon = Cordon(order.node, "ugro", order.reason, now, escalated=order.escalated)
        try:
            changed, _ = await asyncio.to_thread(
                place, self.store, cordon, replace_ugro=order.escalated
            )
        except StateError as exc:
            log.error("%s: cannot cordon: %s", order.node, exc)  # noqa: TRY400 - complete
            return False
        if not changed:
            return True
        log.warning("%s: cordoned (%s)", order.node, order.reason)
        detail: dict[str, Any] = {
            "by": "ugro",
            "reason": order.reason,
            "escalated": order.escalated,
        }
        events.append(Event(now, order.node, "cordon", detail))
        self._tell_later("drain", order.node, order.reason)
        return True

    async def _uncordon(self, node: str, why: str, now: datetime, events: list[Event]) -> None:
        """Lift the daemon's own cordon of a recovered node."""
        try:
            lifted = await asyncio.to_thread(self.store.uncordon, node, only_by="ugro")
        except StateError as exc:
            log.error("%s: cannot uncordon: %s", node, exc)  # noqa: TRY400 - complete
            return
        if lifted is None:
            return
        log.info("%s: uncordoned, %s (was cordoned %s)", node, why, lifted.describe())
        detail: dict[str, Any] = {"by": "ugro", "reason": why, "lifted": lifted.to_json()}
        events.append(Event(now, node, "uncordon", detail))
        self._tell_later("resume", node)

    def _tell_later(self, call: Call, node: str, reason: str = "") -> None:
        """Tell the scheduler in the background, after any call still running for `node`."""
        before = self.telling.get(node)

        async def tell_in_turn() -> None:
            if before is not None:
                await asyncio.gather(before, return_exceptions=True)
            said = await self._tell(call, node, reason)
            self.finished.append(
                Event(datetime.now(UTC), node, "scheduler", {"call": call, **said})
            )

        self.telling[node] = asyncio.create_task(tell_in_turn())

    async def _tell(self, call: Call, node: str, reason: str) -> dict[str, Any]:
        """`tell`, off the event loop; a refusal is remembered, to be retried."""
        said, error = await asyncio.to_thread(tell, self.scheduler, call, node, reason)
        if error:
            log.error("%s: scheduler %s: %s", node, said["name"], error)
            retry_at = time.monotonic() + SCHEDULER_RETRY_S
            self.unsynced[node] = _Unsynced(call, reason, error, retry_at)
            return said
        self.unsynced.pop(node, None)
        if "note" in said:
            log.info("%s: scheduler %s: its drain is not ugro's; left as it is", node, said["name"])
        return said

    def resync(self, cordons: Mapping[str, Cordon]) -> None:
        """Try again the scheduler calls that failed and are due; drop those overtaken.

        A drain is owed only while the node is still cordoned, a resume only while it is not.
        """
        for node, owed in list(self.unsynced.items()):
            if (owed.call == "drain") != (node in cordons):
                del self.unsynced[node]
                continue
            running = self.telling.get(node)
            if owed.retry_at <= time.monotonic() and (running is None or running.done()):
                self._tell_later(owed.call, node, owed.reason)

    def out_of_sync(self) -> list[ExternalCondition]:
        """An alert per node whose drain or resume the scheduler refused, until it takes one."""
        return [
            ExternalCondition(
                node,
                SCHEDULER_KEY,
                "warning",
                f"scheduler {self.scheduler.name} did not {owed.call} the node: {owed.error}; "
                f"retrying every {SCHEDULER_RETRY_S:g} s",
                (),
            )
            for node, owed in sorted(self.unsynced.items())
        ]

    async def close(self) -> None:
        """Stop the scheduler calls still running."""
        tasks = list(self.telling.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
