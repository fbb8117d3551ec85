"""Reading the fleet from Prometheus's query API, against a real HTTP server on loopback.

The server answers what a test gives it: a Prometheus answer of the exporter's families
(the real Prometheus is in test_shards.py), or what a broken, hostile or wrong server could
send. Whatever it sends, `ugro health --from-prometheus` says one clear line and exits 3.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner

from conftest import closed_port
from ugro.cli import main
from ugro.errors import PrometheusError
from ugro.fleet import promapi, prometheus

if TYPE_CHECKING:
    from collections.abc import Iterator

# The series' sample time; verdicts are checked a few seconds before it.
NOW = float(int(time.time()))


class Answering:
    """What the fake-free HTTP server answers next, and the queries it was asked."""

    def __init__(self) -> None:
        """Answer an empty vector until told otherwise."""
        self.status = 200
        self.body = vector([])
        # A second body for the monitors-gone query, told apart by its text.
        self.gone = vector([])
        self.queries: list[str] = []
        # Send the body a byte every 50 ms instead, as a hostile or broken server could.
        self.drip = False
        self.authorizations: list[str] = []
        self.url = ""


def vector(result: list[Any]) -> bytes:
    """A successful instant-query answer holding `result`."""
    return json.dumps(
        {"status": "success", "data": {"resultType": "vector", "result": result}}
    ).encode()


def series(name: str, value: object, **labels: str) -> dict[str, Any]:
    """One series as Prometheus returns it, scraped from the monitor at 10.0.0.1:9936."""
    metric = {"__name__": name, "instance": "10.0.0.1:9936", "job": "ugro", **labels}
    return {"metric": metric, "value": [NOW, value]}


def node_series(node: str, status: str, *, checked: float = NOW - 5, **more: Any) -> list[Any]:
    """The series of one node as the exporter serves them."""
    extra = {k: v for k, v in more.items() if k == "instance"}
    return [
        series("ugro_node_status", "1", node=node, status=status, **extra),
        series("ugro_node_status", "0", node=node, status="stale", **extra),
        series("ugro_node_health_ratio", more.get("ratio", "1"), node=node, **extra),
        series("ugro_node_last_check_timestamp_seconds", str(checked), node=node, **extra),
        series("ugro_check_status", "0", node=node, check="ssh", **extra),
        series("ugro_check_status", more.get("gpu", "0"), node=node, check="gpu", **extra),
        series("ugro_node_version_info", "1", node=node, component="driver", version="550.54"),
        series("ugro_node_cordoned", more.get("cordoned", "0"), node=node, **extra),
    ]


@pytest.fixture
def answering() -> Iterator[Answering]:
    """A real HTTP server on 127.0.0.1 answering every GET with `Answering`'s body."""
    state = Answering()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.queries.append(self.path)
            state.authorizations.append(self.headers.get("Authorization", ""))
            body = state.gone if "last_over_time" in self.path else state.body
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not state.drip:
                self.wfile.write(body)
                return
            for byte in body[:100]:
                try:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.05)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
            """Quiet: the tests read what was asked from `queries`."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # A short poll: shutdown() waits for the loop's next look.
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def health(*args: str, env: dict[str, str] | None = None) -> Any:
    """`ugro health ARGS`, in-process."""
    return CliRunner().invoke(main, ["health", *args], env=env)


# --- what an exporter's series become -------------------------------------------------------


def test_series_become_verdicts(answering: Answering) -> None:
    """Status, score, checks, versions and cordons come back as the state file would give them."""
    answering.body = vector(
        node_series("gpu1", "healthy")
        + node_series("gpu2", "unhealthy", ratio="0.4", gpu="2", cordoned="1")
    )
    fleet = prometheus.read(answering.url, timeout_s=5)
    assert list(fleet.verdicts) == ["gpu1", "gpu2"]
    gpu2 = fleet.verdicts["gpu2"]
    assert gpu2.status.value == "unhealthy"
    assert gpu2.health_score == 40
    assert {c.name: c.status.label for c in gpu2.checks} == {"gpu": "fail", "ssh": "ok"}
    assert gpu2.alerts[0].text == "gpu: fail (details on the monitor 10.0.0.1:9936 (job ugro))"
    assert gpu2.versions == {"driver": "550.54"}
    assert gpu2.last_check.timestamp() == NOW - 5
    assert list(fleet.cordons) == ["gpu2"]
    assert fleet.notes == []
    # One query for the verdicts, one for monitors that stopped reporting.
    assert len(answering.queries) == 2


def test_two_monitors_of_one_node_the_newer_check_wins(answering: Answering) -> None:
    """A node two shards report (while they are resized): the newer check is shown."""
    answering.body = vector(
        node_series("gpu1", "unhealthy", checked=NOW - 60, instance="10.0.0.1:9936")
        + node_series("gpu1", "healthy", checked=NOW - 2, instance="10.0.0.2:9936")
    )
    fleet = prometheus.read(answering.url, timeout_s=5)
    assert fleet.verdicts["gpu1"].status.value == "healthy"


@pytest.mark.parametrize(
    "bad",
    [
        series("ugro_node_health_ratio", "7", node="gpu1"),
        series("ugro_node_health_ratio", "-0.5", node="gpu1"),
        series("ugro_node_last_check_timestamp_seconds", "1e18", node="gpu1"),
        series("ugro_check_status", "9", node="gpu1", check="gpu"),
        series("ugro_check_status", "1.5", node="gpu1", check="gpu"),
        series("ugro_node_status", "1", node="gpu1", status="<b>fine</b>"),
        series("ugro_node_version_info", "1", node="gpu1", version="1.0"),
    ],
)
def test_a_value_no_exporter_writes_leaves_the_node_out(answering: Answering, bad: Any) -> None:
    """An absurd value costs its node, named in a note; the other nodes stay."""
    answering.body = vector([*node_series("gpu1", "healthy"), bad, *node_series("gpu2", "healthy")])
    fleet = prometheus.read(answering.url, timeout_s=5)
    assert list(fleet.verdicts) == ["gpu2"]
    assert fleet.notes == [
        (
            "left out 1 node(s) whose series are incomplete or hold values ugro's exporter "
            "does not write: gpu1"
        )
    ]


@pytest.mark.parametrize(
    "bad",
    [
        series("ugro_node_health_ratio", "NaN", node="gpu3"),
        series("ugro_node_health_ratio", "+Inf", node="gpu3"),
        series("ugro_node_health_ratio", "1e999", node="gpu3"),
        series("ugro_node_health_ratio", 0.5, node="gpu3"),
        series("ugro_node_health_ratio", "9" * 100, node="gpu3"),
        series("ugro_check_status", "0", node="gpu3", check="x" * 1000),
        {"metric": {"node": "gpu3", "__name__": "ugro_check_status"}, "value": [NOW]},
        {"metric": ["gpu3"], "value": [NOW, "1"]},
        {"metric": {"node": 3}, "value": [NOW, "1"]},
        "gpu3",
        None,
    ],
)
def test_a_series_that_is_no_series_is_left_out_and_counted(answering: Answering, bad: Any) -> None:
    """A series without string labels and a finite value is dropped and counted."""
    answering.body = vector([*node_series("gpu1", "healthy"), bad])
    fleet = prometheus.read(answering.url, timeout_s=5)
    assert list(fleet.verdicts) == ["gpu1"]
    assert fleet.notes == ["1 series from Prometheus left out: not labels and a finite value"]


def test_series_of_other_families_and_without_a_node_are_ignored(answering: Answering) -> None:
    """Other metrics a selector could match, or a series without a node, change nothing."""
    answering.body = vector(
        [
            *node_series("gpu1", "healthy"),
            series("ugro_node_up", "1", node="gpu1"),
            series("ugro_node_status", "1", status="healthy"),
        ]
    )
    fleet = prometheus.read(answering.url, timeout_s=5)
    assert list(fleet.verdicts) == ["gpu1"]
    assert fleet.notes == []


def test_hostile_names_reach_the_terminal_as_text(answering: Answering) -> None:
    """A node name with escapes and markup is shown printable and literal, never interpreted."""
    name = "gpu\x1b]0;owned\x07[bold red]x[/]"
    answering.body = vector(node_series(name, "unhealthy", gpu="2"))
    result = health("--from-prometheus", answering.url)
    assert result.exit_code == 2, result.output
    assert "\x1b" not in result.output
    assert "\x07" not in result.output
    assert "[bold red]x[/]" in result.output


def test_health_table_names_prometheus_and_exits_with_the_worst(answering: Answering) -> None:
    """The table shows every node, says where it came from, and exits with the worst code."""
    answering.body = vector(node_series("gpu1", "healthy") + node_series("gpu2", "degraded"))
    result = health(env={"UGRO_PROMETHEUS_URL": answering.url})
    assert result.exit_code == 1, result.output
    assert "2 nodes: 1 healthy, 1 degraded" in result.output
    assert f"read from Prometheus at {answering.url}" in result.output


def test_an_old_verdict_is_stale(answering: Answering) -> None:
    """A textfile no node rewrites any more: its verdict is stale after STALE_AFTER_S."""
    old = NOW - 10 * prometheus.STALE_AFTER_S
    answering.body = vector(node_series("gpu1", "healthy", checked=old))
    result = health("--from-prometheus", answering.url, "--json")
    assert result.exit_code == 3, result.output
    assert json.loads(result.stdout)["nodes"][0]["status"] == "stale"


def test_a_monitor_gone_is_said_and_exits_3(answering: Answering) -> None:
    """A monitor that reported in the last hour and not now: a note, and no better than 3."""
    answering.body = vector(node_series("gpu1", "healthy"))
    monitor = {"instance": "10.0.0.9:9936", "job": "ugro"}
    answering.gone = vector([{"metric": monitor, "value": [NOW, "1"]}])
    result = health("--from-prometheus", answering.url, "--json")
    assert result.exit_code == 3, result.output
    document = json.loads(result.stdout)
    assert document["exit_code"] == 3
    assert (
        "the monitor 10.0.0.9:9936 (job ugro) reported within the last hour"
        in (document["notes"][1])
    )


# --- a Prometheus that does not answer as one ----------------------------------------------


def refused(answering: Answering) -> str:
    """`ugro health --from-prometheus` against the server: exit 3 and one line; that line."""
    return refused_at(answering.url)


def refused_at(url: str) -> str:
    """`ugro health --from-prometheus URL`: exit 3 and one line; that line."""
    result = health("--from-prometheus", url)
    assert result.exit_code == 3, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("ugro: ")
    return str(lines[0])


@pytest.mark.parametrize(
    ("status", "body", "said"),
    [
        (200, b"<html><body>Grafana</body></html>", "did not answer as its query API does"),
        (200, b"[1, 2, 3]", "not a JSON object"),
        (
            200,
            b'{"status": "success", "data": {"resultType": "matrix", "result": []}}',
            "no vector",
        ),
        (200, b'{"status": "success"}', "no vector"),
        (200, b"[" * 100_000 + b"]" * 100_000, "did not answer as its query API does"),
        (200, b'{"status": "error", "error": "bad\\u001b[2J"}', "refused the query: bad"),
        (400, b'{"status": "error", "error": "parse error at char 3"}', "HTTP 400: parse error"),
        (503, b"Service Unavailable", "answered HTTP 503"),
        (200, vector([]), "has no ugro verdicts"),
    ],
)
def test_a_wrong_answer_is_one_line_exit_3(
    answering: Answering, status: int, body: bytes, said: str
) -> None:
    """Garbage, an error, the wrong kind of result or no verdicts: one line naming why."""
    answering.status, answering.body = status, body
    line = refused(answering)
    assert said in line
    assert "\x1b" not in line


def test_an_answer_too_large_is_refused(
    answering: Answering, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An answer past MAX_RESPONSE_BYTES is not read on: one line, exit 3."""
    monkeypatch.setattr(promapi, "MAX_RESPONSE_BYTES", 1024)
    answering.body = vector(node_series("gpu1", "healthy") * 20)
    assert "answered more than 1024 bytes" in refused(answering)


