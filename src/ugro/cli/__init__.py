"""The `ugro` command line: thin wrappers that load, call and show.

Heavy modules (asyncssh, pydantic, YAML, rich) are imported inside the commands that need
them, so `ugro health` starts instantly. Exit codes: `check` and `health` exit with the
Nagios code of the worst node, or 3 when no verdict is possible; other commands exit 0 on
success, 1 on failure, 2 on a usage error. No command prints a traceback.

Usage errors of `check` and `health` exit 3 too: to a Nagios-style caller, 2 would read as
"a node is down".
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ugro.errors import UgroError
from ugro.model import NodeStatus

if TYPE_CHECKING:
    from collections.abc import Callable

    from ugro.config import Config
    from ugro.recovery.scheduler import Scheduler
    from ugro.store.cordons import Cordon
    from ugro.store.history import Event
    from ugro.store.state import ClusterState
    from ugro.verdict.gating import Format, Gate

F = TypeVar("F", bound="Callable[..., Any]")

NO_VERDICT = 3


def _fail(message: str, code: int) -> None:
    click.echo(f"ugro: {message}", err=True)
    sys.exit(code)


def errors_exit(code: int) -> Callable[[F], F]:
    """Turn ugro's errors into one line on stderr and exit `code`; never a traceback."""

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:  # noqa: ANN401 - passes click's values through
            try:
                return command(*args, **kwargs)
            except click.ClickException:
                raise
            except UgroError as exc:
                _fail(str(exc).replace("\n", "\n  "), code)
            except KeyboardInterrupt:
                _fail("interrupted", 130)
            except Exception as exc:  # noqa: BLE001 - the promise is: never a traceback
                _fail(f"internal error: {type(exc).__name__}: {exc} (please report this)", code)

        return wrapper  # type: ignore[return-value]

    return decorate


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    envvar="UGRO_CONFIG",
    help="cluster.yaml to use [default: $UGRO_CONFIG, then ~/.config/ugro/cluster.yaml].",
)
@click.version_option(package_name="ugro", prog_name="ugro")
@click.pass_context
def main(ctx: click.Context, config_path: Path | None) -> None:
    """Tell which nodes of a GPU cluster can train, and why the others cannot."""
    logging.basicConfig(level=logging.WARNING, format="ugro: %(message)s", stream=sys.stderr)
    ctx.obj = config_path


def _load_config(ctx: click.Context) -> Config:
    from ugro import config

    return config.load(ctx.obj)


def _state_store() -> Any:  # noqa: ANN401 - StateStore, imported lazily
    from ugro import paths
    from ugro.store.state import StateStore

    return StateStore(paths.state_file())


def _cordon_store() -> Any:  # noqa: ANN401 - CordonStore, imported lazily
    from ugro.store.cordons import CordonStore

    return CordonStore()


class NoVerdictUsageError(click.UsageError):
    """A usage error of `check` or `health`."""

    exit_code = NO_VERDICT


