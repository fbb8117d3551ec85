"""Shared fixtures: every test's own $UGRO_HOME, the real CLI, and real alert receivers.

The receivers (an HTTP server, Debian's prometheus-alertmanager) serve test_sinks and the
end-to-end delivery tests alike.

Two lanes: a test marked `integration` needs something real and slow (sshd, Prometheus,
Alertmanager, Slurm, root, a daemon process, `ugro` run as a process); the rest is the fast
lane, `scripts/test --fast`. A test that uses one of INTEGRATION_FIXTURES, or lives in
tests/integration/, is marked here; `run_ugro` fails a test that is not marked.

Every `ugro` a test runs, as a process (`run_ugro`) or in-process (click's `CliRunner`), fails
the test when it prints "internal error": that is an exception ugro did not expect, a bug
even where the test expected the command to fail.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from jsonschemas import check_output
from sshcluster import TestCluster
from ugro import config

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterator

    from ugro.config import Worker

#: This directory, the repository around it, and the captured outputs and stub programs in it.
TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
FIXTURES = TESTS / "fixtures"
STUBS = TESTS / "stubs"
ALERTMANAGER = Path("/usr/bin/prometheus-alertmanager")

#: Fixtures that start real servers or processes (test hosts on sshd, Alertmanager, Slurm,
#: daemons, iptables rules): any test that uses one, even indirectly, is an integration test.
INTEGRATION_FIXTURES = frozenset(
    {
        "shared_cluster",
        "cluster",
        "alertmanager",
        "slurm_cluster",
        "daemons",
        "detached",
        "firewall",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `integration` every test that uses an integration fixture or is in integration/."""
    for item in items:
        uses = INTEGRATION_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if uses or item.path.is_relative_to(TESTS / "integration"):
            item.add_marker(pytest.mark.integration)


#: The test being run now, if any: what `require_integration` judges.
_RUNNING: dict[str, pytest.Item] = {}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    """Remember the test while it is set up, run and torn down."""
    _RUNNING["item"] = item
    try:
        return (yield)
    finally:
        _RUNNING.pop("item", None)


#: What `ugro.cli.app.errors_exit` prints for an exception it did not expect.
INTERNAL_ERROR = "internal error"


def refuse_internal_error(output: str) -> None:
    """Fail the running test if a command's output says "internal error"."""
    if INTERNAL_ERROR in output:
        pytest.fail(f"ugro printed an internal error (a bug):\n{output}", pytrace=False)


@pytest.fixture(autouse=True)
def no_internal_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every in-process CLI run (click's `CliRunner.invoke`) refuse an internal error."""
    from click.testing import CliRunner, Result

    invoke = CliRunner.invoke

    def checked(self: CliRunner, *args: Any, **kwargs: Any) -> Result:
        result = invoke(self, *args, **kwargs)
        # Since click 8.2, output is stdout and stderr as they were interleaved.
        refuse_internal_error(result.output)
        command = kwargs.get("args", args[1] if len(args) > 1 else None)
        if isinstance(command, list | tuple):
            check_output(command, result.stdout)
        return result

    monkeypatch.setattr(CliRunner, "invoke", checked)


def require_integration(what: str) -> None:
    """Fail the running test if it does `what` (something slow) without the integration mark.

    This keeps the fast lane fast: a test that starts `ugro` processes cannot slip into it
    unmarked. Outside a test (the benchmarks use the harness too) it does nothing.
    """
    item = _RUNNING.get("item")
    if item is not None and item.get_closest_marker("integration") is None:
        pytest.fail(f"{item.nodeid} {what}: mark it @pytest.mark.integration", pytrace=False)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every ugro file at a fresh directory, so no test sees another's state."""
    home = tmp_path / "ugro-home"
    monkeypatch.setenv("UGRO_HOME", str(home))
    monkeypatch.delenv("UGRO_CONFIG", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    return home


@dataclass(frozen=True)
class Ran:
    """What a `ugro` process did."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        """Stdout parsed as JSON."""
        return json.loads(self.out)


def run_ugro(
    *args: str | os.PathLike[str], timeout: float = 60, env: dict[str, str] | None = None
) -> Ran:
    """Run the real `ugro` command line in a subprocess, as an operator would."""
    require_integration("runs `ugro` as a process")
    done = subprocess.run(
        [sys.executable, "-m", "ugro", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    refuse_internal_error(done.stderr)
    # Every JSON document a test sees is checked against the schema users read.
    check_output([str(a) for a in args], done.stdout)
    return Ran(done.returncode, done.stdout, done.stderr)


T = TypeVar("T")
PATIENCE_S = 30.0


def wait_for(
    predicate: Callable[[], T | None],
    what: str = "",
    timeout: float = PATIENCE_S,
    every: float = 0.02,
) -> T:
    """Poll `predicate` until it returns something truthy, and return that; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what or predicate}")
        time.sleep(every)


def fixture_text(*parts: str) -> str:
    """A captured output file from tests/fixtures."""
    return FIXTURES.joinpath(*parts).read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def shared_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestCluster]:
    """Five real sshd test hosts on 127.0.0.x, started once for the whole run."""
    cluster = TestCluster.start(tmp_path_factory.mktemp("cluster"), 5)
    yield cluster
    cluster.stop_all()


