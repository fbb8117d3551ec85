"""ugro's Prometheus side with real components: promtool, a real Prometheus, the daemon.

The exporter, the alerting rules in contrib/prometheus and the Grafana dashboard in
contrib/grafana must agree: every metric and label the rules and panels use is one the
exporter serves, and a real Prometheus scraping a real daemon sees the cluster as it is.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import urllib.parse
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from conftest import REPO, run_ugro, wait_for
from hostile import HUGE_DISK, write_state
from ugro import config, exporter, paths

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from sshcluster import TestCluster, TestHost

# Integration: Prometheus's own tools, a real Prometheus and daemon processes.
pytestmark = pytest.mark.integration

T = TypeVar("T")

RULES = REPO / "contrib" / "prometheus" / "ugro-rules.yml"
RULES_TESTS = RULES.with_name("ugro-rules.test.yml")
DASHBOARD = REPO / "contrib" / "grafana" / "ugro-dashboard.json"
FAST_MONITOR: dict[str, float] = {"interval_s": 1, "confirm_s": 0.3}
#: How long a test waits for something that should happen within a few seconds.
#: Series names that Prometheus itself provides, which rules may use besides ugro's.
PROMETHEUS_SERIES = frozenset({"up"})
#: PromQL functions and aggregations the rules and panels may call.
FUNCTIONS = frozenset({"absent", "count", "max", "min", "sum", "avg", "time", "vector"})
#: PromQL words that are not metric names.
KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool"}
)
#: Labels Prometheus adds to every scraped series.
TARGET_LABELS = frozenset({"instance", "job"})

Metrics = dict[str, set[str]]


def tool(name: str) -> str:
    """The absolute path of a system program the tests need (scripts/test installs them)."""
    found = shutil.which(name)
    assert found, f"{name} is not installed (scripts/test installs Debian's prometheus)"
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def connects(host: str, port: int) -> bool:
    """Whether a TCP connection to host:port is accepted."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def http_get(port: int, target: str) -> tuple[int, str]:
    """GET `target` from 127.0.0.1:`port`: the status and the body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", target)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def metric_names(exposition: str) -> Metrics:
    """Each sample name in a text exposition, with the label names its samples carry."""
    names: Metrics = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return names


def nodes_in(exposition: str) -> set[str]:
    """The `node` label values in a text exposition."""
    return {
        s.labels["node"]
        for family in text_string_to_metric_families(exposition)
        for s in family.samples
        if "node" in s.labels
    }


def selectors(expr: str) -> list[tuple[str, set[str]]]:
    """The series a PromQL expression selects: each name with the label names it matches on.

    A regex reading, enough for the expressions ugro ships: strings, label matchers, ranges
    and grouping clauses are taken out; what remains that is not a function, a keyword or a
    number is a metric name. Grafana's `$variables` only ever appear inside strings.
    """
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    found = [
        (match[1], set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", match[2])))
        for match in re.finditer(r"([A-Za-z_:][\w:]*)\s*\{([^}]*)\}", expr)
    ]
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", expr)
    bare = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", bare)
    selected = {name for name, _ in found}
    for match in re.finditer(r"(?<![\w.:])([A-Za-z_:][\w:]*)(\s*\()?", bare):
        name, call = match[1], match[2]
        if call:
            assert name in FUNCTIONS, f"unexpected PromQL function {name}() in {expr!r}"
        elif name not in KEYWORDS and name not in selected:
            found.append((name, set()))
    return found


def assert_served(expr: str, served: Metrics, where: str) -> set[str]:
    """Assert that every series `expr` selects is served with the labels it matches on.

    Returns the label names the selected series carry (plus Prometheus's target labels).
    """
    names = selectors(expr)
    assert names, f"{where}: no metric found in {expr!r}"
    labels = set(TARGET_LABELS)
    for name, matched in names:
        if name in PROMETHEUS_SERIES:
            assert matched <= TARGET_LABELS, f"{where}: {name}{{{matched}}}"
            continue
        assert name.startswith("ugro_"), f"{where}: {name} is not a ugro metric ({expr!r})"
        assert name in served, f"{where}: {name} is not served by the exporter ({expr!r})"
        assert matched <= served[name] | TARGET_LABELS, (
            f"{where}: {name} has no label {matched - served[name]} ({expr!r})"
        )
        labels |= served[name]
    return labels


def rules() -> list[dict[str, Any]]:
    """Every rule of the shipped rules file."""
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    """The shipped Grafana dashboard."""
    document: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return document


def panel_exprs() -> list[tuple[str, str]]:
    """(panel title, expr) for every query of every dashboard panel."""
    return [
        (panel["title"], target["expr"])
        for panel in dashboard()["panels"]
        for target in panel.get("targets", [])
    ]


def ugro_command(path: Path, *args: str) -> list[str]:
    """The argv of `ugro --config path ARGS`."""
    return [sys.executable, "-m", "ugro", "--config", str(path), *args]


@contextlib.contextmanager
def process(argv: list[str], output: Path, env: dict[str, str] | None = None) -> Iterator[Any]:
    """Run `argv` with its output in `output`; terminate and reap it on the way out."""
    with output.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        proc.wait(timeout=10)
        text = output.read_text(encoding="utf-8", errors="replace")
        assert "Traceback" not in text, text


def daemon_config(
    cluster: TestCluster, path: Path, hosts: list[TestHost], exporter: dict[str, object]
) -> Path:
    """A cluster.yaml for a daemon sweeping `hosts` every second, with an `exporter:` section.

    The check timeouts stay the harness's (3 s): these tests share a small machine with
    Prometheus and other suites, where 1 s deadlines time out now and then.
    """
    return cluster.write_config(path, hosts=hosts, monitor=FAST_MONITOR, exporter=exporter)


def read_state(home: Path) -> dict[str, Any] | None:
    """The state file as JSON; None before the first write."""
    try:
        document: dict[str, Any] = json.loads((home / "cluster_state.json").read_bytes())
    except FileNotFoundError:
        return None
    return document


def complete(node: dict[str, Any]) -> bool:
    """Whether a node's verdict has every reading: GPUs, disks, host and latency."""
    latency = node["checks"].get("latency", {}).get("value")
    return bool(node["gpus"] and node["disks"] and node["host"] and latency is not None)


def wait_swept(proc: subprocess.Popen[bytes], home: Path, nodes: int, log: Path) -> None:
    """Wait until the daemon has persisted a sweep of `nodes` nodes, one with every reading."""

    def swept() -> bool:
        assert proc.poll() is None, f"the daemon exited: {log.read_text(encoding='utf-8')}"
        state = read_state(home)
        return bool(
            state
            and state["daemon"]
            and state["daemon"].get("last_sweep_at")
            and len(state["nodes"]) == nodes
            and any(complete(node) for node in state["nodes"].values())
        )

    wait_for(swept, f"a sweep of {nodes} nodes")


@pytest.fixture(scope="module")
def exposition(
    shared_cluster: TestCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`ugro metrics` after a daemon swept three hosts, one failing: every family has samples."""
    tmp = tmp_path_factory.mktemp("exposition")
    home = tmp / "home"
    env = {"UGRO_HOME": str(home)}
    shared_cluster.reset()
    shared_cluster.host("h1").set_gpu("driver")
    path = daemon_config(
        shared_cluster, tmp / "cluster.yaml", shared_cluster.hosts[:3], {"enabled": False}
    )
    with process(ugro_command(path, "daemon", "run"), tmp / "daemon.out", env) as proc:
        wait_swept(proc, home, 3, tmp / "daemon.out")
    ran = run_ugro("metrics", env=env)
    assert ran.code == 0, ran.err
    yield ran.out
    shared_cluster.reset()


def test_rules_pass_promtool() -> None:
    """`promtool check rules` accepts the shipped alerting rules."""
    done = subprocess.run(
        [tool("promtool"), "check", "rules", str(RULES)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules())} rules found" in done.stdout


def test_rules_pass_their_unit_tests() -> None:
    """`promtool test rules` proves when each alert fires and what it says; none is untested."""
    cases = yaml.safe_load(RULES_TESTS.read_text(encoding="utf-8"))["tests"]
    tested = {t["alertname"] for case in cases for t in case["alert_rule_test"]}
    assert tested == {rule["alert"] for rule in rules()}
    done = subprocess.run(
        [tool("promtool"), "test", "rules", RULES_TESTS.name],
        cwd=RULES_TESTS.parent,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_exposition_passes_promtool_lint(exposition: str) -> None:
    """`promtool check metrics` finds no problem in a full exposition of `ugro metrics`."""
    done = subprocess.run(
        [tool("promtool"), "check", "metrics"],
        input=exposition,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout + done.stderr == ""


def test_exposition_has_every_family(exposition: str) -> None:
    """After a daemon's sweep every family the exporter knows has samples, GPUs and disks too."""
    served = metric_names(exposition)
    expected = {
        "ugro_build_info",
        "ugro_state_readable",
        "ugro_last_sweep_timestamp_seconds",
        "ugro_sweep_duration_seconds",
        "ugro_daemon_errors_total",
        "ugro_node_up",
        "ugro_node_health_ratio",
        "ugro_node_status",
        "ugro_node_last_check_timestamp_seconds",
        "ugro_check_success",
        "ugro_check_status",
        "ugro_check_duration_seconds",
        "ugro_latency_seconds",
        "ugro_disk_free_bytes",
        "ugro_disk_size_bytes",
        "ugro_gpu_temperature_celsius",
        "ugro_gpu_utilization_ratio",
        "ugro_gpu_memory_used_bytes",
        "ugro_gpu_memory_total_bytes",
        "ugro_gpu_power_watts",
        "ugro_gpu_power_limit_watts",
        "ugro_host_load1",
        "ugro_host_cpus",
        "ugro_host_memory_available_bytes",
        "ugro_host_memory_total_bytes",
        "ugro_node_version_info",
        "ugro_node_cordoned",
        "ugro_exporter_skipped_nodes",
    }
    assert set(served) == expected
    assert nodes_in(exposition) == {"h0", "h1", "h2"}


def test_rules_use_only_served_metrics_and_labels(exposition: str) -> None:
    """Every rule selects served series and its annotations name only labels they carry."""
    served = metric_names(exposition)
    for rule in rules():
        name = rule["alert"]
        labels = assert_served(rule["expr"], served, name)
        if rule["expr"].startswith("absent("):
            labels = set()  # absent() keeps only the equality matchers, here none
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert set(rule["annotations"]) == {"summary", "description"}, name
        for text in rule["annotations"].values():
            used = set(re.findall(r"\$labels\.(\w+)", text))
            assert used <= labels, f"{name}: annotations name {used - labels}"


def test_dashboard_uses_only_served_metrics_and_labels(exposition: str) -> None:
    """Every dashboard query and the node variable select series the exporter serves."""
    board = dashboard()
    served = metric_names(exposition)
    assert board["schemaVersion"] >= 36
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    node = variables["node"]
    assert node["definition"] == "label_values(ugro_node_up, node)"
    assert "node" in served["ugro_node_up"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    exprs = panel_exprs()
    assert len(exprs) >= 10
    for title, expr in exprs:
        assert_served(expr, served, f"panel {title!r}")
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
    used = {name for _, expr in exprs for name, _ in selectors(expr)}
    for wanted in (
        "ugro_node_status",
        "ugro_node_health_ratio",
        "ugro_check_success",
        "ugro_gpu_temperature_celsius",
        "ugro_gpu_memory_used_bytes",
        "ugro_gpu_memory_total_bytes",
        "ugro_disk_free_bytes",
        "ugro_latency_seconds",
        "ugro_sweep_duration_seconds",
    ):
        assert wanted in used, f"no panel shows {wanted}"


def prometheus_config(tmp: Path, exporter_port: int) -> Path:
    """A prometheus.yml scraping the exporter every second, with ugro's rules loaded."""
    path = tmp / "prometheus.yml"
    document = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {"job_name": "ugro", "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}]}
        ],
    }
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


class PrometheusAPI:
    """The HTTP API of a Prometheus on 127.0.0.1."""

    def __init__(self, port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
        """Talk to the Prometheus `proc` on `port`, whose output goes to `log`."""
        self.port = port
        self.proc = proc
        self.log = log

    def get(self, target: str) -> Any:
        """The `data` of a successful API answer."""
        assert self.proc.poll() is None, self.log.read_text(encoding="utf-8")
        status, body = http_get(self.port, target)
        document = json.loads(body)
        assert status == 200, body
        assert document["status"] == "success", body
        return document["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector `expr` evaluates to now."""
        data = self.get("/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        result: list[dict[str, Any]] = data["result"] if data["resultType"] == "vector" else []
        return result

    def value(self, expr: str) -> float | None:
        """The value of a one-series query; None while it has no series."""
        result = self.query(expr)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def ready(self) -> bool:
        """Whether Prometheus says it is ready."""
        with contextlib.suppress(OSError):
            return http_get(self.port, "/-/ready")[0] == 200
        return False


def test_real_prometheus_scrapes_the_daemon_and_loads_the_rules(
    cluster: TestCluster, tmp_path: Path, isolated_home: Path
) -> None:
    """A real Prometheus scrapes a real daemon: verdicts arrive, rules load, a removed node goes."""
    cluster.host("h1").set_gpu("driver")
    exporter_port, web_port = free_port(), free_port()
    path = daemon_config(
        cluster, tmp_path / "cluster.yaml", cluster.hosts[:3], {"port": exporter_port}
    )
    prometheus = [
        tool("prometheus"),
        f"--config.file={prometheus_config(tmp_path, exporter_port)}",
        f"--storage.tsdb.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{web_port}",
        "--log.level=warn",
    ]
    daemon_log, prometheus_log = tmp_path / "daemon.out", tmp_path / "prometheus.out"
    with (
        process(ugro_command(path, "daemon", "run"), daemon_log) as daemon,
        process(prometheus, prometheus_log) as server,
    ):
        api = PrometheusAPI(web_port, server, prometheus_log)
        wait_for(api.ready, "Prometheus to be ready")

        wait_for(lambda: api.value('ugro_node_up{node="h0"}') == 1, "h0 up")
        wait_for(
            lambda: api.value('ugro_node_status{node="h1",status="unhealthy"}') == 1,
            "h1 confirmed unhealthy",
        )
        assert api.value('ugro_check_success{node="h1",check="gpu"}') == 0
        assert api.value('ugro_gpu_temperature_celsius{node="h1"}') is None
        wait_for(
            lambda: api.query('ugro_gpu_temperature_celsius{node="h0"}'), "h0's GPU temperatures"
        )
        wait_for(
            lambda: (api.value('ugro_disk_free_bytes{node="h0",path="/"}') or 0) > 0,
            "h0's free disk space",
        )
        assert api.value('up{job="ugro"}') == 1

        def rule_health() -> dict[str, str]:
            groups = api.get("/api/v1/rules")["groups"]
            return {r["name"]: r["health"] for g in groups for r in g["rules"]}

        wanted = {rule["alert"]: "ok" for rule in rules()}
        wait_for(lambda: rule_health() == wanted, "every ugro rule evaluated, health ok")

        def alerting() -> bool:
            # Alerts from the first evaluations, before the first scrape, take one more to clear.
            alerts = api.get("/api/v1/alerts")["alerts"]
            active = {(a["labels"]["alertname"], a["labels"].get("node")) for a in alerts}
            quiet = {"UgroExporterAbsent", "UgroExporterDown", "UgroMonitorStalled"}
            return ("UgroNodeUnhealthy", "h1") in active and not quiet & {n for n, _ in active}

        wait_for(alerting, "UgroNodeUnhealthy pending for h1, and no alert about ugro itself")

        for title, expr in panel_exprs():
            # The whole cluster, as the dashboard shows it with node=All.
            whole = expr.replace("$node", ".*")
            wait_for(partial(api.query, whole), f"panel {title!r} to show {whole}")

        daemon_config(
            cluster,
            path,
            [cluster.host("h0"), cluster.host("h2")],
            {"port": exporter_port},
        )
        daemon.send_signal(signal.SIGHUP)

        def scraped_without_h1() -> bool:
            status, body = http_get(exporter_port, "/metrics")
            assert status == 200, body
            return nodes_in(body) == {"h0", "h2"}

        wait_for(scraped_without_h1, "h1's series gone from /metrics after SIGHUP")
        wait_for(lambda: not api.query('{node="h1"}'), "h1's series stale in Prometheus")
        assert api.query('ugro_node_up{node="h0"}')
        assert daemon.poll() is None
    assert daemon.returncode == 0, daemon_log.read_text(encoding="utf-8")
    assert server.returncode == 0, prometheus_log.read_text(encoding="utf-8")
    assert isolated_home.joinpath("cluster_state.json").exists()


def test_real_prometheus_scrapes_past_a_hostile_node(tmp_path: Path) -> None:
    """A node with a 310-digit disk value: the scrape succeeds (up 1) with the other nodes."""
    write_state(paths.state_file(), HUGE_DISK)
    ran = run_ugro("metrics")
    assert ran.code == 0, ran.err
    assert nodes_in(ran.out) == {"gpu1", "gpu3"}
    server = exporter.serve(paths.state_file(), "127.0.0.1", 0)
    web_port, log = free_port(), tmp_path / "prometheus.out"
    prometheus = [
        tool("prometheus"),
        f"--config.file={prometheus_config(tmp_path, server.server_address[1])}",
        f"--storage.tsdb.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{web_port}",
        "--log.level=warn",
    ]
    try:
        with process(prometheus, log) as proc:
            api = PrometheusAPI(web_port, proc, log)
            wait_for(api.ready, "Prometheus to be ready")
            wait_for(lambda: api.value('up{job="ugro"}') == 1, "a successful scrape")
            assert api.value('ugro_node_up{node="gpu1"}') == 1
            assert api.value('ugro_disk_free_bytes{node="gpu3"}') == 100 * 2**30
            assert api.value("ugro_exporter_skipped_nodes") == 1
            assert not api.query('{node="gpu2"}')
    finally:
        server.shutdown()
        server.server_close()


def test_textfile_is_written_atomically(cluster: TestCluster, tmp_path: Path) -> None:
    """`ugro metrics --textfile` replaces ugro.prom by rename, leaving no temp file, parseable."""
    path = cluster.write_config(tmp_path / "cluster.yaml", hosts=cluster.hosts[:2])
    assert run_ugro("--config", path, "check").code in {0, 1}  # 1: this busy machine's load
    directory = tmp_path / "textfile"
    directory.mkdir()
    target = directory / "ugro.prom"
    target.write_text("# an older scrape\n", encoding="utf-8")
    old_inode = target.stat().st_ino
    # A reader holding the old file open keeps seeing a whole file, not a truncated one.
    with target.open(encoding="utf-8") as reader:
        ran = run_ugro("metrics", "--textfile", directory)
        assert reader.read() == "# an older scrape\n"
    assert ran.code == 0, ran.err
    assert ran.out == f"wrote {target}\n"
    assert [p.name for p in directory.iterdir()] == ["ugro.prom"]
    assert target.stat().st_ino != old_inode
    text = target.read_text(encoding="utf-8")
    served = metric_names(text)
    assert {"ugro_build_info", "ugro_node_up", "ugro_check_success"} <= set(served)
    assert nodes_in(text) == {"h0", "h1"}
    printed = run_ugro("metrics")
    assert printed.code == 0
    assert set(metric_names(printed.out)) == set(served)


def test_exporter_binds_loopback_by_default(
    cluster: TestCluster, tmp_path: Path, isolated_home: Path
) -> None:
    """With only a port set, the daemon serves /metrics on 127.0.0.1 and on no other address."""
    assert config.ExporterSettings().address == "127.0.0.1"
    port = free_port()
    path = daemon_config(cluster, tmp_path / "cluster.yaml", cluster.hosts[:1], {"port": port})
    assert config.load(path).exporter.address == "127.0.0.1"
    log = tmp_path / "daemon.out"
    with process(ugro_command(path, "daemon", "run"), log) as daemon:

        def serving() -> bool:
            assert daemon.poll() is None, log.read_text(encoding="utf-8")
            return connects("127.0.0.1", port)

        wait_for(serving, f"the exporter on 127.0.0.1:{port}")
        status, body = http_get(port, "/metrics")
        assert status == 200
        assert "ugro_build_info" in body
        # Bound to 127.0.0.1 itself, not to every address: another loopback address is refused.
        assert not connects("127.0.0.2", port)
        wait_swept(daemon, isolated_home, 1, log)
    assert f"serving metrics on http://127.0.0.1:{port}/metrics" in log.read_text(encoding="utf-8")


def test_disabled_exporter_serves_nothing(
    cluster: TestCluster, tmp_path: Path, isolated_home: Path
) -> None:
    """`exporter: {enabled: false}`: the daemon monitors but listens on no metrics port."""
    port = free_port()
    path = daemon_config(
        cluster,
        tmp_path / "cluster.yaml",
        cluster.hosts[:1],
        {"enabled": False, "port": port},
    )
    log = tmp_path / "daemon.out"
    with process(ugro_command(path, "daemon", "run"), log) as daemon:
        wait_swept(daemon, isolated_home, 1, log)
        assert not connects("127.0.0.1", port)
    assert "serving metrics" not in log.read_text(encoding="utf-8")


def test_taken_port_stops_the_daemon_with_a_clear_message(
    cluster: TestCluster, tmp_path: Path
) -> None:
    """A metrics port already in use: the daemon exits 1 naming the port and exporter.port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = daemon_config(cluster, tmp_path / "cluster.yaml", cluster.hosts[:1], {"port": port})
        ran = run_ugro("--config", path, "daemon", "run", timeout=30)
    assert ran.code == 1, ran.err
    assert f"127.0.0.1:{port}" in ran.err
    assert "exporter.port" in ran.err
