"""`ugro check` and `ugro health`: the verdicts, checked now or read from the state file.

Both exit with the Nagios code of the worst node, or 3 when no verdict is possible. A check
whose verdicts cannot be saved (a full state disk) still shows them and exits with their code.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from ugro.cli.app import (
    NO_DATA,
    NO_VERDICT,
    VerdictCommand,
    cordon_store,
    errors_exit,
    fail,
    load_config,
    main,
    state_store,
)
from ugro.errors import StateError
from ugro.text import printable

if TYPE_CHECKING:
    from ugro.model import NodeVerdict
    from ugro.store.state import StateStore


@main.command(cls=VerdictCommand)
@click.argument("nodes", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print the verdicts as JSON.")
@click.option(
    "--deep",
    is_flag=True,
    help="Also run the deep PyTorch probe (a verified matmul on every idle GPU).",
)
@click.pass_context
@errors_exit(NO_VERDICT)
def check(ctx: click.Context, nodes: tuple[str, ...], as_json: bool, deep: bool) -> None:
    """Check NODES now (all nodes when none are named), show and persist the verdicts."""
    from ugro import sweep
    from ugro.cli.views import print_json
    from ugro.cli.views import verdicts as view
    from ugro.verdict import hysteresis
    from ugro.verdict.rows import Row, exit_code, findings

    cfg = load_config(ctx)
    known = {n.name: n for n in cfg.nodes}
    unknown = [n for n in nodes if n not in known]
    if unknown:
        fail(f"unknown node {', '.join(map(repr, unknown))}; nodes: {', '.join(known)}", NO_VERDICT)
    chosen = [known[n] for n in nodes] if nodes else cfg.nodes
    if deep:
        chosen = [n.with_deep() for n in chosen]
    store = state_store()
    stored = _stored(store)
    verdicts = sweep.run_checks(
        chosen,
        {name: v.last_check for name, v in stored.items()},
        max_connects=cfg.monitor.max_connects,
    )
    notes = []
    try:
        # Shown as checked now; recorded through the daemon's hysteresis (README, "Writers").
        latest = store.update(
            verdicts, keep=None if nodes else known, fold=hysteresis.recorder(cfg.monitor)
        ).nodes
    except StateError as exc:
        # The check itself worked (a full state disk, say): its verdicts and exit code stand.
        notes.append(f"the verdicts were not saved: {exc}")
        click.echo(printable(f"ugro: warning: {notes[0]}"), err=True)
        latest = {**stored, **{v.name: v for v in verdicts}}
    now = datetime.now(UTC)
    cordons = cordon_store().read()
    rows = [Row.of(v, now, cordons=cordons) for v in verdicts]
    # Drift is a cluster finding: the nodes checked now against every configured node's
    # latest versions, not only against each other.
    found = findings([Row.of(v, now) for name, v in latest.items() if name in known])
    if as_json:
        print_json(view.document(rows, source="check", now=now, notes=notes, found=found))
    else:
        where = (
            f"from {cfg.source}"
            if cfg.source
            else "no cluster.yaml, so this machine alone; `ugro init` writes one"
        )
        footer = [f"{view.summary_line(rows)}; {where}", *view.findings_text(found)]
        view.print_table(rows, footer="\n".join(footer))
    sys.exit(exit_code(rows))


def _stored(store: StateStore) -> dict[str, NodeVerdict]:
    """The verdicts the state file holds; none when it cannot be read."""
    try:
        state = store.read()
    except StateError:
        return {}
    return dict(state.nodes) if state else {}


@main.command(cls=VerdictCommand)
@click.option("--json", "as_json", is_flag=True, help="Print the verdicts as JSON.")
@errors_exit(NO_VERDICT)
def health(as_json: bool) -> None:
    """Show the last verdicts instantly, from the state file (no SSH)."""
    from ugro.cli.views import print_json
    from ugro.cli.views import verdicts as view
    from ugro.model import NodeStatus
    from ugro.verdict.rows import Row, exit_code, findings

    state = state_store().read()
    if state is None or not state.nodes:
        if as_json:
            print_json({**view.document([], source="state"), "error": NO_DATA})
            sys.exit(NO_VERDICT)
        fail(NO_DATA, NO_VERDICT)
    now = datetime.now(UTC)
    interval = state.daemon.interval_s if state.daemon else None
    cordons = cordon_store().read()
    rows = [Row.of(v, now, state.stale_after_s, interval, cordons) for v in state.nodes.values()]
    notes = []
    if any(r.status is NodeStatus.STALE for r in rows):
        # The daemon's own module, and psutil with it, only when there is something to explain.
        from ugro.daemon.service import stale_note

        notes.append(stale_note(state.daemon, now))
    found = findings(rows)
    if as_json:
        print_json(view.document(rows, source="state", now=now, notes=notes, found=found))
    else:
        footer = [view.summary_line(rows), *notes, *view.findings_text(found)]
        view.print_table(rows, footer="\n".join(footer))
    sys.exit(exit_code(rows))
