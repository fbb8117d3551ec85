"""What `ugro preflight` says: ready or not, the nodes selected, and why the others are out."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, TextIO

import click

from ugro.cli.views import dumps
from ugro.text import printable
from ugro.verdict.report import JSON_SCHEMA_VERSION

if TYPE_CHECKING:
    from ugro.verdict.gating import Gate


def print_preflight(  # noqa: PLR0913 - the parts of one report
    found: list[Gate],
    *,
    selected: list[Gate] | None,
    needed: int,
    configured: int,
    checked_now: list[str],
    out: TextIO,
) -> None:
    """The decision for a person: the selection or the shortfall, then every node left out."""
    usable = [g for g in found if g.usable]
    lines = []
    if selected is not None:
        lines.append(
            f"preflight: ready: {len(selected)} of {len(usable)} usable nodes selected "
            f"({needed} needed, {configured} configured)"
        )
        lines.extend(
            f"  {g.name}  {g.address}  {g.gpus} GPU{'s' if g.gpus != 1 else ''}  "
            f"score {g.score or 0:.0f}  {g.status.value}"
            for g in selected
        )
    else:
        why = (
            f"cluster.yaml has only {_nodes(configured)}"
            if needed > configured
            else f"{len(usable)} usable"
        )
        lines.append(f"preflight: NOT ready: {_nodes(needed)} needed, {why}")
        if usable:
            lines.append("usable: " + ", ".join(g.name for g in usable))
    out_of_use = [g for g in found if not g.usable]
    if out_of_use:
        lines.append("not usable:")
        lines.extend(f"  {g.name}: {'; '.join(g.reasons)}" for g in out_of_use)
    skipped = sum(
        1
        for g in found
        if g.name not in checked_now and any(r.startswith("cordoned") for r in g.reasons)
    )
    reused = len(found) - len(checked_now) - skipped
    lines.append(
        f"checked now: {', '.join(checked_now) or 'none'}; {reused} fresh "
        f"verdict{'s' if reused != 1 else ''} reused"
        + (f"; {skipped} cordoned, not checked" if skipped else "")
    )
    # One line each, whatever the reasons quote (check messages, cordon reasons).
    click.echo("\n".join(map(printable, lines)), file=out)


def _nodes(count: int) -> str:
    return f"{count} node{'s' if count != 1 else ''}"


def print_preflight_json(  # noqa: PLR0913, PLR0917 - the parts of one report
    found: list[Gate],
    selected: list[Gate] | None,
    needed: int,
    max_age: float,
    checked_now: list[str],
    env: dict[str, str] | None,
    out: TextIO,
) -> None:
    """The decision for a program: the `--json` document of `ugro preflight`."""
    document = {
        "schema_version": JSON_SCHEMA_VERSION,
        "generated_at": datetime.now(UTC).isoformat(),
        "ready": selected is not None,
        "exit_code": 0 if selected is not None else 2,
        "needed": needed,
        "usable": sum(g.usable for g in found),
        "max_age_s": max_age,
        "checked_now": checked_now,
        "selected": [g.to_json() for g in selected or []],
        "env": env,
        "nodes": [g.to_json() for g in found],
    }
    click.echo(dumps(document), file=out)
