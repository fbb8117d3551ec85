"""`ugro check` and `ugro health`: the verdicts, checked now or read from the state file.

Both exit with the Nagios code of the worst node, or 3 when no verdict is possible. A check
whose verdicts cannot be saved (a full state disk) still shows them and exits with their code.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from ugro.cli import fleetview
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
from ugro.cli.fleetview import from_prometheus_option
from ugro.cli.output import output_options
from ugro.errors import StateError, UgroError
from ugro.text import printable

if TYPE_CHECKING:
    from ugro.model import NodeVerdict
    from ugro.store.state import StateStore


@main.command(cls=VerdictCommand)
@click.argument("nodes", nargs=-1)
@output_options
@click.option(
    "--deep",
    is_flag=True,
    help="Also run the deep PyTorch probe (a verified matmul on every idle GPU).",
)
@click.option(
    "--local",
    is_flag=True,
    help="Check this machine, as Slurm's HealthCheckProgram: drain it when unhealthy, "
    "resume only ugro's own drain; exit 0 when it may take jobs (docs/scaling.md).",
)
@click.option(
    "--textfile",
    type=click.Path(path_type=Path),
    help="With --local: also write node_exporter's textfile here (DIR/ugro.prom), atomically.",
)
@click.pass_context
@errors_exit(NO_VERDICT)
def check(  # noqa: PLR0913, PLR0917 - one parameter per option, as click passes them
    ctx: click.Context,
    nodes: tuple[str, ...],
    output: str,
    deep: bool,
    local: bool,
    textfile: Path | None,
) -> None:
    """Check NODES now (all nodes when none are named), show and persist the verdicts."""
    if local or textfile is not None:
        from ugro.cli import nodelocal

        nodelocal.check(ctx, nodes, local=local, output=output, deep=deep, textfile=textfile)
    from ugro import paths, sweep
    from ugro.cli.views import verdicts as view
    from ugro.cli.views.progress import Progress
    from ugro.config import shards
    from ugro.verdict import hysteresis
    from ugro.verdict.rows import Row, exit_code, findings

    cfg = load_config(ctx)
    known = {n.name: n for n in cfg.nodes}
    unknown = [n for n in nodes if n not in known]
    if unknown:
        fail(f"unknown node {', '.join(map(repr, unknown))}; nodes: {', '.join(known)}", NO_VERDICT)
    # A shard's control node checks its own shard's nodes unless told which.
    chosen = [known[n] for n in nodes] if nodes else shards.owned(cfg.nodes, cfg.monitor.shard)
    if deep:
        chosen = [n.with_deep() for n in chosen]
    store = state_store()
    stored = _stored(store)
    with Progress(len(chosen), sys.stderr) as progress:
        verdicts = sweep.run_checks(
            chosen,
            {name: v.last_check for name, v in stored.items()},
            progress.checked,
            max_connects=cfg.monitor.max_connects,
        )
    notes = []
    source = str(cfg.source) if cfg.source else None
    try:
        # Shown as checked now; recorded through the daemon's hysteresis (README, "Writers").
        latest = store.update(
            verdicts,
            keep=None if nodes else known,
            fold=hysteresis.recorder(cfg.monitor),
            config=source,
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
    where = (
        f"config: {source}"
        if source
        else "config: none, so this machine alone (`ugro init` writes one)"
    )
    sources = f"{where}; state: {paths.state_file()}"
    view.show(
        rows, output=output, source="check", now=now, notes=notes, found=found, sources=sources
    )
    sys.exit(exit_code(rows))


def _stored(store: StateStore) -> dict[str, NodeVerdict]:
    """The verdicts the state file holds; none when it cannot be read."""
    try:
        state = store.read()
    except StateError:
        return {}
    return dict(state.nodes) if state else {}


@main.command(cls=VerdictCommand)
@output_options
@from_prometheus_option
@click.option(
    "--watch",
    type=click.FloatRange(min=0.1, max=3600),
    is_flag=False,
    flag_value=2.0,
    default=None,
    metavar="[S]",
    help="Full screen, redrawn every S seconds (2 when not given) from the state file; q leaves.",
)
@click.pass_context
@errors_exit(NO_VERDICT)
def health(
    ctx: click.Context, output: str, watch: float | None, prometheus_url: str | None
) -> None:
    """Show the last verdicts of every configured node instantly, from the state file (no SSH)."""
    from ugro.cli import snapshot
    from ugro.cli.views import verdicts as view
    from ugro.verdict.rows import exit_code

    if prometheus_url:
        fleetview.health(prometheus_url, output=output)
    if watch is not None:
        if output not in {"table", "wide"}:
            fail(f"--watch shows the table; --format {output} cannot be watched", NO_VERDICT)
        _watch(ctx.obj, watch, wide=output == "wide")
    shot = snapshot.take(ctx.obj)
    if shot.empty:
        _no_data(output)
    view.show(
        shot.rows,
        output=output,
        source="state",
        now=shot.now,
        notes=shot.notes,
        found=shot.found,
        sources=shot.sources,
    )
    sys.exit(exit_code(shot.rows))


def _no_data(output: str) -> NoReturn:
    """Say there is nothing to show yet, in the format asked for, and exit 3."""
    from ugro.cli.views import print_json
    from ugro.verdict import report

    if output == "json":
        print_json({**report.document([], source="state"), "error": NO_DATA})
    elif output == "nagios":
        from ugro.cli.views import nagios

        click.echo(nagios.failure(NO_DATA))
    else:
        fail(NO_DATA, NO_VERDICT)
    sys.exit(NO_VERDICT)


def _watch(config_path: Path | None, every: float, *, wide: bool) -> NoReturn:
    """`health --watch`: the table full screen, redrawn until q or Ctrl-C; then exit 0."""
    from ugro.cli import snapshot
    from ugro.cli.views import live, table
    from ugro.cli.views import verdicts as view

    if not sys.stdout.isatty():
        fail("--watch draws on a terminal; piped, use `ugro health` or --json", NO_VERDICT)

    def draw(width: int) -> list[str]:
        try:
            shot = snapshot.take(config_path)
        except UgroError as exc:
            # A state file caught corrupt, a config mid-edit: said, and watched until fixed.
            return [f"ugro: {printable(str(exc))}"]
        if shot.empty:
            return [NO_DATA]
        footer = [view.summary_line(shot.rows), *shot.notes, shot.sources]
        return view.page(
            shot.rows, footer=footer, width=width, wide=wide, colour=table.colour_wanted()
        )

    live.watch(draw, every, title="ugro health")
    sys.exit(0)
