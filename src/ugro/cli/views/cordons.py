"""What `ugro cordon` lists: the nodes kept out of the healthy set, by whom, since when, why."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ugro.cli.views import cell, print_json

if TYPE_CHECKING:
    from ugro.store.cordons import Cordon


def print_cordons(cordons: dict[str, Cordon], as_json: bool) -> None:
    """Every cordon, by node: a table for a terminal, or the `--json` document."""
    listed = sorted(cordons.values(), key=lambda c: c.node)
    if as_json:
        print_json({"schema_version": 1, "cordons": [c.to_json() for c in listed]})
        return
    if not listed:
        click.echo("no node is cordoned")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("NODE", "BY", "SINCE (UTC)", "REASON"):
        table.add_column(column, no_wrap=column != "REASON")
    for c in listed:
        by = (
            f"{c.user} (manual)"
            if c.by == "manual"
            else "ugro, escalated"
            if c.escalated
            else "ugro"
        )
        # The reason is whatever its author typed, brackets included: data, never markup.
        table.add_row(cell(c.node), cell(by), f"{c.since:%Y-%m-%d %H:%M:%S}", cell(c.reason))
    Console(highlight=False).print(table)