@pytest.fixture
def cluster(shared_cluster: TestCluster) -> TestCluster:
    """The shared test hosts, each healthy, running and with its original key."""
    shared_cluster.reset()
    return shared_cluster


def nodes_of(path: Path) -> dict[str, Worker]:
    """The resolved workers of a cluster.yaml, by name."""
    return {n.name: n for n in config.parse_file(path).nodes()}


# --- receivers for alerts ------------------------------------------------------------------


def closed_port() -> int:
    """A loopback port on which nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _poll(condition: Callable[[], object], what: str, patience: float) -> None:
    """Poll `condition` until it is true; fail naming `what` after `patience` seconds."""
    deadline = time.monotonic() + patience
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


@dataclass(frozen=True)
class Request:
    """One request the receiver got, and when (time.monotonic())."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    received_at: float = field(default_factory=time.monotonic)


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 that records every request and answers `status`."""

    port: int
    requests: list[Request] = field(default_factory=list)
    status: int = 200

    def url(self, path: str = "/hook") -> str:
        """The URL of `path` on this receiver."""
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Request]:
        """The requests received so far on `path`, in order."""
        return [r for r in list(self.requests) if r.path == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A recording HTTP receiver in a thread, shut down and closed at teardown."""
    record = Receiver(port=0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"null")
            headers = {k.lower(): v for k, v in self.headers.items()}
            record.requests.append(Request("POST", self.path, headers, body))
            self.send_response(record.status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
            """Keep the test output quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    record.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield record
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections and never answers (a hung server)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


@dataclass
class Alertmanager:
    """A running prometheus-alertmanager on loopback."""

    url: str

    def alerts(self, query: str = "") -> list[dict[str, Any]]:
        """GET /api/v2/alerts."""
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts{query}", timeout=5) as r:  # noqa: S310 - loopback test server
            alerts: list[dict[str, Any]] = json.load(r)
        return alerts

    def find(self, key: str, query: str = "") -> dict[str, Any] | None:
        """The alert with label key=`key`, if Alertmanager lists it."""
        return next((a for a in self.alerts(query) if a["labels"].get("key") == key), None)


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Alertmanager]:
    """Debian's prometheus-alertmanager on 127.0.0.1, without gossip; stopped at teardown."""
    assert ALERTMANAGER.exists(), "prometheus-alertmanager is missing: scripts/test installs it"
    home = tmp_path_factory.mktemp("alertmanager")
    (home / "am.yml").write_text(
        "route:\n  receiver: none\nreceivers:\n  - name: none\n", encoding="utf-8"
    )
    port = closed_port()
    log = (home / "am.log").open("wb")
    proc = subprocess.Popen(
        [
            str(ALERTMANAGER),
            f"--config.file={home / 'am.yml'}",
            f"--storage.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    am = Alertmanager(f"http://127.0.0.1:{port}")

    def ready() -> bool:
        assert proc.poll() is None, (home / "am.log").read_text(encoding="utf-8")
        try:
            with urllib.request.urlopen(f"{am.url}/-/ready", timeout=1) as r:  # noqa: S310 - loopback
                return bool(r.status == 200)
        except OSError:
            return False

    try:
        _poll(ready, "Alertmanager to be ready", patience=30)
        yield am
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
