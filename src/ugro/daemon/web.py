"""What the daemon serves over HTTP: /metrics, and the dashboard beside it (docs/dashboard.md).

Both share the exporter's address and port and `ugro.httpserver`'s bounded threads. The
dashboard is left out, with a warning that says why, where it would be open to the network
without a token.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ugro import exporter, httpserver, paths
from ugro.daemon.service import stale_note
from ugro.dashboard import access
from ugro.dashboard.app import Dashboard
from ugro.errors import UgroError
from ugro.store.history import path_for

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from ugro.config import Config
    from ugro.httpserver import BoundedServer

log = logging.getLogger(__name__)


def serve(
    cfg: Config, state_path: Path, configured: Callable[[], Sequence[str]]
) -> tuple[BoundedServer, Dashboard | None]:
    """Start serving; the server and its dashboard (None when not served).

    `configured` names the nodes of the running config (it changes on reload). Raises
    UgroError when the port cannot be bound.
    """
    settings = cfg.exporter
    pages = exporter.pages(state_path)
    dashboard = None
    refused = access.refusal(settings.address, settings.token) if settings.dashboard else None
    if refused:
        log.warning("%s", refused)
    elif settings.dashboard:
        dashboard = Dashboard(
            state_path=state_path,
            cordons_path=paths.cordons_file(),
            history_path=path_for(cfg.history) if cfg.history.enabled else None,
            configured=configured,
            source="daemon",
            token=settings.token,
            stale_note=stale_note,
        )
        del pages["/"]  # the dashboard's overview takes the exporter's index page
    try:
        server = httpserver.serve(settings.address, settings.port, pages, dashboard)
    except OSError as exc:
        if dashboard is not None:
            dashboard.close()
        raise UgroError(
            f"cannot serve metrics on {settings.address}:{settings.port}: {exc.strerror}; "
            "set exporter.port in cluster.yaml, or exporter.enabled: false"
        ) from exc
    host = f"[{settings.address}]" if ":" in settings.address else settings.address
    base = f"http://{host}:{settings.port}"
    log.info("serving metrics on %s/metrics", base)
    if dashboard is not None:
        log.info("serving the dashboard on %s/", base)
    return server, dashboard