class VerdictCommand(click.Command):
    """A command that reports health: its usage errors exit 3 (UNKNOWN), as a Nagios plugin's do."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,  # noqa: ANN401 - click's own signature
    ) -> click.Context:
        """Parse arguments; a usage error means no verdict."""
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            raise NoVerdictUsageError(exc.message, exc.ctx) from None


@main.command(cls=VerdictCommand)
@click.argument("nodes", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print the verdicts as JSON.")
@click.option(
    "--deep",
    is_flag=True,
    help="Also run the deep PyTorch probe (a verified matmul on every idle GPU).",
)
@click.pass_context
@errors_exit(NO_VERDICT)
def check(ctx: click.Context, nodes: tuple[str, ...], as_json: bool, deep: bool) -> None:
    """Check NODES now (all nodes when none are named), show and persist the verdicts."""
    from ugro import sweep as monitor
    from ugro.verdict import rows as report

    cfg = _load_config(ctx)
    known = {n.name: n for n in cfg.nodes}
    unknown = [n for n in nodes if n not in known]
    if unknown:
        _fail(
            f"unknown node {', '.join(map(repr, unknown))}; nodes: {', '.join(known)}", NO_VERDICT
        )
    chosen = [known[n] for n in nodes] if nodes else cfg.nodes
    if deep:
        chosen = [
            n.model_copy(
                update={
                    "deep": True,
                    "checks": [*n.checks, *([] if "deep" in n.checks else ["deep"])],
                }
            )
            for n in chosen
        ]
    store = _state_store()
    verdicts = monitor.run_checks(chosen, _last_checks(store))
    state = store.update(verdicts, keep=None if nodes else known)
    now = datetime.now(UTC)
    cordons = _cordon_store().read()
    rows = [report.Row.of(v, now, cordons=cordons) for v in verdicts]
    # Drift is a cluster finding: the nodes checked now against every configured node's
    # latest versions, not only against each other.
    found = report.findings(
        [report.Row.of(v, now) for name, v in state.nodes.items() if name in known]
    )
    if as_json:
        report.print_json(report.document(rows, source="check", now=now, found=found))
    else:
        where = (
            f"from {cfg.source}"
            if cfg.source
            else "no cluster.yaml, so this machine alone; `ugro init` writes one"
        )
        footer = [f"{report.summary_line(rows)}; {where}", *report.findings_text(found)]
        report.print_table(rows, footer="\n".join(footer))
    sys.exit(report.exit_code(rows))


def _last_checks(store: Any) -> dict[str, datetime]:  # noqa: ANN401 - StateStore, imported lazily
    """When each node was last checked, from the state file; none when it cannot be read."""
    from ugro.errors import StateError

    try:
        state = store.read()
    except StateError:
        return {}
    return {name: v.last_check for name, v in state.nodes.items()} if state else {}


@main.command(cls=VerdictCommand)
@click.option("--json", "as_json", is_flag=True, help="Print the verdicts as JSON.")
@errors_exit(NO_VERDICT)
def health(as_json: bool) -> None:
    """Show the last verdicts instantly, from the state file (no SSH)."""
    from ugro.verdict import rows as report

    store = _state_store()
    state = store.read()
    if state is None or not state.nodes:
        message = (
            "no health data yet: run `ugro check`, or start the monitor with `ugro daemon start`"
        )
        if as_json:
            report.print_json({**report.document([], source="state"), "error": message})
            sys.exit(NO_VERDICT)
        _fail(message, NO_VERDICT)
        return
    now = datetime.now(UTC)
    interval = state.daemon.interval_s if state.daemon else None
    cordons = _cordon_store().read()
    rows = [
        report.Row.of(v, now, state.stale_after_s, interval, cordons) for v in state.nodes.values()
    ]
    notes = [_monitor_note(state, now)] if any(r.status is NodeStatus.STALE for r in rows) else []
    found = report.findings(rows)
    if as_json:
        report.print_json(report.document(rows, source="state", now=now, notes=notes, found=found))
    else:
        footer = [report.summary_line(rows), *notes, *report.findings_text(found)]
        report.print_table(rows, footer="\n".join(footer))
    sys.exit(report.exit_code(rows))


def _monitor_note(state: ClusterState, now: datetime) -> str:
    """Why the state is stale: no monitor, a stopped or dead one, or one that is behind."""
    info = state.daemon
    start = "start it with `ugro daemon start`"
    if info is None:
        return f"verdicts are stale: no monitor keeps them fresh; {start}"
    if not info.running:
        stopped = info.last_sweep_at or info.started_at
        return (
            f"verdicts are stale: the monitor stopped after {stopped:%Y-%m-%d %H:%M:%S}Z; {start}"
        )
    try:
        os.kill(info.pid, 0)
    except ProcessLookupError:
        return f"verdicts are stale: the monitor (pid {info.pid}) died without stopping; {start}"
    except PermissionError:
        pass
    last = info.last_sweep_at or info.started_at
    behind = (now - last).total_seconds()
    return (
        f"verdicts are stale: the monitor (pid {info.pid}) is behind, last sweep {behind:.0f} s "
        f"ago with a {info.interval_s:g} s interval; see its log"
    )


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
        _fail(f"{path} already exists; edit it, or pass --force to overwrite it", 1)
    template = files("ugro").joinpath("data/cluster.yaml").read_text(encoding="utf-8")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template, encoding="utf-8")
    except OSError as exc:
        _fail(f"{path}: cannot write: {exc.strerror}", 1)
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
    click.echo(
        f"{target}: OK, {len(nodes)} worker{'s' if len(nodes) != 1 else ''}: "
        + ", ".join(n.name for n in nodes)
    )


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
    from ugro.daemon import loop as monitor_daemon

    sys.exit(monitor_daemon.run(ctx.obj, log_file=log_file, to_stderr=not no_stderr))


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
    from ugro.daemon import service
    from ugro.verdict import rows as report

    status = service.status_report()
    if as_json:
        report.print_json(status)
    else:
        service.print_status(status)
    sys.exit(0 if status["running"] else NO_VERDICT)


@daemon.command(name="install")
@click.pass_context
@errors_exit(1)
def daemon_install(ctx: click.Context) -> None:
    """Write and enable the systemd user unit ~/.config/systemd/user/ugro-monitor.service."""
    from ugro.daemon import service

    sys.exit(service.install(ctx.obj))


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
        _fail(f"{target}: cannot write: {exc.strerror}", 1)
    click.echo(f"wrote {target}")


@main.command()
@click.argument("node", required=False)
@click.option(
    "--since", default="24h", show_default=True, help="A span (30m, 24h, 7d) or an ISO time."
)
@click.option(
    "--check", "check_name", help="Also list this check's samples (status, value, duration)."
)
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
@click.option("--csv", "as_csv", is_flag=True, help="Print check samples as CSV.")
@errors_exit(1)
def history(
    node: str | None, since: str, check_name: str | None, as_json: bool, as_csv: bool
) -> None:
    """Show NODE's (or every node's) status changes, summary and score over time."""
    from ugro import paths
    from ugro.cli import timeline
    from ugro.store.history import opened
    from ugro.verdict import rows as report

    now = datetime.now(UTC)
    try:
        start = timeline.parse_since(since, now)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    path = paths.history_file()
    if not path.exists():
        _fail(f"no history yet ({path}): the monitor records it; run `ugro daemon start`", 1)
    with opened(path) as store:
        if node is not None and node not in store.nodes():
            known = ", ".join(store.nodes()) or "none"
            _fail(f"no history for node {node!r}; known: {known}", 1)
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
        report.print_json(timeline.document(period))
    else:
        timeline.print_report(period)


CHART_POINTS = 20


@main.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print the alerts as JSON.")
@click.pass_context
@errors_exit(1)
def alerts(ctx: click.Context, as_json: bool) -> None:
    """List firing and recently resolved alerts, and how delivery to each sink went."""
    if ctx.invoked_subcommand is not None:
        return
    from ugro.cli import alertview

    state = _state_store().read()
    book = state.alerts if state and state.alerts else {}
    if as_json:
        from ugro.verdict import rows as report

        report.print_json(alertview.document(book))
    else:
        alertview.print_alerts(book)


@alerts.command(name="test")
@click.option("--sink", "sink_name", help="Only this sink.")
@click.pass_context
@errors_exit(1)
def alerts_test(ctx: click.Context, sink_name: str | None) -> None:
    """Send a test notification through each sink and say what happened."""
    import asyncio

    from ugro.cli import alertview

    cfg = _load_config(ctx)
    configured = cfg.alerts.sinks
    if sink_name is not None:
        configured = [s for s in configured if s.name == sink_name]
        if not configured:
            names = ", ".join(s.name for s in cfg.alerts.sinks) or "none configured"
            _fail(f"no sink named {sink_name!r}; sinks: {names}", 2)
    if not configured:
        _fail("no sinks configured: add some under `alerts: sinks:` in cluster.yaml", 1)
    results = asyncio.run(alertview.send_tests(configured, cfg.alerts.cluster))
    for name, error in results:
        click.echo(f"{name}: {'delivered' if error is None else f'FAILED: {error}'}")
    sys.exit(0 if all(error is None for _, error in results) else 1)


def _span(_ctx: click.Context, param: click.Parameter, value: str) -> float:
    """An option's span of time (30s, 5m, 1h, or plain seconds) in seconds."""
    from ugro.cli import timeline

    try:
        return timeline.span_seconds(value)
    except ValueError as exc:
        name = param.opts[0] if param.opts else param.name
        raise click.BadParameter(f"{name}: {exc}", param=param) from None


