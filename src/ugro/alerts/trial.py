"""Trial notifications: one harmless event through each sink, to prove alerts get through.

What `ugro alerts test` sends. The event is marked as a test (kind and key "test"), so a
receiver can tell it from a real alert. It is sent once, without retries, and recorded nowhere:
not in the alert book, not in the delivery counters.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ugro.alerts import delivery, sinks
from ugro.alerts.book import AlertEvent
from ugro.errors import UgroError
from ugro.model import CLUSTER

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ugro.config import SinkSettings


async def send_trial(
    configured: Sequence[SinkSettings], cluster: str
) -> list[tuple[str, str | None]]:
    """Send one test event through each sink, all at once; (name, error or None) per sink."""
    now = datetime.now(UTC)
    event = AlertEvent(
        kind="test",
        node=CLUSTER,
        key="test",
        severity="warning",
        summary="test notification from ugro",
        details=("if you can read this, alerts reach you here",),
        started_at=now,
        cluster=cluster,
    )

    async def one(settings: SinkSettings) -> tuple[str, str | None]:
        try:
            sink = sinks.build(settings)
        except UgroError as exc:
            return settings.name, str(exc)
        return settings.name, await delivery.send_now(sink, event)

    return list(await asyncio.gather(*(one(s) for s in configured)))
