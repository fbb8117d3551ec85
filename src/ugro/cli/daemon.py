"""`ugro daemon run|start|stop|status|install`: the monitor, in the foreground or managed.

`status` exits 0 when the monitor runs and 3 when it does not; the others 0 or 1.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ugro.cli.app import NO_VERDICT, errors_exit, main


@main.group()
def daemon() -> None:
    """Run and control the monitor daemon."""


@daemon.command(name="run")
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Log here [default: monitor.log in $XDG_STATE_HOME/ugro].",
)
@click.option("--no-stderr", is_flag=True, help="Log only to the file, not to stderr.")
@click.pass_context
@errors_exit(1)
def daemon_run(ctx: click.Context, log_file: Path | None, no_stderr: bool) -> None:
    """Run the monitor in the foreground (what systemd's ExecStart runs)."""
    from ugro.daemon import loop

    sys.exit(loop.run(ctx.obj, log_file=log_file, to_stderr=not no_stderr))


@daemon.command(name="start")
@click.pass_context
@errors_exit(1)
def daemon_start(ctx: click.Context) -> None:
    """Start the monitor: the systemd user unit if installed, else a detached process."""
    from ugro.daemon import service

    sys.exit(service.start(ctx.obj))


@daemon.command(name="stop")
@errors_exit(1)
def daemon_stop() -> None:
    """Stop the monitor (SIGTERM, then SIGKILL after 10 s)."""
    from ugro.daemon import service

    sys.exit(service.stop())


@daemon.command(name="status")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@errors_exit(NO_VERDICT)
def daemon_status(as_json: bool) -> None:
    """Say whether the monitor runs; exit 0 when it does, 3 when it does not."""
    from ugro.cli.views import print_json
    from ugro.cli.views.daemon import print_status
    from ugro.daemon import service

    status = service.status_report()
    if as_json:
        print_json(status)
    else:
        print_status(status)
    sys.exit(0 if status["running"] else NO_VERDICT)


@daemon.command(name="install")
@click.pass_context
@errors_exit(1)
def daemon_install(ctx: click.Context) -> None:
    """Write and enable the systemd user unit ~/.config/systemd/user/ugro-monitor.service."""
    from ugro.daemon import service

    sys.exit(service.install(ctx.obj))
