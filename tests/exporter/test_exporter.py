"""The exporter in this process: hostile state files, and the daemon's bounded HTTP server.

A node whose data cannot be read or rendered is left out and counted, and the others are
served with 200; the server answers only GET and HEAD of its pages, keeps its threads to a
fixed pool however many clients connect, and drops a client that never finishes its request.
"""

from __future__ import annotations

import dataclasses
import gzip
import http.client
import select
import socket
import threading
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from conftest import wait_for
from hostile import HOSTILE, HUGE, HUGE_DISK, Entry, healthy, write_state
from ugro import cli, exporter, httpserver, paths
from ugro.model import DiskSpace, GpuMetrics
from ugro.store.state import ClusterState, StateStore

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from ugro.httpserver import BoundedServer


def samples(exposition: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a text exposition, keyed by name and sorted labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(exposition)
        for s in family.samples
    }


def nodes_in(exposition: str) -> set[str]:
    """The `node` label values of a text exposition."""
    return {dict(labels)["node"] for _, labels in samples(exposition) if dict(labels).get("node")}


def skipped(exposition: str) -> float:
    """The value of ugro_exporter_skipped_nodes."""
    return samples(exposition)[("ugro_exporter_skipped_nodes", ())]


def render() -> str:
    """What `ugro metrics` prints for the state file in $UGRO_HOME."""
    return generate_latest(exporter.registry(paths.state_file())).decode()


@pytest.mark.parametrize("mutate", HOSTILE)
def test_hostile_node_is_left_out_and_counted(mutate: Callable[[Entry], object]) -> None:
    """A node with absurd or malformed data is skipped and counted; the others are all there."""
    write_state(paths.state_file(), mutate)
    exposition = render()
    assert nodes_in(exposition) == {"gpu1", "gpu3"}
    assert skipped(exposition) == 1
    assert samples(exposition)[("ugro_state_readable", ())] == 1
    assert samples(exposition)[("ugro_node_up", (("node", "gpu1"),))] == 1


def test_node_that_cannot_be_rendered_is_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """Data that passed the reader but cannot be rendered costs only its own node."""
    disk = DiskSpace("/", "/", HUGE, HUGE)
    hot = GpuMetrics(0, "GPU-0", "H100", float("nan"), None, None, None, None, None)
    nodes = {
        "huge": dataclasses.replace(healthy("huge"), disks=(disk,)),
        "nan": dataclasses.replace(healthy("nan"), gpus=(hot,)),
        "label": dataclasses.replace(healthy("label"), versions={"driver": 550}),  # type: ignore[dict-item]
        "fine": healthy("fine"),
    }
    monkeypatch.setattr(StateStore, "read", lambda _: ClusterState(nodes=nodes))
    exposition = render()
    assert nodes_in(exposition) == {"fine"}
    assert skipped(exposition) == 3


def test_labels_carry_no_terminal_control() -> None:
    """A GPU name with escape sequences reaches /metrics printable (people read it with curl)."""
    title = "\x1b]0;pwned\x07H100\x1b[2J"
    gpu = GpuMetrics(0, "GPU-0", title, 40.0, None, None, None, None, None)
    StateStore(paths.state_file()).update([dataclasses.replace(healthy("gpu1"), gpus=(gpu,))])
    exposition = render()
    assert "\x1b" not in exposition
    assert 'model="H100"' in exposition


def test_skip_count_is_zero_for_a_clean_state() -> None:
    """With nothing wrong, ugro_exporter_skipped_nodes is served as 0 rather than absent."""
    StateStore(paths.state_file()).update([healthy("gpu1")])
    assert skipped(render()) == 0


def test_metrics_command_succeeds_with_a_hostile_node(tmp_path: Path) -> None:
    """`ugro metrics` and `ugro metrics --textfile` exit 0 and serve the healthy nodes."""
    write_state(paths.state_file(), HUGE_DISK)
    printed = CliRunner().invoke(cli.main, ["metrics"])
    assert printed.exit_code == 0, printed.output
    assert nodes_in(printed.stdout) == {"gpu1", "gpu3"}
    written = CliRunner().invoke(cli.main, ["metrics", "--textfile", str(tmp_path)])
    assert written.exit_code == 0, written.output
    assert skipped((tmp_path / "ugro.prom").read_text(encoding="utf-8")) == 1


# --- the server -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BoundedServer]:
    """The daemon's metrics server on a free loopback port, over a state with a hostile node."""
    state = tmp_path_factory.mktemp("served") / "cluster_state.json"
    write_state(state, HUGE_DISK)
    server = exporter.serve(state, "127.0.0.1", 0)
    yield server
    server.shutdown()
    server.server_close()


def request(
    server: BoundedServer, method: str, target: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One request to `server`: the status, the headers and the body."""
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    try:
        conn.request(method, target, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def threads_of(server: BoundedServer) -> list[threading.Thread]:
    """The server's live threads: its acceptor and its workers."""
    return [t for t in threading.enumerate() if t.name.startswith(f"{server.thread_prefix}-")]


def connect(server: BoundedServer) -> socket.socket:
    """A connection to `server` that has sent nothing yet."""
    return socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=10)


