"""The dashboard's HTTP API and pages in this process, over real HTTP on loopback.

Documents and their schemas, 404s and 400s, hostile state files, access (loopback Host, the
token as bearer, query and cookie), caching by ETag, the security headers, pages that a strict
Content-Security-Policy does not break, and `ugro dashboard` without a daemon.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner

from hostile import HOSTILE, healthy, write_state
from ugro import cli, httpserver, paths
from ugro.dashboard import access
from ugro.dashboard.app import SECURITY_HEADERS, Dashboard, _static_files
from ugro.model import Alert, CheckResult, GpuMetrics, NodeStatus, Status
from ugro.store.cordons import Cordon, CordonStore
from ugro.store.history import History
from ugro.store.history_records import Sample, Transition
from ugro.store.state import StateStore
from ugro.verdict.rows import NEVER_CHECKED

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from pathlib import Path

    from ugro.httpserver import BoundedServer

TOKEN = "s3cret-dashboard-token-0123456789"  # noqa: S105 - a test token
HOSTILE_GPU = '<img src=x onerror="alert(1)">\x1b]0;pwned\x07&amp;</script>'


@dataclasses.dataclass
class Served:
    """A dashboard on an ephemeral loopback port."""

    server: BoundedServer
    app: Dashboard

    def get(
        self, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """GET `path`: status, headers (lower-case names) and body."""
        conn = http.client.HTTPConnection("127.0.0.1", self.server.server_address[1], timeout=10)
        try:
            conn.request("GET", path, headers=headers or {})
            response = conn.getresponse()
            return (
                response.status,
                {k.lower(): v for k, v in response.getheaders()},
                response.read(),
            )
        finally:
            conn.close()

    def json(self, path: str, headers: dict[str, str] | None = None) -> Any:
        """GET `path`, expecting 200 and a JSON document."""
        status, _, body = self.get(path, headers)
        assert status == 200, body
        return json.loads(body)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """Start dashboards over $UGRO_HOME's files; stopped at the end."""
    started: list[Served] = []

    def start(configured: Sequence[str] = (), token: str | None = None) -> Served:
        app = Dashboard(
            state_path=paths.state_file(),
            cordons_path=paths.cordons_file(),
            history_path=tmp_path / "history.db",
            configured=lambda: tuple(configured),
            source="daemon",
            token=token,
        )
        served = Served(httpserver.serve("127.0.0.1", 0, {}, app), app)
        started.append(served)
        return served

    yield start
    for served in started:
        served.server.shutdown()
        served.server.server_close()
        served.app.close()


def failing(name: str) -> Any:
    """An unhealthy verdict: its gpu check fails with a message."""
    base = healthy(name)
    return dataclasses.replace(
        base,
        status=NodeStatus.UNHEALTHY,
        health_score=30.0,
        checks=(
            *base.checks,
            CheckResult("gpu", Status.FAIL, "1 of 2 GPUs visible: reseat it", duration_ms=9.0),
        ),
        alerts=(Alert("critical", "gpu: 1 of 2 GPUs visible: reseat it"),),
    )


def test_overview_lists_every_configured_node_worst_first(serve: Callable[..., Served]) -> None:
    """State nodes and configured, never-checked nodes are tiles; counts and groups add up."""
    StateStore(paths.state_file()).update([healthy("a"), failing("b"), failing("c")])
    doc = serve(configured=["a", "b", "c", "d"]).json("/api/v1/overview")
    assert [(n["name"], n["status"]) for n in doc["nodes"]] == [
        ("b", "unhealthy"),
        ("c", "unhealthy"),
        ("d", "unknown"),
        ("a", "healthy"),
    ]
    assert doc["nodes"][2]["problem"] == NEVER_CHECKED
    assert doc["counts"]["unhealthy"] == 2
    assert doc["counts"]["unknown"] == 1
    assert doc["groups"] == [
        {"problem": "gpu: 1 of 2 GPUs visible: reseat it", "nodes": ["b", "c"]}
    ]
    assert doc["source"] == "daemon"


def test_health_is_the_health_json_document(serve: Callable[..., Served]) -> None:
    """/api/v1/health equals what `ugro health --json` prints, but for the moment made."""
    StateStore(paths.state_file()).update([healthy("a"), failing("b")])
    CordonStore().cordon(Cordon("b", "manual", "bad fan", datetime.now(UTC), "ops"))
    served = serve(configured=["a", "b"]).json("/api/v1/health")
    printed = json.loads(CliRunner().invoke(cli.main, ["health", "--json"]).stdout)
    for doc in (served, printed):
        del doc["generated_at"]
        for node in doc["nodes"]:
            del node["age_s"]
    assert served == printed


