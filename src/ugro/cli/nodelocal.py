"""`ugro check --local`: this machine checks itself, as Slurm's `HealthCheckProgram`.

The decisions are `ugro.fleet.nodelocal`'s; this module loads the config, calls it and
shows the outcome: the verdict's table (or JSON) on stdout, what was done with Slurm and
what could not be done on stderr, which slurmd logs when the check fails.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, NoReturn

import click

from ugro.cli.app import NoVerdictUsageError, load_config
from ugro.text import printable

if TYPE_CHECKING:
    from pathlib import Path

# node_exporter's textfile collector reads only files with this suffix.
TEXTFILE_SUFFIX = ".prom"


def check(  # noqa: PLR0913 - the options of `ugro check` it takes over
    ctx: click.Context,
    nodes: tuple[str, ...],
    *,
    local: bool,
    output: str,
    deep: bool,
    textfile: Path | None,
) -> NoReturn:
    """Check this machine, drain or resume it in Slurm, write the textfile; exit for slurmd."""
    from ugro.cli.views import print_json
    from ugro.cli.views import verdicts as view
    from ugro.fleet import nodelocal
    from ugro.verdict import report
    from ugro.verdict.rows import Row

    if not local:
        raise NoVerdictUsageError("--textfile goes with --local", ctx)
    if nodes:
        raise NoVerdictUsageError("--local checks this machine: name no nodes", ctx)
    if textfile is not None and textfile.is_dir():
        textfile /= "ugro.prom"
    if textfile is not None and textfile.suffix != TEXTFILE_SUFFIX:
        raise NoVerdictUsageError(
            f"--textfile {textfile}: node_exporter reads only *{TEXTFILE_SUFFIX} files", ctx
        )
    cfg = load_config(ctx)
    node, slurm_name = nodelocal.this_node(cfg, os.environ)
    if deep:
        node = node.with_deep()
    tell_slurm = cfg.scheduler == "slurm" or nodelocal.NODENAME_VAR in os.environ
    outcome = nodelocal.check(cfg, node, slurm_name, tell_slurm=tell_slurm, textfile=textfile)
    now = datetime.now(UTC)
    rows = [Row.of(outcome.verdict, now)]
    for action in outcome.actions:
        click.echo(printable(f"ugro: {action}"), err=True)
    for warning in outcome.warnings:
        click.echo(printable(f"ugro: warning: {warning}"), err=True)
    notes = [*outcome.actions, *outcome.warnings]
    if output == "json":
        document = report.document(rows, source="local", now=now, notes=notes)
        print_json({**document, "exit_code": outcome.exit_code})
    else:
        where = f"node-local check of {node.name}; config: {cfg.source or 'none'}"
        view.show(rows, output=output, source="local", now=now, notes=[], found=[], sources=where)
    sys.exit(outcome.exit_code)
