"""`ugro cordon` and `ugro uncordon`: keeping a node out of the healthy set, by hand.

A cordon is passed on to the workload manager (Slurm's drain) and recorded in the history.
On a full disk the scheduler is still told, and the command says that ugro did not record it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, NoReturn

import click

from ugro.cli.app import cordon_store, errors_exit, fail, load_config, main
from ugro.cli.completion import complete_nodes
from ugro.errors import UgroError
from ugro.text import printable

if TYPE_CHECKING:
    from ugro.config import Config
    from ugro.recovery.cordoning import Change
    from ugro.recovery.scheduler import Scheduler
    from ugro.store.history_records import Event


def scheduler_for(cfg: Config) -> Scheduler:
    """The workload manager that cordons are passed on to."""
    from ugro.recovery.scheduler import for_config

    return for_config(cfg)


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def _record(cfg: Config, event: Event) -> None:
    """Add a cordon event to the history, when it is kept; a failure only warns."""
    if not cfg.history.enabled:
        return
    from ugro.store.history import opened, path_for

    try:
        with opened(path_for(cfg.history)) as store:
            store.record_events([event])
    except UgroError as exc:
        click.echo(printable(f"ugro: warning: not recorded in the history: {exc}"), err=True)


def _known(cfg: Config, node: str) -> None:
    names = [n.name for n in cfg.nodes]
    if node not in names:
        raise click.UsageError(f"unknown node {node!r}; nodes: {', '.join(names)}")


@main.command()
@click.argument("node", required=False, shell_complete=complete_nodes)
@click.option("--reason", help="Why NODE is cordoned (required); the scheduler shows it too.")
@click.option("--json", "as_json", is_flag=True, help="Print the result (or the cordons) as JSON.")
@click.pass_context
@errors_exit(1)
def cordon(ctx: click.Context, node: str | None, reason: str | None, as_json: bool) -> None:
    """Keep NODE out of the healthy set until `ugro uncordon`; without NODE, list cordons."""
    from ugro.cli.views import print_json
    from ugro.cli.views.cordons import print_cordons
    from ugro.recovery.cordoning import cordon_by_hand
    from ugro.store.cordons import Cordon

    store = cordon_store()
    if node is None:
        if reason is not None:
            raise click.UsageError("--reason needs a NODE to cordon")
        print_cordons(store.read(), as_json)
        return
    if reason is None or not reason.strip():
        raise click.UsageError("--reason is required: say why the node is cordoned")
    cfg = load_config(ctx)
    _known(cfg, node)
    done = cordon_by_hand(store, scheduler_for(cfg), node, reason, user=_user())
    if isinstance(done, Cordon):
        if as_json:
            print_json({"node": node, "changed": False, "cordon": done.to_json()})
        else:
            click.echo(printable(f"{node} is already cordoned {done.describe()}"))
        return
    if done.unrecorded:
        _unrecorded(node, done, as_json)
    _record(cfg, done.event)
    if as_json:
        print_json({"node": node, "changed": True, **done.event.detail})
    else:
        _say_placed(node, done)
    if done.error:
        fail(f"{node} is cordoned, but {done.said['name']} did not drain it: {done.error}", 1)


def _say_placed(node: str, done: Change) -> None:
    """What a person reads after a cordon was placed, taken over or given a new reason."""
    # Reasons are whatever their authors typed: one line each, printable.
    if done.reworded is not None:
        click.echo(
            printable(
                f"{node} was already cordoned; reason updated: {done.reworded.reason!r} "
                f"→ {done.cordon.reason!r}"
            )
        )
        return
    click.echo(printable(f"cordoned {node}: {done.cordon.reason}"))
    if done.took_over is not None:
        click.echo(
            printable(
                f"  (took over ugro's own cordon, {done.took_over.reason}; it is yours to lift)"
            )
        )


def _unrecorded(node: str, done: Change, as_json: bool) -> NoReturn:
    """Say that the cordons file does not hold `done` and whether the scheduler drained the node.

    Exits 1: the cordon is the scheduler's alone, which ugro neither shows nor keeps.
    """
    from ugro.cli.views import print_json
    from ugro.recovery.scheduler import NoScheduler

    if as_json:
        print_json({"node": node, "changed": False, "recorded": False, **done.event.detail})
    scheduler = done.said["name"]
    if scheduler == NoScheduler.name:
        drained = "no scheduler is configured to drain it: nothing keeps jobs off it"
    elif done.error:
        drained = f"{scheduler} did not drain it either: {done.error}"
    else:
        drained = f"{scheduler} drained it, so jobs stay off it"
    fail(f"{node}: the cordon is not recorded in ugro ({done.unrecorded}); {drained}", 1)


@main.command()
@click.argument("node", shell_complete=complete_nodes)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
@errors_exit(1)
def uncordon(ctx: click.Context, node: str, as_json: bool) -> None:
    """Let NODE back into the healthy set, whoever cordoned it."""
    from ugro.cli.views import print_json
    from ugro.recovery.cordoning import uncordon_by_hand

    store = cordon_store()
    cfg = load_config(ctx)
    # A node removed from the config may still be cordoned: let it be lifted.
    if node not in store.read():
        _known(cfg, node)
    done = uncordon_by_hand(store, scheduler_for(cfg), node, user=_user())
    if done is None:
        if as_json:
            print_json({"node": node, "changed": False, "cordon": None})
        else:
            click.echo(f"{node} is not cordoned")
        return
    _record(cfg, done.event)
    if as_json:
        print_json({"node": node, "changed": True, **done.event.detail})
    else:
        click.echo(printable(f"uncordoned {node} (was cordoned {done.cordon.describe()})"))
        if "note" in done.said:
            click.echo(f"  {done.said['name']}: the drain was not placed by ugro; left as it is")
    if done.error:
        fail(f"{node} is uncordoned, but {done.said['name']} did not resume it: {done.error}", 1)
