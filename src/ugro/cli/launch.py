"""`ugro hosts` and `ugro preflight`: the nodes a training launch may use, for launchers.

`hosts` reads the state file only; `preflight` checks what is too old to trust, decides, and
with `-- CMD` becomes the job. The decisions are `ugro.verdict.gating`'s; this module loads,
calls and shows.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

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
from ugro.cli.spans import span_option
from ugro.text import printable

if TYPE_CHECKING:
    from ugro.verdict.gating import Format


@main.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["plain", "torchrun", "deepspeed", "mpi", "json"]),
    default="plain",
    show_default=True,
    help="plain: one host a line; deepspeed, mpi: `host slots=GPUS` hostfile lines; torchrun: "
    "its --nnodes/--nproc-per-node/--rdzv-* arguments; json: a list.",
)
@click.option(
    "--min-score",
    type=click.FloatRange(0, 100),
    default=0,
    show_default=True,
    help="Leave out nodes scoring below this.",
)
@from_prometheus_option
@click.pass_context
@errors_exit(1)
def hosts(ctx: click.Context, fmt: Format, min_score: float, prometheus_url: str | None) -> None:
    """Print the usable nodes from the state file or Prometheus (no SSH), for a launcher.

    Usable: healthy or degraded, not stale, not cordoned, with GPUs, score at least
    --min-score. The nodes left out, and why, go to stderr. Exits 1 when no node is usable
    (`--format json` still prints `[]`).
    """
    import socket

    from ugro.verdict import gating

    cfg = load_config(ctx)
    url = fleetview.url_of(cfg, prometheus_url)
    if url:
        known = fleetview.read(url, cfg.prometheus.timeout_s)
        _say(known.notes)
    else:
        state = state_store().read()
        if state is None or not state.nodes:
            _no_hosts(fmt)
            fail(NO_DATA, 1)
        interval = state.daemon.interval_s if state.daemon else None
        known = fleetview.Known(
            state.nodes, cordon_store().read(), state.stale_after_s, interval, notes=[]
        )
    found = gating.gates(
        cfg.nodes,
        known.verdicts,
        known.cordons,
        now=datetime.now(UTC),
        stale_after_s=known.stale_after_s,
        interval_s=known.interval_s,
        min_score=min_score,
        hostname=socket.gethostname(),
    )
    for gate in found:
        if not gate.usable:
            # The reasons quote check messages and cordon reasons: one line, printable.
            why = "; ".join(gate.reasons)
            click.echo(printable(f"ugro: left out {gate.name}: {why}"), err=True)
    usable = [g for g in found if g.usable]
    if not usable:
        _no_hosts(fmt)
        fail(f"no usable node among {len(found)}: see above; `ugro health` shows more", 1)
    master = gating.rendezvous(usable, cfg.nodes[0].master, {n.ip for n in cfg.nodes})
    text, notes = gating.render(usable, fmt, master)
    for note in notes:
        click.echo(printable(f"ugro: {note}"), err=True)
    click.echo(text)


def _no_hosts(fmt: Format) -> None:
    """What stdout says when no node is usable: `[]` for JSON, so a program still parses it."""
    if fmt == "json":
        click.echo("[]")


@main.command(
    cls=VerdictCommand,
    # Everything from CMD on is CMD's own: `ugro preflight -- torchrun --nnodes=2 train.py`.
    context_settings={"allow_interspersed_args": False},
)
@click.option(
    "--nodes",
    "needed",
    type=click.IntRange(min=1),
    help="Nodes the job needs [default: every configured node with GPUs].",
)
@click.option(
    "--max-age",
    default="60s",
    callback=span_option,
    metavar="SPAN",
    show_default=True,
    help="Reuse verdicts younger than this (30s, 5m, 1h, seconds); check the other nodes now.",
)
@click.option(
    "--min-score",
    type=click.FloatRange(0, 100),
    default=0,
    show_default=True,
    help="Nodes scoring below this are not usable.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the decision as JSON.")
@from_prometheus_option
@click.argument("command", nargs=-1, type=click.UNPROCESSED, metavar="[-- CMD...]")
@click.pass_context
@errors_exit(NO_VERDICT)
def preflight(  # noqa: PLR0913, PLR0917 - one parameter per option, as click passes them
    ctx: click.Context,
    needed: int | None,
    max_age: float,
    min_score: float,
    as_json: bool,
    prometheus_url: str | None,
    command: tuple[str, ...],
) -> None:
    """Exit 0 when enough nodes can train now, 2 naming each node that cannot and why.

    Verdicts younger than --max-age are reused; every other node that is not cordoned is
    checked now, and the results persisted. With `-- CMD...`, CMD replaces ugro (same pid,
    signals, exit code) only when enough nodes are usable, with UGRO_HOSTS (the selected
    nodes' addresses, best score first), UGRO_NNODES, UGRO_MASTER_ADDR and UGRO_MASTER_PORT
    in its environment; otherwise CMD does not run and preflight exits 2.
    """
    import socket

    from ugro.cli.views import launch as view
    from ugro.verdict import gating, hysteresis

    cfg = load_config(ctx)
    store = state_store()
    url = fleetview.url_of(cfg, prometheus_url)
    if url:
        known = fleetview.read(url, cfg.prometheus.timeout_s)
        _say(known.notes)
        verdicts, cordoned = dict(known.verdicts), known.cordons
    else:
        state = store.read()
        cordoned = cordon_store().read()
        verdicts = dict(state.nodes) if state else {}
    started = datetime.now(UTC)
    due = gating.due_for_check(cfg.nodes, verdicts, cordoned, now=started, max_age_s=max_age)
    if due:
        from ugro import sweep

        checked = sweep.run_checks(due, max_connects=cfg.monitor.max_connects)
        # The fleet's state is its monitors'; this machine's state file is not one of theirs.
        if not url:
            store.update(
                checked,
                keep=[n.name for n in cfg.nodes],
                fold=hysteresis.recorder(cfg.monitor),
                config=str(cfg.source) if cfg.source else None,
            )
        verdicts.update((v.name, v) for v in checked)
    found = gating.gates(
        cfg.nodes,
        verdicts,
        cordoned,
        # Judged as of the start: what was just checked is fresh, whatever --max-age is.
        now=started,
        stale_after_s=max_age,
        min_score=min_score,
        hostname=socket.gethostname(),
    )
    # A `gpus: 0` node is never in a launch (gating), so by default the job needs the others.
    count = needed or sum(1 for n in cfg.nodes if n.gpus > 0) or len(cfg.nodes)
    selected = gating.select(found, count) if count <= len(cfg.nodes) else None
    checked_now = [n.name for n in due]
    env = (
        gating.launch_env(
            selected, gating.rendezvous(selected, cfg.nodes[0].master, {n.ip for n in cfg.nodes})
        )
        if selected
        else None
    )
    # With CMD, stdout is the job's: whatever preflight says goes to stderr.
    report_to = sys.stderr if command else sys.stdout
    if as_json:
        view.print_preflight_json(found, selected, count, max_age, checked_now, env, report_to)
    else:
        view.print_preflight(
            found,
            selected=selected,
            needed=count,
            configured=len(cfg.nodes),
            checked_now=checked_now,
            out=report_to,
        )
    if selected is None:
        if command:
            click.echo(f"ugro: not running {command[0]}: too few usable nodes", err=True)
        sys.exit(2)
    if not command:
        sys.exit(0)
    _exec(list(command), {**os.environ, **(env or {})})


def _say(notes: list[str]) -> None:
    """Notes about where the verdicts came from, on stderr: stdout is the launcher's."""
    for note in notes:
        click.echo(printable(f"ugro: {note}"), err=True)


def _exec(argv: list[str], env: dict[str, str]) -> None:
    """Become `argv`: its pid, signals and exit code are the job's; 127/126 as a shell says."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(argv[0], argv, env)  # noqa: S606 - the operator's own command, no shell
    except FileNotFoundError:
        fail(f"{argv[0]}: command not found", 127)
    except PermissionError:
        fail(f"{argv[0]}: permission denied", 126)
    except OSError as exc:
        fail(f"{argv[0]}: cannot run: {exc.strerror}", 126)
