"""`ugro metrics`: the Prometheus exposition of the last verdicts, printed or written."""

from __future__ import annotations

from pathlib import Path

import click

from ugro.cli.app import errors_exit, fail, main


@main.command()
@click.option(
    "--textfile",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write ugro.prom here, atomically, for node_exporter's textfile collector.",
)
@errors_exit(1)
def metrics(directory: Path | None) -> None:
    """Print the Prometheus metrics of the last verdicts (what the daemon serves)."""
    from prometheus_client import generate_latest, write_to_textfile

    from ugro import exporter, paths

    registry = exporter.registry(paths.state_file())
    if directory is None:
        click.echo(generate_latest(registry).decode(), nl=False)
        return
    target = directory / "ugro.prom"
    try:
        write_to_textfile(str(target), registry)
    except OSError as exc:
        fail(f"{target}: cannot write: {exc.strerror}", 1)
    click.echo(f"wrote {target}")
