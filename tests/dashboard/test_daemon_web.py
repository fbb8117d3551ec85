"""What the daemon serves over HTTP: the dashboard beside /metrics, or /metrics alone.

`ugro.daemon.web.serve` in this process, on loopback ports, with the config's exporter
settings: the dashboard takes /, /metrics stays, and turning the dashboard off gives / back to
the exporter's index.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
from typing import TYPE_CHECKING

import pytest

from ugro import paths
from ugro.config import Config, ExporterSettings
from ugro.daemon import web
from ugro.errors import UgroError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ugro.dashboard.app import Dashboard
    from ugro.httpserver import BoundedServer


def free_port() -> int:
    """A port nothing listens on now, on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serving(settings: ExporterSettings) -> Iterator[tuple[BoundedServer, Dashboard | None]]:
    """The daemon's HTTP server for `settings`, stopped afterwards."""
    cfg = Config(nodes=[], source=None, exporter=settings)
    server, dashboard = web.serve(cfg, paths.state_file(), lambda: ["gpu1"])
    try:
        yield server, dashboard
    finally:
        server.shutdown()
        server.server_close()
        if dashboard is not None:
            dashboard.close()


def get(server: BoundedServer, path: str) -> tuple[int, str, bytes]:
    """Status, content type and body of GET `path`."""
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type") or "", response.read()
    finally:
        conn.close()


def test_dashboard_beside_metrics() -> None:
    """By default / is the dashboard and /metrics the exposition, on one port."""
    with serving(ExporterSettings(port=free_port())) as (server, dashboard):
        assert dashboard is not None
        status, kind, body = get(server, "/")
        assert (status, kind) == (200, "text/html; charset=utf-8")
        assert b"dashboard.js" in body
        status, _, body = get(server, "/metrics")
        assert status == 200
        assert b"ugro_build_info" in body
        status, _, body = get(server, "/api/v1/overview")
        assert status == 200
        assert b'"gpu1"' in body


def test_dashboard_off_leaves_the_exporter_index() -> None:
    """`exporter.dashboard: false` serves /metrics and the exporter's plain index alone."""
    with serving(ExporterSettings(port=free_port(), dashboard=False)) as (server, dashboard):
        assert dashboard is None
        assert get(server, "/")[2] == b"ugro exporter: the metrics are at /metrics\n"
        assert get(server, "/api/v1/health")[0] == 404


def test_taken_port_is_a_clear_error() -> None:
    """A port in use stops the start with a message naming the setting to change."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UgroError, match=r"set exporter\.port"):
            web.serve(
                Config(nodes=[], source=None, exporter=ExporterSettings(port=port)),
                paths.state_file(),
                list,
            )
