"""`ugro describe NODE`: one node in full, from the state file and the history.

Where `ugro health` gives a node one line, this gives it a page: every check with its
value, message and duration, the GPUs, the host, the disks, the versions, the cordon, what
the daemon's hysteresis is tracking, and the node's recent status changes when the daemon
keeps a history. It exits 0 when the node could be described, 1 when not (an unknown node,
an unreadable state file), 2 on a usage error.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import click

from ugro.cli.app import errors_exit, fail, main
from ugro.errors import UgroError

if TYPE_CHECKING:
    from ugro.store.history_records import Transition

#: How far back `describe` looks for the node's status changes, and how many it shows.
HISTORY_DAYS = 7
TRANSITIONS = 10


@main.command()
@click.argument("node")
@click.option("--json", "as_json", is_flag=True, help="Print the node as a JSON document.")
@click.pass_context
@errors_exit(1)
def describe(ctx: click.Context, node: str, as_json: bool) -> None:
    """Show everything ugro knows about NODE: checks, GPUs, versions, cordon, history."""
    from ugro.cli import snapshot
    from ugro.cli.views import describe as view
    from ugro.cli.views import print_json

    shot = snapshot.take(ctx.obj)
    rows = {row.verdict.name: row for row in shot.rows}
    row = rows.get(node)
    if row is None:
        from ugro.cli.views.grouping import compress

        known = compress(rows) or "none (run `ugro check`)"
        fail(f"no node {node!r} in the cluster; nodes: {known}", 1)
    transitions, history_note = _transitions(ctx, node, shot.now)
    page = view.Page(row, transitions, history_note, shot.sources)
    if as_json:
        print_json(view.document(page, now=shot.now))
    else:
        click.echo("\n".join(view.lines(page)))


def _transitions(
    ctx: click.Context, node: str, now: datetime
) -> tuple[list[Transition], str | None]:
    """The node's latest status changes, newest last, and a note when there is no history."""
    from ugro.cli.app import load_config
    from ugro.store.history import opened, path_for

    try:
        path = path_for(load_config(ctx).history)
        if not path.exists():
            return [], "no history yet: the monitor daemon records it"
        with opened(path) as history:
            found = history.transitions(node, now - timedelta(days=HISTORY_DAYS))
    except UgroError as exc:
        return [], f"history not read: {exc}"
    return list(found[-TRANSITIONS:]), None
