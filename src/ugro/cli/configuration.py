"""`ugro config show` and `ugro config path`: which cluster.yaml ugro uses, and what it means.

They join the `config` group of `ugro.cli.setup` (beside `config validate`).
"""

from __future__ import annotations

import click

from ugro.cli.app import errors_exit, fail, load_config
from ugro.cli.setup import config_group
from ugro.text import printable


@config_group.command()
@click.option("--json", "as_json", is_flag=True, help="Print the settings as JSON.")
@click.pass_context
@errors_exit(1)
def show(ctx: click.Context, as_json: bool) -> None:
    """Print the effective settings: every default filled in, each worker resolved.

    Secrets are masked: sink URLs show only their scheme and host, header values and a sink
    command's arguments are hidden.
    """
    from ugro.cli.views import configuration as view

    document = view.document(load_config(ctx))
    if as_json:
        from ugro.cli.views import print_json

        print_json(document)
        return
    if document["source"] is None:
        click.echo("# no cluster.yaml: the embedded default (this machine, checked without SSH)")
    click.echo(view.as_yaml({k: v for k, v in document.items() if k != "schema_version"}), nl=False)


@config_group.command()
@click.pass_context
@errors_exit(1)
def path(ctx: click.Context) -> None:
    """Print the path of the cluster.yaml ugro uses, and say where that choice came from.

    --config wins, then $UGRO_CONFIG, then the default location, ~/.config/ugro/cluster.yaml
    ($UGRO_HOME or $XDG_CONFIG_HOME move it). Exits 1 when a file named by --config or
    $UGRO_CONFIG is missing.
    """
    from ugro import paths

    where, named = paths.resolve_config(ctx.obj)
    # The path as the operator or the environment spelt it: printable.
    click.echo(printable(str(where)))
    given = ctx.find_root().get_parameter_source("config_path")
    origin = (
        "the default location"
        if not named
        else "$UGRO_CONFIG"
        if given is click.core.ParameterSource.ENVIRONMENT
        else "--config"
    )
    if where.exists():
        click.echo(printable(f"ugro: from {origin}"), err=True)
    elif named:
        fail(f"from {origin}, but there is no such file", 1)
    else:
        click.echo(
            f"ugro: from {origin}; there is no file there, so ugro checks this machine alone "
            "(no SSH); `ugro init` writes one",
            err=True,
        )