@main.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["plain", "torchrun", "deepspeed", "mpi", "json"]),
    default="plain",
    show_default=True,
    help="plain: one host a line; deepspeed, mpi: `host slots=GPUS` hostfile lines; torchrun: "
    "its --nnodes/--nproc-per-node/--rdzv-* arguments; json: a list.",
)
@click.option(
    "--min-score",
    type=click.FloatRange(0, 100),
    default=0,
    show_default=True,
    help="Leave out nodes scoring below this.",
)
@click.pass_context
@errors_exit(1)
def hosts(ctx: click.Context, fmt: Format, min_score: float) -> None:
    """Print the usable nodes from the state file (no SSH), for a launcher's host list.

    Usable: healthy or degraded, not stale, not cordoned, score at least --min-score. The
    nodes left out, and why, go to stderr. Exits 1 when no node is usable.
    """
    import socket

    from ugro.store.cordons import CordonStore
    from ugro.verdict import gating

    cfg = _load_config(ctx)
    state = _state_store().read()
    if state is None or not state.nodes:
        _fail(
            "no health data yet: run `ugro check`, or start the monitor with `ugro daemon start`",
            1,
        )
        return
    interval = state.daemon.interval_s if state.daemon else None
    found = gating.gates(
        cfg.nodes,
        state.nodes,
        CordonStore().read(),
        now=datetime.now(UTC),
        stale_after_s=state.stale_after_s,
        interval_s=interval,
        min_score=min_score,
        hostname=socket.gethostname(),
    )
    for gate in found:
        if not gate.usable:
            click.echo(f"ugro: left out {gate.name}: {'; '.join(gate.reasons)}", err=True)
    usable = [g for g in found if g.usable]
    if not usable:
        _fail(f"no usable node among {len(found)}: see above; `ugro health` shows more", 1)
        return
    master = gating.rendezvous(usable, cfg.nodes[0].master, {n.ip for n in cfg.nodes})
    text, notes = gating.render(usable, fmt, master)
    for note in notes:
        click.echo(f"ugro: {note}", err=True)
    click.echo(text)