def record(path: Path, verdicts: Sequence[Any], minutes_apart: float = 1.0) -> None:
    """Record `verdicts` in the history at `path`, the last one now, with a transition."""
    history = History(path)
    try:
        now = datetime.now(UTC)
        for i, verdict in enumerate(reversed(verdicts)):
            at = now - timedelta(minutes=minutes_apart * i)
            history.record([Sample(dataclasses.replace(verdict, last_check=at), 60.0)])
        history.record(
            [], [Transition(now, verdicts[-1].name, "healthy", "unhealthy", "gpu failed")]
        )
    finally:
        history.close()


def test_node_document_has_checks_gpus_cordon_and_transitions(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    """A node's page data: checks in order with messages, GPUs, versions, its cordon, history."""
    verdict = failing("b")
    StateStore(paths.state_file()).update([verdict])
    CordonStore().cordon(Cordon("b", "ugro", "gpu failing", datetime.now(UTC)))
    record(tmp_path / "history.db", [healthy("b"), verdict])
    doc = serve(configured=["b"]).json("/api/v1/nodes/b")
    assert [c["name"] for c in doc["checks"]] == ["ssh", "latency", "gpu"]
    assert doc["checks"][2]["message"] == "1 of 2 GPUs visible: reseat it"
    assert doc["gpus"][0]["name"] == "NVIDIA H100"
    assert doc["cordon"]["reason"] == "gpu failing"
    assert doc["versions"] == {"driver": "550.54.15"}
    assert doc["status"] == "unhealthy"
    assert doc["checked"] is True
    assert doc["transitions"][-1]["reason"] == "gpu failed"


def test_never_checked_node_has_a_page(serve: Callable[..., Served]) -> None:
    """A configured node without a verdict is served as unknown, never checked."""
    doc = serve(configured=["new"]).json("/api/v1/nodes/new")
    assert doc["status"] == "unknown"
    assert doc["checked"] is False
    assert doc["problem"] == NEVER_CHECKED


def test_history_series_have_points(serve: Callable[..., Served], tmp_path: Path) -> None:
    """Score and latency come from the history database, as [epoch ms, value] points."""
    StateStore(paths.state_file()).update([healthy("a")])
    record(tmp_path / "history.db", [healthy("a")] * 5)
    served = serve(configured=["a"])
    doc = served.json("/api/v1/history?node=a&since=1h")
    assert doc["history"] is True
    assert len(doc["series"]["score"]) >= 2
    assert {value for _, value in doc["series"]["score"]} == {100.0}
    assert {value for _, value in doc["series"]["latency_ms"]} == {0.4}
    assert doc["series"]["temperature_c"] == []
    assert served.json("/api/v1/history?node=a&since=7d")["series"]["score"]
    since = (datetime.now(UTC) - timedelta(minutes=2)).isoformat()
    assert served.json(f"/api/v1/history?node=a&since={since.replace('+', '%2B')}")["series"]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/v1/nodes/nosuch", 404),
        ("/api/v1/history?node=nosuch", 404),
        ("/api/v1/history", 400),
        ("/api/v1/history?node=a&since=yesterday", 400),
        ("/api/v1/history?node=a&since=2999-01-01T00:00:00", 400),
        ("/api/v1/nosuch", 404),
        ("/api/v2/health", 404),
        ("/static/nosuch.js", 404),
        ("/static/../app.py", 404),
        ("/nosuch", 404),
    ],
)
def test_what_is_not_there_is_a_clear_error(
    serve: Callable[..., Served], path: str, status: int
) -> None:
    """Unknown nodes and paths are 404, malformed queries 400 saying what was expected."""
    StateStore(paths.state_file()).update([healthy("a")])
    got, headers, body = serve(configured=["a"]).get(path)
    assert got == status
    assert headers["content-type"].startswith("text/plain")
    assert b"Traceback" not in body
    if status == 400:
        assert b"expected" in body


@pytest.mark.parametrize("mutate", HOSTILE)
def test_hostile_state_costs_only_its_node(
    serve: Callable[..., Served], mutate: Callable[[Any], object]
) -> None:
    """A node whose state entry is absurd is left out; every document serves the others."""
    write_state(paths.state_file(), mutate)
    served = serve(configured=["gpu1", "gpu3"])
    names = [n["name"] for n in served.json("/api/v1/overview")["nodes"]]
    assert sorted(names) == ["gpu1", "gpu3"]
    assert [n["name"] for n in served.json("/api/v1/health")["nodes"]] == ["gpu1", "gpu3"]
    assert served.json("/api/v1/nodes/gpu1")["status"] == "healthy"
    assert served.get("/api/v1/nodes/gpu2")[0] == 404