def test_metrics_is_served_with_200_despite_a_hostile_node(served: BoundedServer) -> None:
    """/metrics answers 200 with the healthy nodes and the skip count."""
    status, headers, body = request(served, "GET", "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    assert nodes_in(body.decode()) == {"gpu1", "gpu3"}
    assert skipped(body.decode()) == 1


@pytest.mark.parametrize("target", ["/metrics/", "/metricsx", "/favicon.ico", "/../etc/passwd"])
def test_other_paths_are_404(served: BoundedServer, target: str) -> None:
    """Only /metrics and / exist; anything else is 404, as plain text."""
    status, headers, body = request(served, "GET", target)
    assert status == 404
    assert headers["Content-Type"] == httpserver.TEXT
    assert body == b"404 not found\n"


def test_index_and_query_strings(served: BoundedServer) -> None:
    """/ says where the metrics are; a query string does not change the page."""
    assert request(served, "GET", "/")[2] == b"ugro exporter: the metrics are at /metrics\n"
    status, _, body = request(served, "GET", "/metrics?name[]=ugro_node_up")
    assert status == 200
    assert nodes_in(body.decode()) == {"gpu1", "gpu3"}


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "BREW"])
def test_other_methods_are_405(served: BoundedServer, method: str) -> None:
    """Only GET and HEAD are allowed, and the answer says so."""
    status, headers, _ = request(served, method, "/metrics")
    assert status == 405
    assert headers["Allow"] == "GET, HEAD"


def test_head_has_headers_only(served: BoundedServer) -> None:
    """HEAD answers GET's status and length without the body."""
    status, headers, body = request(served, "HEAD", "/metrics")
    assert status == 200
    assert int(headers["Content-Length"]) > 0
    assert body == b""


def test_gzip_and_openmetrics_are_negotiated(served: BoundedServer) -> None:
    """Prometheus's Accept and Accept-Encoding get OpenMetrics, gzipped."""
    status, headers, body = request(
        served,
        "GET",
        "/metrics",
        {"Accept": "application/openmetrics-text;version=1.0.0", "Accept-Encoding": "gzip"},
    )
    assert status == 200
    assert headers["Content-Encoding"] == "gzip"
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert gzip.decompress(body).decode().endswith("# EOF\n")


def test_a_silent_client_does_not_block_scrapes(served: BoundedServer) -> None:
    """A client that connects and sends nothing, and one that stops mid-request, hold no scrape."""
    with connect(served) as silent, connect(served) as halfway:
        halfway.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        for _ in range(3):
            assert request(served, "GET", "/metrics")[0] == 200
        assert silent.fileno() >= 0  # still open: the scrapes did not wait for it


def test_a_trickling_client_is_dropped_at_its_deadline(
    served: BoundedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that sends a byte now and then is cut off at the request deadline, not kept."""
    monkeypatch.setattr(httpserver, "REQUEST_TIMEOUT_S", 0.5)
    with connect(served) as slow:
        slow.settimeout(0.1)

        def dropped() -> bool:
            try:
                slow.sendall(b"G")
                return slow.recv(1024) == b""
            except TimeoutError:
                return False
            except OSError:
                return True

        wait_for(dropped, "the server to drop the trickling client", timeout=10, every=0.1)


def test_many_connections_do_not_grow_threads(served: BoundedServer) -> None:
    """A hundred stalled connections leave the thread count at the pool's bound."""
    bound = httpserver.WORKERS + 1
    assert len(threads_of(served)) == bound
    stalled: list[socket.socket] = []
    try:
        stalled.extend(connect(served) for _ in range(100))
        # Beyond the busy workers and the queue, connections are closed at once (readable: EOF).
        refused = len(stalled) - httpserver.WORKERS - httpserver.QUEUED

        def closed() -> list[socket.socket]:
            ready = select.select(stalled, [], [], 0)[0]
            return ready if len(ready) >= refused else []

        assert all(sock.recv(1) == b"" for sock in wait_for(closed, "the excess to be closed"))
        assert len(threads_of(served)) <= bound
    finally:
        for sock in stalled:
            sock.close()
    assert wait_for(lambda: request(served, "GET", "/metrics")[0] == 200, "a scrape")
    assert len(threads_of(served)) <= bound


def test_close_frees_every_thread_despite_a_stalled_client() -> None:
    """shutdown() and server_close() end the acceptor and the workers, even one held by a client."""
    StateStore(paths.state_file()).update([healthy("gpu1")])
    server = exporter.serve(paths.state_file(), "127.0.0.1", 0)
    with connect(server):
        wait_for(lambda: request(server, "GET", "/metrics")[0] == 200, "a first scrape")
        server.shutdown()
        server.server_close()
        wait_for(lambda: not threads_of(server), "every server thread to end")


def test_taken_port_is_an_oserror_and_starts_no_thread() -> None:
    """A port in use raises OSError, which the daemon turns into its message, and no thread."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        before = set(threading.enumerate())
        with pytest.raises(OSError, match="in use"):
            exporter.serve(paths.state_file(), "127.0.0.1", taken.getsockname()[1])
        assert set(threading.enumerate()) <= before


def test_configured_nodes_without_a_verdict_are_unknown_and_others_are_gone() -> None:
    """Every configured node is exported; one never checked only as `unknown`; one removed not."""
    StateStore(paths.state_file()).update([healthy("gpu1"), healthy("old")], keep=["gpu1", "old"])
    StateStore(paths.state_file()).update([], keep=["gpu1", "new"])
    exposition = render()
    assert nodes_in(exposition) == {"gpu1", "new"}
    found = samples(exposition)
    assert found[("ugro_node_status", (("node", "new"), ("status", "unknown")))] == 1
    assert found[("ugro_node_status", (("node", "new"), ("status", "healthy")))] == 0
    assert ("ugro_node_up", (("node", "new"),)) not in found
    assert ("ugro_node_health_ratio", (("node", "new"),)) not in found
    assert found[("ugro_node_up", (("node", "gpu1"),))] == 1
    assert skipped(exposition) == 0