@main.command(
    cls=VerdictCommand,
    # Everything from CMD on is CMD's own: `ugro preflight -- torchrun --nnodes=2 train.py`.
    context_settings={"allow_interspersed_args": False},
)
@click.option(
    "--nodes",
    "needed",
    type=click.IntRange(min=1),
    help="Nodes the job needs [default: every configured node].",
)
@click.option(
    "--max-age",
    default="60s",
    callback=_span,
    metavar="SPAN",
    show_default=True,
    help="Reuse verdicts younger than this (30s, 5m, 1h, seconds); check the other nodes now.",
)
@click.option(
    "--min-score",
    type=click.FloatRange(0, 100),
    default=0,
    show_default=True,
    help="Nodes scoring below this are not usable.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the decision as JSON.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED, metavar="[-- CMD...]")
@click.pass_context
@errors_exit(NO_VERDICT)
def preflight(  # noqa: PLR0913, PLR0917 - one parameter per option, as click passes them
    ctx: click.Context,
    needed: int | None,
    max_age: float,
    min_score: float,
    as_json: bool,
    command: tuple[str, ...],
) -> None:
    """Exit 0 when enough nodes can train now, 2 naming each node that cannot and why.

    Verdicts younger than --max-age are reused; every other node that is not cordoned is
    checked now, and the results persisted. With `-- CMD...`, CMD replaces ugro (same pid,
    signals, exit code) only when enough nodes are usable, with UGRO_HOSTS (the selected
    nodes' addresses, best score first), UGRO_NNODES, UGRO_MASTER_ADDR and UGRO_MASTER_PORT
    in its environment; otherwise CMD does not run and preflight exits 2.
    """
    import socket

    from ugro.store.cordons import CordonStore
    from ugro.verdict import gating

    cfg = _load_config(ctx)
    store = _state_store()
    state = store.read()
    cordoned = CordonStore().read()
    started = datetime.now(UTC)
    verdicts = dict(state.nodes) if state else {}
    stale = [
        node
        for node in cfg.nodes
        if node.name not in cordoned
        and (
            node.name not in verdicts
            or (started - verdicts[node.name].last_check).total_seconds() > max_age
        )
    ]
    if stale:
        from ugro import sweep as monitor

        checked = monitor.run_checks(stale)
        store.update(checked, keep=[n.name for n in cfg.nodes])
        verdicts.update((v.name, v) for v in checked)
    found = gating.gates(
        cfg.nodes,
        verdicts,
        cordoned,
        # Judged as of the start: what was just checked is fresh, whatever --max-age is.
        now=started,
        stale_after_s=max_age,
        min_score=min_score,
        hostname=socket.gethostname(),
    )
    count = needed or len(cfg.nodes)
    selected = gating.select(found, count) if count <= len(cfg.nodes) else None
    checked_now = [n.name for n in stale]
    env = (
        gating.launch_env(
            selected, gating.rendezvous(selected, cfg.nodes[0].master, {n.ip for n in cfg.nodes})
        )
        if selected
        else None
    )
    # With CMD, stdout is the job's: whatever preflight says goes to stderr.
    report_to = sys.stderr if command else sys.stdout
    if as_json:
        _print_preflight_json(found, selected, count, max_age, checked_now, env, report_to)
    else:
        _print_preflight(
            found,
            selected=selected,
            needed=count,
            configured=len(cfg.nodes),
            checked_now=checked_now,
            out=report_to,
        )
    if selected is None:
        if command:
            click.echo(f"ugro: not running {command[0]}: too few usable nodes", err=True)
        sys.exit(2)
    if not command:
        sys.exit(0)
    _exec(list(command), {**os.environ, **(env or {})})


def _print_preflight(  # noqa: PLR0913 - the parts of one report
    found: list[Gate],
    *,
    selected: list[Gate] | None,
    needed: int,
    configured: int,
    checked_now: list[str],
    out: Any,  # noqa: ANN401 - a text stream
) -> None:
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
    click.echo("\n".join(lines), file=out)


def _nodes(count: int) -> str:
    return f"{count} node{'s' if count != 1 else ''}"


def _print_preflight_json(  # noqa: PLR0913, PLR0917 - the parts of one report
    found: list[Gate],
    selected: list[Gate] | None,
    needed: int,
    max_age: float,
    checked_now: list[str],
    env: dict[str, str] | None,
    out: Any,  # noqa: ANN401 - a text stream
) -> None:
    import json

    from ugro.verdict import rows as report

    document = {
        "schema_version": report.JSON_SCHEMA_VERSION,
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
    click.echo(json.dumps(document, indent=2, ensure_ascii=False), file=out)


def _exec(argv: list[str], env: dict[str, str]) -> None:
    """Become `argv`: its pid, signals and exit code are the job's; 127/126 as a shell says."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(argv[0], argv, env)  # noqa: S606 - the operator's own command, no shell
    except FileNotFoundError:
        _fail(f"{argv[0]}: command not found", 127)
    except PermissionError:
        _fail(f"{argv[0]}: permission denied", 126)
    except OSError as exc:
        _fail(f"{argv[0]}: cannot run: {exc.strerror}", 126)


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


def _print_cordons(cordons: dict[str, Cordon], as_json: bool) -> None:
    from ugro.verdict import rows as report

    listed = sorted(cordons.values(), key=lambda c: c.node)
    if as_json:
        report.print_json({"schema_version": 1, "cordons": [c.to_json() for c in listed]})
        return
    if not listed:
        click.echo("no node is cordoned")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("NODE", "BY", "SINCE (UTC)", "REASON"):
        table.add_column(column, no_wrap=column != "REASON")
    for c in listed:
        by = (
            f"{c.user} (manual)"
            if c.by == "manual"
            else "ugro, escalated"
            if c.escalated
            else "ugro"
        )
        table.add_row(c.node, by, f"{c.since:%Y-%m-%d %H:%M:%S}", c.reason)
    Console(highlight=False).print(table)


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
    from ugro.store.cordons import Cordon
    from ugro.store.history import Event
    from ugro.verdict import rows as report

    store = _cordon_store()
    if node is None:
        if reason is not None:
            raise click.UsageError("--reason needs a NODE to cordon")
        _print_cordons(store.read(), as_json)
        return
    if reason is None or not reason.strip():
        raise click.UsageError("--reason is required: say why the node is cordoned")
    cfg = _load_config(ctx)
    _known(cfg, node)
    now = datetime.now(UTC)
    placed = Cordon(node, "manual", " ".join(reason.split()), now, user=_user())
    existing = store.cordon(placed, replace_ugro=True)
    if existing is not None and existing.by == "manual":
        if as_json:
            report.print_json({"node": node, "changed": False, "cordon": existing.to_json()})
        else:
            click.echo(f"{node} is already cordoned {existing.describe()}")
        return
    said, error = _tell(scheduler_for(cfg), "drain", node, placed.reason)
    detail = {**placed.to_json(), "scheduler": said}
    if existing is not None:
        detail["took_over"] = existing.to_json()
    _record(cfg, Event(now, node, "cordon", detail))
    if as_json:
        report.print_json({"node": node, "changed": True, **detail})
    else:
        click.echo(f"cordoned {node}: {placed.reason}")
        if existing is not None:
            click.echo(f"  (took over ugro's own cordon, {existing.reason}; it is yours to lift)")
    if error:
        _fail(f"{node} is cordoned, but {said['name']} did not drain it: {error}", 1)


@main.command()
@click.argument("node")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
@errors_exit(1)
def uncordon(ctx: click.Context, node: str, as_json: bool) -> None:
    """Let NODE back into the healthy set, whoever cordoned it."""
    from ugro.store.history import Event
    from ugro.verdict import rows as report

    store = _cordon_store()
    cfg = _load_config(ctx)
    # A node removed from the config may still be cordoned: let it be lifted.
    if node not in store.read():
        _known(cfg, node)
    lifted = store.uncordon(node)
    if lifted is None:
        if as_json:
            report.print_json({"node": node, "changed": False, "cordon": None})
        else:
            click.echo(f"{node} is not cordoned")
        return
    said, error = _tell(scheduler_for(cfg), "resume", node)
    detail = {"by": "manual", "user": _user(), "lifted": lifted.to_json(), "scheduler": said}
    _record(cfg, Event(datetime.now(UTC), node, "uncordon", detail))
    if as_json:
        report.print_json({"node": node, "changed": True, **detail})
    else:
        click.echo(f"uncordoned {node} (was cordoned {lifted.describe()})")
        if "note" in said:
            click.echo(f"  {said['name']}: the drain was not placed by ugro; left as it is")
    if error:
        _fail(f"{node} is uncordoned, but {said['name']} did not resume it: {error}", 1)
