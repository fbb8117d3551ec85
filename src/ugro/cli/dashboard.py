"""`ugro dashboard`: the running daemon's dashboard URL, or the dashboard served from the state.

With a daemon serving it, print (or `--open`) its URL. `--serve` serves the same pages here,
read-only, from the state files (for when no daemon runs: its verdicts show as stale when they
are), until interrupted. Exit 0 on success, 1 when there is no dashboard to show or it cannot
be served, 2 on a usage error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ugro.cli.app import errors_exit, fail, load_config, main

if TYPE_CHECKING:
    from ugro.config import Config

# How long to wait for the daemon's dashboard to answer: it runs on this machine or nowhere.
PROBE_TIMEOUT_S = 2.0


@main.command()
@click.option("--open", "open_browser", is_flag=True, help="Open the URL in a web browser.")
@click.option(
    "--serve",
    is_flag=True,
    help="Serve the dashboard here from the state files, read-only, until interrupted.",
)
@click.option("--address", help="With --serve: the address to listen on (default: exporter's).")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    help="With --serve: the port to listen on (default: exporter's; 0 picks a free one).",
)
@click.pass_context
@errors_exit(1)
def dashboard(
    ctx: click.Context, open_browser: bool, serve: bool, address: str | None, port: int | None
) -> None:
    """Print the URL of the daemon's dashboard, or serve it from the state files (--serve)."""
    cfg = load_config(ctx)
    settings = cfg.exporter
    if not serve:
        if address is not None or port is not None:
            fail("--address and --port go with --serve", 2)
        url = _url(settings.address, settings.port)
        why = _probe(url)
        if why is not None:
            fail(
                f"no dashboard at {url}: {why}; start the monitor with `ugro daemon start`, "
                "or serve the dashboard from the state files with `ugro dashboard --serve`",
                1,
            )
        _show(url, settings.token is not None, open_browser=open_browser)
        return
    _serve_here(
        cfg, address or settings.address, settings.port if port is None else port, open_browser
    )


def _url(address: str, port: int) -> str:
    """The URL for a client on this machine: a wildcard address is reached on loopback."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(address, address)  # noqa: S104 - mapped, not bound
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def _probe(url: str) -> str | None:
    """None when the dashboard answers at `url` (401 too: it asks for its token); else why not."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url + "static/favicon.svg", timeout=PROBE_TIMEOUT_S):  # noqa: S310 - http URL built above
            return None
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            return None
        return f"it answers {exc.code} (a monitor without the dashboard, or another program)"
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"nothing answers ({reason})"


def _show(url: str, token: bool, *, open_browser: bool) -> None:
    click.echo(url)
    if token:
        click.echo("it asks for exporter.token: open it once as URL?token=TOKEN", err=True)
    if open_browser:
        import webbrowser

        if not webbrowser.open(url):
            click.echo("no web browser found here: open the URL yourself", err=True)


def _serve_here(cfg: Config, address: str, port: int, open_browser: bool) -> None:
    """Serve the dashboard from the state files until interrupted."""
    import threading

    from ugro import httpserver, paths
    from ugro.daemon.service import stale_note
    from ugro.dashboard import access
    from ugro.dashboard.app import Dashboard
    from ugro.store.history import path_for

    token = cfg.exporter.token
    refused = access.refusal(address, token)
    if refused:
        fail(refused.replace("exporter.address", "--address"), 1)
    names = tuple(n.name for n in cfg.nodes)
    app = Dashboard(
        state_path=paths.state_file(),
        cordons_path=paths.cordons_file(),
        history_path=path_for(cfg.history) if cfg.history.enabled else None,
        configured=lambda: names,
        source="state files",
        token=token,
        stale_note=stale_note,
    )
    try:
        server = httpserver.serve(address, port, {}, app)
    except OSError as exc:
        app.close()
        fail(
            f"cannot serve the dashboard on {address}:{port}: {exc.strerror}; "
            "choose another with --port (a running monitor may hold it: `ugro dashboard` "
            "prints its URL)",
            1,
        )
    url = _url(address, server.server_address[1])
    click.echo(f"serving the dashboard read-only from the state files at {url}")
    click.echo("stop with Ctrl-C", err=True)
    if open_browser:
        _show(url, token is not None, open_browser=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        click.echo("stopped", err=True)
    finally:
        server.shutdown()
        server.server_close()
        app.close()
