"""What `ugro alerts` shows: firing and resolved alerts, and delivery to each sink."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ugro.alerts.book import GROUP_KEY
from ugro.alerts.book import report as document
from ugro.cli.views import cell
from ugro.model import CLUSTER
from ugro.text import printable

__all__ = ["document", "print_alerts"]


# What "(held)" means, said under the tables that show it (docs/alerts-reading.md).
HELD_NOTE = (
    "(held): not sent on its own while another alert stands for it: the node's `flapping` "
    "alert while its status keeps changing, or the cluster's `nodes_down` alert while many "
    "nodes are down together. When that ends, a held alert still firing is sent (once), and "
    "one that resolved meanwhile is sent resolved only if its firing had been sent."
)


def _holders(firing: list[dict[str, Any]]) -> dict[str, str]:
    """Per node, what holds its alerts back: its flapping alert, or the cluster's group."""
    holders: dict[str, str] = {}
    for a in firing:
        if a.get("key") == GROUP_KEY and a.get("node") == CLUSTER:
            for line in a.get("details", []):
                holders.setdefault(str(line).split(":", 1)[0], "many nodes down, see nodes_down")
    for a in firing:
        if a.get("key") == "flapping":
            holders[str(a.get("node"))] = "the node is flapping"
    return holders


def print_alerts(book: dict[str, Any]) -> None:
    """Firing alerts, recently resolved ones, and delivery, for a terminal."""
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    holders = _holders(book.get("firing", []))
    any_held = False
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
            held = (
                f" (held: {holders.get(a['node'], 'until its hold ends')})"
                if a.get("grouped")
                else ""
            )
            any_held = any_held or bool(held)
            # Every field may quote a node: cells, never markup, one detail a line.
            table.add_row(
                cell(a["severity"]),
                cell(a["node"]),
                cell(f"{a['summary']}{held}"),
                f"{moment:%m-%d %H:%M}",
                cell("\n".join(printable(d) for d in a["details"]), multiline=True),
            )
        console.print(table)
    if any_held:
        console.print(HELD_NOTE, soft_wrap=True)
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
