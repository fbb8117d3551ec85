"""`ugro history`: status changes, per-node summaries and scores over time, from history.db."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from ugro.cli.app import errors_exit, fail, load_config, main
from ugro.cli.completion import complete_nodes

# Points in each node's score chart, whatever the span.
CHART_POINTS = 20


@main.command()
@click.argument("node", required=False, shell_complete=complete_nodes)
@click.option(
    "--since", default="24h", show_default=True, help="A span (30m, 24h, 7d) or an ISO time."
)
@click.option(
    "--check", "check_name", help="Also list this check's samples (status, value, duration)."
)
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
@click.option("--csv", "as_csv", is_flag=True, help="Print check samples as CSV.")
@click.pass_context
@errors_exit(1)
def history(  # noqa: PLR0913, PLR0917 - one parameter per option, as click passes them
    ctx: click.Context,
    node: str | None,
    since: str,
    check_name: str | None,
    as_json: bool,
    as_csv: bool,
) -> None:
    """Show NODE's (or every node's) status changes, summary and score over time."""
    from ugro.cli.spans import parse_since
    from ugro.cli.views import print_json, timeline
    from ugro.store.history import opened, path_for

    now = datetime.now(UTC)
    try:
        start = parse_since(since, now)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from exc
    # Where the daemon writes it: `history.path` when the config sets one.
    path = path_for(load_config(ctx).history)
    if not path.exists():
        fail(f"no history yet ({path}): the monitor records it; run `ugro daemon start`", 1)
    with opened(path) as store:
        if node is not None and node not in store.nodes():
            known = ", ".join(store.nodes()) or "none"
            fail(f"no history for node {node!r}; known: {known}", 1)
        if as_csv:
            timeline.write_csv(store.check_rows(node, check_name, start))
            return
        summaries = store.summaries(node, start, now)
        period = timeline.Period(
            since=start,
            until=now,
            transitions=store.transitions(node, start),
            summaries=summaries,
            charts={
                s.node: store.score_series(s.node, start, now, CHART_POINTS) for s in summaries
            },
            checks=list(store.check_rows(node, check_name, start)) if check_name else [],
            events=store.events(node, start),
        )
    if as_json:
        print_json(timeline.document(period))
    else:
        timeline.print_report(period)
