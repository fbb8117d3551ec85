"""What `ugro alerts` shows: firing and resolved alerts, and delivery to each sink."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ugro.alerts.book import report as document
from ugro.cli.views import cell
from ugro.text import printable

__all__ = ["document", "print_alerts"]


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
            # Every field may quote a node: cells, never markup, one detail a line.
            table.add_row(
                cell(a["severity"]),
                cell(a["node"]),
                cell(f"{a['summary']}{held}"),
                f"{moment:%m-%d %H:%M}",
                cell("\n".join(printable(d) for d in a["details"]), multiline=True),
            )
        console.print(table)
    delivery = book.get("delivery", {})
    if delivery:
        table = Table(title="delivery", box=None, header_style="bold", title_justify="left")
        for column in ("SINK", "SENT", "RETRIES", "FAILED", "LAST ERROR"):
            table.add_column(column, overflow="fold")
        for name, stats in delivery.items():
            table.add_row(
                cell(name),
                cell(stats.get("sent", 0)),
                cell(stats.get("retries", 0)),
                cell(stats.get("failed", 0)),
                # A receiver's answer or a command's stderr: data.
                cell(stats.get("last_error") or "-"),
            )
        console.print(table)
