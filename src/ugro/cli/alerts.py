"""`ugro alerts` and `ugro alerts test`: what fires, and whether notifications get through."""

from __future__ import annotations

import sys

import click

from ugro.cli.app import errors_exit, fail, load_config, main, state_store
from ugro.text import printable


@main.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print the alerts as JSON.")
@click.pass_context
@errors_exit(1)
def alerts(ctx: click.Context, as_json: bool) -> None:
    """List firing and recently resolved alerts, and how delivery to each sink went."""
    if ctx.invoked_subcommand is not None:
        return
    from ugro.cli.views import alerts as view

    state = state_store().read()
    book = state.alerts if state and state.alerts else {}
    if as_json:
        from ugro.cli.views import print_json

        print_json(view.document(book))
    else:
        view.print_alerts(book)


@alerts.command(name="test")
@click.option("--sink", "sink_name", help="Only this sink.")
@click.pass_context
@errors_exit(1)
def alerts_test(ctx: click.Context, sink_name: str | None) -> None:
    """Send a test notification through each sink and say what happened."""
    import asyncio

    from ugro.alerts import trial

    cfg = load_config(ctx)
    configured = cfg.alerts.sinks
    if sink_name is not None:
        configured = [s for s in configured if s.name == sink_name]
        if not configured:
            names = ", ".join(s.name for s in cfg.alerts.sinks) or "none configured"
            fail(f"no sink named {sink_name!r}; sinks: {names}", 2)
    if not configured:
        fail("no sinks configured: add some under `alerts: sinks:` in cluster.yaml", 1)
    results = asyncio.run(trial.send_trial(configured, cfg.alerts.cluster))
    for name, error in results:
        # The error may quote what a receiver answered.
        click.echo(printable(f"{name}: {'delivered' if error is None else f'FAILED: {error}'}"))
    sys.exit(0 if all(error is None for _, error in results) else 1)