def test_corrupt_state_is_a_clear_503(serve: Callable[..., Served]) -> None:
    """A state file that is not JSON at all is reported, not a traceback or a blank page."""
    paths.state_file().parent.mkdir(parents=True, exist_ok=True)
    paths.state_file().write_bytes(b"\x00{not json" * 1000)
    status, _, body = serve().get("/api/v1/overview")
    assert status == 503
    assert b"corrupt" in body


def test_node_text_is_printable_in_the_page_documents(serve: Callable[..., Served]) -> None:
    """Escapes and controls from a node are gone from what pages show; markup stays text."""
    gpu = GpuMetrics(0, "GPU-0", HOSTILE_GPU, 40.0, 1.0, 1.0, 2.0, 3.0, 4.0)
    verdict = dataclasses.replace(
        failing("b"),
        gpus=(gpu,),
        alerts=(Alert("critical", "gpu: \x1b[2J" + HOSTILE_GPU + "\nforged line"),),
    )
    StateStore(paths.state_file()).update([verdict])
    served = serve(configured=["b"])
    for path in ("/api/v1/overview", "/api/v1/nodes/b"):
        status, headers, body = served.get(path)
        assert status == 200
        assert headers["content-type"] == "application/json"
        text = body.decode()
        assert "\\u001b" not in text
        assert "\x1b" not in text
        assert "\\n" not in text
    node = served.json("/api/v1/nodes/b")
    assert node["gpus"][0]["name"] == '<img src=x onerror="alert(1)">&amp;</script>'
    assert served.json("/api/v1/overview")["nodes"][0]["problem"].endswith("⏎forged line")


def test_every_answer_carries_the_security_headers(serve: Callable[..., Served]) -> None:
    """Pages, files, documents, 404s and 304s all carry the CSP and friends."""
    StateStore(paths.state_file()).update([healthy("a")])
    served = serve(configured=["a"])
    for path in ("/", "/node/a", "/alerts", "/static/dashboard.js", "/api/v1/health", "/x"):
        status, headers, _ = served.get(path)
        assert status in {200, 404}
        if status == 200:
            for name, value in SECURITY_HEADERS:
                assert headers[name.lower()] == value
    csp = dict(SECURITY_HEADERS)["Content-Security-Policy"]
    assert "'unsafe-inline'" not in csp
    assert "script-src 'self'" in csp


def test_unchanged_documents_are_a_304(serve: Callable[..., Served]) -> None:
    """With the ETag it has, a client gets a bodiless 304 until the state changes."""
    StateStore(paths.state_file()).update([healthy("a")])
    served = serve(configured=["a"])
    _, headers, _ = served.get("/api/v1/overview")
    etag = headers["etag"]
    again, _, body = served.get("/api/v1/overview", {"If-None-Match": etag})
    assert (again, body) == (304, b"")
    StateStore(paths.state_file()).update([failing("a")])
    changed, headers, _ = served.get("/api/v1/overview", {"If-None-Match": etag})
    assert changed == 200
    assert headers["etag"] != etag


def test_only_get_and_head(serve: Callable[..., Served]) -> None:
    """The dashboard is read-only: any other method is 405."""
    served = serve()
    conn = http.client.HTTPConnection("127.0.0.1", served.server.server_address[1], timeout=10)
    conn.request("POST", "/api/v1/health", body=b"{}")
    assert conn.getresponse().status == 405
    conn.close()


def test_foreign_host_is_refused_without_a_token(serve: Callable[..., Served]) -> None:
    """Without a token only a loopback Host is answered (DNS rebinding reads nothing)."""
    served = serve()
    assert served.get("/api/v1/health", {"Host": "evil.example:9936"})[0] == 403
    for host in ("localhost:9936", "127.0.0.1", "[::1]:80", "LOCALHOST"):
        assert served.get("/api/v1/overview", {"Host": host})[0] == 200, host