def test_an_answer_dripped_slowly_is_given_up_at_the_deadline(answering: Answering) -> None:
    """A byte every 50 ms, each within the socket's timeout: the whole answer has a deadline."""
    answering.body = vector(node_series("gpu1", "healthy"))
    answering.drip = True
    with pytest.raises(PrometheusError, match=r"did not finish answering within 0\.5 s"):
        prometheus.read(answering.url, timeout_s=0.5)


def test_nothing_listening_is_said() -> None:
    """No Prometheus at the address: exit 3, saying it cannot be reached."""
    result = health("--from-prometheus", f"http://127.0.0.1:{closed_port()}")
    assert result.exit_code == 3
    assert "cannot reach Prometheus at http://127.0.0.1:" in result.output
    assert "Connection refused" in result.output


def test_a_hung_prometheus_times_out(silent_port: int) -> None:
    """A server that accepts and never answers: PrometheusError after the timeout."""
    with pytest.raises(PrometheusError, match=r"did not answer within 0\.3 s"):
        prometheus.read(f"http://127.0.0.1:{silent_port}", timeout_s=0.3)


def test_credentials_in_the_url_are_sent_as_basic_auth_and_never_shown(
    answering: Answering,
) -> None:
    """user:password@ in the URL authenticates (Basic), and stays out of every message."""
    port = answering.url.rsplit(":", 1)[1]
    answering.body = vector(node_series("gpu1", "healthy"))
    fleet = prometheus.read(f"http://ops:s%40cret@127.0.0.1:{port}", timeout_s=5)
    assert list(fleet.verdicts) == ["gpu1"]
    assert answering.authorizations == ["Basic b3BzOnNAY3JldA=="] * 2
    answering.status, answering.body = 503, b"down"
    line = refused_at(f"http://ops:s3cret@127.0.0.1:{port}/prom")
    assert "s3cret" not in line
    assert "ops" not in line
    assert f"Prometheus at http://127.0.0.1:{port}/prom answered HTTP 503" in line


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("prometheus:9090", "does not start with http:// or https://"),
        ("file:///etc/passwd", "does not start with http:// or https://"),
        ("ftp://prometheus/", "does not start with http:// or https://"),
        ("http://", "names no host"),
        ("http://[::1", "Invalid IPv6 URL"),
        ("http://u:pw@[::1", "Invalid IPv6 URL"),
        ("http://127.0.0.1:99999", "Port out of range"),
        ("http://127.0.0.1:9090/\x1b[2J", "holds a control character"),
    ],
)
def test_a_url_that_is_no_prometheus_address_is_refused(url: str, said: str) -> None:
    """Only http(s) URLs with a host are asked (urllib would read file://): one line, exit 3."""
    line = refused_at(url)
    assert "is not Prometheus's address" in line
    assert said in line
    assert "pw" not in line
