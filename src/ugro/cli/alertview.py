"""What `ugro alerts` shows, and the test notifications of `ugro alerts test`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ugro.alerts.engine import AlertEvent

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ugro.config import SinkSettings


def document(book: dict[str, Any]) -> dict[str, Any]:
    """The `--json` document: firing and resolved alerts, and per-sink delivery counters."""
    return {
        "schema_version": 1,
        "firing": book.get("firing", []),
        "resolved": book.get("resolved", []),
        "delivery": book.get("delivery", {}),
    }


def print_alerts(book: dict[str, Any]) -> None:
    """Firing alerts, recently resolved ones, and delivery, for a terminal."""
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    for title, rows, when in (
        ("firing", book.get("firing", []), "started_at"),
        ("resolved recently", book.get("resolved", []), "resolved_at"),
    ):
        if not rows:
            console.print(
                f"no {title} alerts" if title == "firing" else "nothing resolved recently"
            )
            continue
        table = Table(title=title, box=None, header_style="bold", title_justify="left")
        for column in (
            "SEVERITY",
            "NODE",
            "ALERT",
            "SINCE" if when == "started_at" else "RESOLVED",
            "DETAILS",
        ):
            table.add_column(column, overflow="fold")
        for a in rows:
            moment = datetime.fromisoformat(a[when])
            held = " (held)" if a.get("grouped") else ""
            table.add_row(
                a["severity"],
                a["node"],
                a["summary"] + held,
                f"{moment:%m-%d %H:%M}",
                "\n".join(a["details"]),
            )
        console.print(table)
    delivery = book.get("delivery", {})
    if delivery:
        table = Table(title="delivery", box=None, header_style="bold", title_justify="left")
        for column in ("SINK", "SENT", "RETRIES", "FAILED", "LAST ERROR"):
            table.add_column(column, overflow="fold")
        for name, stats in delivery.items():
            table.add_row(
                name,
                str(stats.get("sent", 0)),
                str(stats.get("retries", 0)),
                str(stats.get("failed", 0)),
                str(stats.get("last_error") or "-"),
            )
        console.print(table)


async def send_tests(
    configured: Sequence[SinkSettings], cluster: str
) -> list[tuple[str, str | None]]:
    """Send one test event through each sink, all at once; (name, error or None) per sink."""
    import asyncio

    from ugro.alerts import delivery, sinks
    from ugro.errors import UgroError

    now = datetime.now(UTC)
    event = AlertEvent(
        kind="test",
        node="cluster",
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