def test_token_as_bearer_query_or_cookie(serve: Callable[..., Served]) -> None:
    """With a token every request needs it; ?token= sets a cookie and drops it from the URL."""
    served = serve(token=TOKEN)
    status, _, body = served.get("/api/v1/overview")
    assert status == 401
    assert b"token" in body
    assert TOKEN.encode() not in body
    assert served.get("/", {"Authorization": "Bearer wrong"})[0] == 401
    assert served.get("/?token=wrong")[0] == 401
    assert served.get("/api/v1/overview", {"Authorization": f"Bearer {TOKEN}"})[0] == 200
    status, headers, _ = served.get(f"/node/a?token={TOKEN}")
    assert status == 303
    assert headers["location"] == "/node/a"
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    value = cookie.split(";")[0]
    assert served.get("/api/v1/overview", {"Cookie": value})[0] == 200
    # With a token, the Host does not matter: the dashboard is meant for other machines.
    assert served.get("/", {"Cookie": value, "Host": "gpu-head.lab:9936"})[0] == 200


@pytest.mark.parametrize(
    ("address", "token", "refused"),
    [
        ("127.0.0.1", None, False),
        ("::1", None, False),
        ("127.0.0.5", None, False),
        ("0.0.0.0", None, True),  # noqa: S104 - the address judged
        ("10.1.2.3", None, True),
        ("::", None, True),
        ("0.0.0.0", TOKEN, False),  # noqa: S104 - the address judged
    ],
)
def test_only_loopback_without_a_token(address: str, token: str | None, refused: bool) -> None:
    """Anywhere but loopback, the dashboard needs a token; the reason says how to fix it."""
    why = access.refusal(address, token)
    assert (why is not None) == refused
    if why:
        assert "exporter.token" in why


class _Markup(HTMLParser):
    """What a strict CSP would block in a page: inline scripts, styles and handlers."""

    def __init__(self) -> None:
        super().__init__()
        self.blocked: list[str] = []
        self.sources: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "style" or "style" in found or any(k.startswith("on") for k in found):
            self.blocked.append(tag)
        if tag == "script":
            if not found.get("src"):
                self.blocked.append("inline script")
            self.sources.append(found["src"] or "")
        if tag == "link":
            self.sources.append(found.get("href") or "")


def test_pages_have_no_inline_code_and_their_files_exist() -> None:
    """Each page loads only files it is served with; nothing inline that CSP would block."""
    files = _static_files()
    pages = [name for name in files if name.endswith(".html")]
    assert sorted(pages) == ["alerts.html", "index.html", "node.html"]
    for name in pages:
        parser = _Markup()
        parser.feed(files[name][0].decode())
        assert parser.blocked == [], name
        for source in parser.sources:
            assert source.removeprefix("/static/") in files, (name, source)


def test_page_weight() -> None:
    """The pages, script and style together stay small (figure printed for the docs)."""
    total = sum(len(body) for body, _, _ in _static_files().values())
    print(f"dashboard static files: {total} bytes")  # noqa: T201 - the figure docs/dashboard.md quotes
    assert total < 64 * 1024


def test_dashboard_command_without_a_daemon() -> None:
    """`ugro dashboard` with nothing serving says so and how to fix it, exit 1."""
    result = CliRunner().invoke(cli.main, ["dashboard"])
    assert result.exit_code == 1
    assert "no dashboard at http://127.0.0.1:" in result.output
    assert "ugro dashboard --serve" in result.output


def test_dashboard_command_usage_errors() -> None:
    """--port without --serve is a usage error; --serve on 0.0.0.0 without a token is refused."""
    result = CliRunner().invoke(cli.main, ["dashboard", "--port", "8080"])
    assert result.exit_code == 2
    result = CliRunner().invoke(cli.main, ["dashboard", "--serve", "--address", "0.0.0.0"])  # noqa: S104
    assert result.exit_code == 1
    assert "exporter.token" in result.output


@pytest.mark.parametrize(
    ("token", "why"),
    [
        ("short-token", "at least 16 characters"),
        ("a token with spaces in it", "without spaces"),
        ("x" * 300, "at most 256 characters"),
        ("tab\there-0123456789", "control character"),
    ],
)
def test_bad_token_is_named_never_shown(token: str, why: str) -> None:
    """A token the config refuses is named by its field; its value is never echoed."""
    from ugro.config import parse_text
    from ugro.errors import ConfigError

    workers = "workers: [{name: a, ip: 10.0.0.1}]\n"
    text = workers + f"exporter: {{token: {json.dumps(token)}}}\n"
    with pytest.raises(ConfigError) as raised:
        parse_text(text, "cluster.yaml")
    assert "exporter.token" in str(raised.value)
    assert why in str(raised.value)
    assert token not in str(raised.value)
