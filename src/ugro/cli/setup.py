"""`ugro init` and `ugro config validate`: writing cluster.yaml, and checking it."""

from __future__ import annotations

from pathlib import Path

import click

from ugro.cli.app import errors_exit, fail, main
from ugro.text import printable


@main.command()
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@click.pass_context
@errors_exit(1)
def init(ctx: click.Context, force: bool) -> None:
    """Write a commented cluster.yaml template to edit."""
    from importlib.resources import files

    from ugro import paths

    path, _ = paths.resolve_config(ctx.obj)
    if path.exists() and not force:
        fail(f"{path} already exists; edit it, or pass --force to overwrite it", 1)
    template = files("ugro").joinpath("data/cluster.yaml").read_text(encoding="utf-8")
    from ugro.store import atomicfile

    # 0600: the file will hold alert tokens. Written by rename, so a link stays untouched.
    atomicfile.write(path, template.encode())
    click.echo(f"wrote {path}; edit the workers, then run `ugro config validate` and `ugro check`")


@main.group(name="config")
def config_group() -> None:
    """Inspect cluster.yaml."""


@config_group.command()
@click.argument("path", required=False, type=click.Path(dir_okay=True, path_type=Path))
@click.pass_context
@errors_exit(1)
def validate(ctx: click.Context, path: Path | None) -> None:
    """Check PATH (default: the config ugro would use) and report every problem."""
    from ugro import config, paths

    target = path or paths.resolve_config(ctx.obj)[0]
    nodes = config.parse_file(target).nodes()
    # Names as the file spells them: printable.
    click.echo(
        printable(
            f"{target}: OK, {len(nodes)} worker{'s' if len(nodes) != 1 else ''}: "
            + ", ".join(n.name for n in nodes)
        )
    )


# `config show` and `config path` live in a module of their own; importing it adds them to the
# group above (it imports `config_group` from here, so it comes last).
from ugro.cli import configuration  # noqa: E402, F401
