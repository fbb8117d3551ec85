"""`ugro cordon` and `ugro uncordon`: keeping a node out of the healthy set, by hand.

A cordon is passed on to the workload manager (Slurm's drain) and recorded in the history.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ugro.cli.app import cordon_store, errors_exit, fail, load_config, main
from ugro.errors import UgroError

if TYPE_CHECKING:
    from ugro.config import Config
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
    from ugro import paths
    from ugro.store.history import opened

    path = Path(cfg.history.path).expanduser() if cfg.history.path else paths.history_file()
    try:
        with opened(path) as store:
            store.record_events([event])
    except UgroError as exc:
        click.echo(f"ugro: warning: not recorded in the history: {exc}", err=True)


def _tell(scheduler: Scheduler, action: str, node: str, *args: str) -> tuple[dict[str, Any], str]:
    """Drain or resume `node`; what happened (for JSON and history) and an error, if any."""
    from ugro.errors import SchedulerError

    answer = True
    try:
        if action == "drain":
            scheduler.drain(node, *args)
        else:
            answer = scheduler.resume(node)
    except SchedulerError as exc:
        return {"name": scheduler.name, "ok": False, "error": str(exc)}, str(exc)
    note = {"note": "drain not placed by ugro; left"} if answer is False else {}
    return {"name": scheduler.name, "ok": True, **note}, ""


def _known(cfg: Config, node: str) -> None:
    names = [n.name for n in cfg.nodes]
    if node not in names:
        raise click.UsageError(f"unknown node {node!r}; nodes: {', '.join(names)}")


@main.command()
@click.argument("node", required=False)
@click.option("--reason", help="Why NODE is cordoned (required); the scheduler shows it too.")
@click.option("--json", "as_json", is_flag=True, help="Print the result (or the cordons) as JSON.")
@click.pass_context
@errors_exit(1)
def cordon(ctx: click.Context, node: str | None, reason: str | None, as_json: bool) -> None:
    """Keep NODE out of the healthy set until `ugro uncordon`; without NODE, list cordons."""
    from ugro.cli.views import print_json
    from ugro.cli.views.cordons import print_cordons
    from ugro.store.cordons import Cordon
    from ugro.store.history_records import Event

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
    now = datetime.now(UTC)
    placed = Cordon(node, "manual", " ".join(reason.split()), now, user=_user())
    existing = store.cordon(placed, replace_ugro=True)
    if existing is not None and existing.by == "manual":
        if as_json:
            print_json({"node": node, "changed": False, "cordon": existing.to_json()})
        else:
            click.echo(f"{node} is already cordoned {existing.describe()}")
        return
    said, error = _tell(scheduler_for(cfg), "drain", node, placed.reason)
    detail = {**placed.to_json(), "scheduler": said}
    if existing is not None:
        detail["took_over"] = existing.to_json()
    _record(cfg, Event(now, node, "cordon", detail))
    if as_json:
        print_json({"node": node, "changed": True, **detail})
    else:
        click.echo(f"cordoned {node}: {placed.reason}")
        if existing is not None:
            click.echo(f"  (took over ugro's own cordon, {existing.reason}; it is yours to lift)")
    if error:
        fail(f"{node} is cordoned, but {said['name']} did not drain it: {error}", 1)


@main.command()
@click.argument("node")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
@errors_exit(1)
def uncordon(ctx: click.Context, node: str, as_json: bool) -> None:
    """Let NODE back into the healthy set, whoever cordoned it."""
    from ugro.cli.views import print_json
    from ugro.store.history_records import Event

    store = cordon_store()
    cfg = load_config(ctx)
    # A node removed from the config may still be cordoned: let it be lifted.
    if node not in store.read():
        _known(cfg, node)
    lifted = store.uncordon(node)
    if lifted is None:
        if as_json:
            print_json({"node": node, "changed": False, "cordon": None})
        else:
            click.echo(f"{node} is not cordoned")
        return
    said, error = _tell(scheduler_for(cfg), "resume", node)
    detail = {"by": "manual", "user": _user(), "lifted": lifted.to_json(), "scheduler": said}
    _record(cfg, Event(datetime.now(UTC), node, "uncordon", detail))
    if as_json:
        print_json({"node": node, "changed": True, **detail})
    else:
        click.echo(f"uncordoned {node} (was cordoned {lifted.describe()})")
        if "note" in said:
            click.echo(f"  {said['name']}: the drain was not placed by ugro; left as it is")
    if error:
        fail(f"{node} is uncordoned, but {said['name']} did not resume it: {error}", 1)
