"""Shared by the alert tests: a planted secret, alert events, sink settings, and waiting."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from ugro.alerts.book import AlertEvent, Kind, Severity
from ugro.config import SinkSettings

if TYPE_CHECKING:
    from collections.abc import Callable

#: Planted in URLs; it must never appear in an error, a counter or a log line.
MARKER = "s3cret"
#: How long a test waits for something that should happen within a second or two.
PATIENCE_S = 10.0


def make_event(
    kind: Kind = "firing",
    *,
    node: str = "gpu-01",
    key: str = "unhealthy",
    severity: Severity = "critical",
    check: str | None = None,
) -> AlertEvent:
    """An alert event as the engine would raise it."""
    started = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    return AlertEvent(
        kind=kind,
        node=node,
        key=key,
        severity=severity,
        summary="GPU 3 is missing",
        details=("nvidia-smi lists 7 of 8 GPUs",),
        started_at=started,
        cluster="lab",
        resolved_at=datetime.now(UTC).replace(microsecond=0) if kind == "resolved" else None,
        check=check,
    )


async def until(condition: Callable[[], object], patience: float = PATIENCE_S) -> None:
    """Poll `condition` without blocking the loop; fail after `patience` seconds."""
    for _ in range(int(patience / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    pytest.fail("timed out")


def settings(**fields: Any) -> SinkSettings:
    """Sink settings for a webhook unless told otherwise."""
    return SinkSettings.model_validate(
        {"name": "ops", "type": "webhook", "url": "http://127.0.0.1/", **fields}
    )
