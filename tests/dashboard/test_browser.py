"""The dashboard in a real browser, served by a real daemon monitoring the sshd test cluster.

Headless Debian chromium (tests/browser.py) opens the daemon's dashboard: every node is a
tile; a faulted node's tile turns unhealthy without a reload; its page shows the failing
check's message and charts with data points; a GPU name full of markup and escapes shows as
plain text; the console stays free of errors (CSP violations included); and no response,
page or document, carries the secrets of the alert sink. Screenshots are kept in tmp_path.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest

import browser
from conftest import PATIENCE_S, run_ugro
from daemonharness import FAST_TIMEOUTS, SSH_GPU, daemon_starter, monitor

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from selenium.webdriver.chrome.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement

    from daemonharness import DaemonProcess
    from sshcluster import TestCluster, TestHost

pytestmark = pytest.mark.integration

# What the victim's nvidia-smi calls its GPUs: markup, an entity and a terminal escape.
HOSTILE_NAME = "<b>bold</b><img src=x onerror=alert(1)>&amp;\x1b[31mRED"
# As the page must show it: the escape sequence removed, every other character as it is.
HOSTILE_SHOWN = "<b>bold</b><img src=x onerror=alert(1)>&amp;RED"
SECRET_URL_PART = "hook-secret-4f1c"  # noqa: S105 - a planted secret, looked for
SECRET_HEADER = "Bearer header-secret-77aa"  # noqa: S105 - same


@pytest.fixture
def hostile_gpu_host(cluster: TestCluster) -> Iterator[TestHost]:
    """A host whose nvidia-smi names its GPUs HOSTILE_NAME; its stub is put back afterwards."""
    host = cluster.host("h2")
    stub = host.dir / "bin" / "nvidia-smi"
    original = stub.read_bytes()
    real = host.dir / "bin" / "nvidia-smi.real"
    real.write_bytes(original)
    real.chmod(0o755)
    name = HOSTILE_NAME.replace("\x1b", "\\033")
    line = (
        "{i}, GPU-0000000{i}-1c2b-7f0a-9b3e-3a5e7a1c2d10, " + name + ", 41, 3, 1024, 24564, 31, 450"
    )
    stub.write_text(
        "#!/bin/sh\n"
        'case "$*" in\n'
        "    *--query-gpu=index,uuid,name,*)\n"
        f"        printf '{line.format(i=0)}\\n{line.format(i=1)}\\n'; exit 0 ;;\n"
        "esac\n"
        f'exec {real} "$@"\n',
        encoding="utf-8",
    )
    try:
        yield host
    finally:
        stub.write_bytes(original)
        real.unlink()


@pytest.fixture
def chrome() -> Iterator[WebDriver]:
    """A headless chromium, closed at the end."""
    why = browser.available()
    assert why is None, why
    driver = browser.chromium()
    try:
        yield driver
    finally:
        driver.quit()


@contextlib.contextmanager
def _daemon(
    cluster: TestCluster, hosts: list[TestHost], home: Path, directory: Path, **timing: object
) -> Iterator[tuple[DaemonProcess, str]]:
    """A daemon watching `hosts` with the dashboard on a free port, and the dashboard's URL."""
    port = _free_port()
    config = cluster.write_config(
        directory / "cluster.yaml",
        hosts,
        None,
        checks=SSH_GPU,
        timeouts=FAST_TIMEOUTS,
        monitor=monitor(**timing),
        exporter={"enabled": True, "address": "127.0.0.1", "port": port},
        alerts={
            "sinks": [
                {
                    "name": "hook",
                    "type": "webhook",
                    # Nothing listens there: delivery fails, and its error is on the alerts page.
                    "url": f"http://127.0.0.1:9/{SECRET_URL_PART}",
                    "headers": {"Authorization": SECRET_HEADER},
                    "timeout_s": 1,
                }
            ]
        },
    )
    with daemon_starter(home, directory) as start:
        daemon = start(config)
        daemon.wait_log("serving the dashboard on")
        yield daemon, f"http://127.0.0.1:{port}"


@pytest.fixture
def dashboard_daemon(
    cluster: TestCluster, hostile_gpu_host: TestHost, isolated_home: Path, tmp_path: Path
) -> Iterator[tuple[DaemonProcess, str]]:
    """A daemon watching h0-h2 (h2 with hostile GPU names), its dashboard's base URL."""
    hosts = [cluster.host("h0"), cluster.host("h1"), hostile_gpu_host]
    with _daemon(cluster, hosts, isolated_home, tmp_path) as started:
        yield started


def serve_args(port: int) -> list[str]:
    """`ugro dashboard --serve` on `port`."""
    return ["dashboard", "--serve", "--port", str(port)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback http
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _wait(driver: WebDriver, what: str, condition: Any) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, PATIENCE_S, poll_frequency=0.1).until(condition, what)


def _tile(driver: WebDriver, node: str) -> WebElement:
    return driver.find_element("css selector", f'#tiles li[data-node="{node}"]')


def _tile_status(driver: WebDriver, node: str) -> str | None:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    with contextlib.suppress(NoSuchElementException, StaleElementReferenceException):
        return _tile(driver, node).get_attribute("data-status")
    return None


def test_dashboard_in_a_browser(
    dashboard_daemon: tuple[DaemonProcess, str],
    cluster: TestCluster,
    chrome: WebDriver,
    tmp_path: Path,
) -> None:
    """Tiles for every node, a live fault, the node page's message and charts, text as text."""
    daemon, base = dashboard_daemon
    chrome.get(base + "/")
    _wait(
        chrome,
        "a tile for every node",
        lambda d: (
            all(_tile_status(d, n) in {"healthy", "degraded"} for n in ("h0", "h1"))
            and _tile_status(d, "h2") is not None
        ),
    )
    chrome.save_screenshot(str(tmp_path / "overview-before.png"))
    page = chrome.find_element("tag name", "body")
    page_id = page.id

    cluster.host("h1").set_gpu("driver")
    _wait(chrome, "h1's tile unhealthy", lambda d: _tile_status(d, "h1") == "unhealthy")
    # The same document: the page changed in place, it was not reloaded.
    assert chrome.find_element("tag name", "body").id == page_id
    tile_text = _tile(chrome, "h1").text
    assert "unhealthy" in tile_text  # the status in words, not colour alone
    assert "driver" in tile_text.lower()
    chrome.save_screenshot(str(tmp_path / "overview.png"))

    _tile(chrome, "h1").find_element("tag name", "a").click()
    _wait(chrome, "the node page", lambda d: d.find_elements("css selector", "#checks tbody tr"))
    api = json.loads(_fetch(f"{base}/api/v1/nodes/h1")[1])
    message = next(c["message"] for c in api["checks"] if c["name"] == "gpu")
    _wait(
        chrome,
        "the failing gpu check's message",
        lambda d: message in d.find_element("id", "checks").text,
    )
    chrome.find_element("css selector", '[data-window="1h"]').click()
    _wait(
        chrome,
        "a score chart with data points",
        lambda d: int(d.find_element("id", "chart-score").get_attribute("data-points") or 0) >= 1,
    )
    assert chrome.find_elements("css selector", "#chart-score circle.dot")
    chrome.save_screenshot(str(tmp_path / "node.png"))

    chrome.get(base + "/node/h2")
    _wait(chrome, "h2's GPUs", lambda d: d.find_elements("css selector", "#gpus tbody tr"))
    cells = [
        row.find_elements("tag name", "td")[1].text
        for row in chrome.find_elements("css selector", "#gpus tbody tr")
    ]
    assert cells == [HOSTILE_SHOWN, HOSTILE_SHOWN]
    assert chrome.find_elements("css selector", "main img, main b") == []
    chrome.save_screenshot(str(tmp_path / "hostile.png"))

    chrome.get(base + "/alerts")
    _wait(chrome, "the firing alert", lambda d: "h1" in d.find_element("id", "firing").text)
    chrome.save_screenshot(str(tmp_path / "alerts.png"))

    # A phone: nothing wider than the screen; and the dark theme, switched and remembered.
    chrome.set_window_size(390, 844)
    chrome.get(base + "/")
    _wait(chrome, "tiles on a phone", lambda d: _tile_status(d, "h1") == "unhealthy")
    assert chrome.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    chrome.find_element("id", "theme").click()
    dark = chrome.execute_script("return document.documentElement.dataset.theme")
    chrome.refresh()
    _wait(
        chrome,
        "the theme remembered",
        lambda d: d.execute_script("return document.documentElement.dataset.theme") == dark,
    )
    chrome.save_screenshot(str(tmp_path / "phone.png"))
    assert browser.console_errors(chrome) == []
    assert daemon.process.poll() is None


def test_no_secret_in_any_response(
    dashboard_daemon: tuple[DaemonProcess, str], cluster: TestCluster
) -> None:
    """Neither the sink's URL nor its header is in any page or document, delivery failed or not."""
    daemon, base = dashboard_daemon
    cluster.host("h1").set_gpu("driver")
    daemon.wait_state(
        lambda s: bool((s.get("alerts") or {}).get("delivery", {}).get("hook", {}).get("failed")),
        what="a failed delivery to the hook",
    )
    for path in (
        "/",
        "/alerts",
        "/node/h1",
        "/api/v1/health",
        "/api/v1/overview",
        "/api/v1/alerts",
        "/api/v1/nodes/h1",
        "/api/v1/history?node=h1&since=1h",
        "/metrics",
    ):
        status, body = _fetch(base + path)
        assert status == 200, path
        assert SECRET_URL_PART.encode() not in body, path
        assert b"header-secret" not in body, path
    assert json.loads(_fetch(base + "/api/v1/alerts")[1])["delivery"]["hook"]["failed"] >= 1


def test_health_api_equals_the_health_command(
    cluster: TestCluster, isolated_home: Path, tmp_path: Path
) -> None:
    """The daemon's /api/v1/health is `ugro health --json`, but for when each was made."""
    hosts = [cluster.host("h0"), cluster.host("h1")]
    # A long interval: no sweep lands between the two reads.
    with _daemon(cluster, hosts, isolated_home, tmp_path, interval_s=60) as (daemon, base):
        daemon.wait_sweeps(1)
        served = json.loads(_fetch(base + "/api/v1/health")[1])
        printed = run_ugro("health", "--json").json()
    for doc in (served, printed):
        del doc["generated_at"]
        for node in doc["nodes"]:
            del node["age_s"]
    assert len(served["nodes"]) == 2
    assert served == printed


def test_dashboard_command_prints_the_daemons_url(
    dashboard_daemon: tuple[DaemonProcess, str], tmp_path: Path
) -> None:
    """`ugro dashboard` finds the running daemon's dashboard and prints its URL."""
    _, base = dashboard_daemon
    ran = run_ugro("--config", tmp_path / "cluster.yaml", "dashboard")
    assert ran.code == 0, ran.err
    assert ran.out.strip() == base + "/"


def test_serve_from_state_files_shows_stale(
    cluster: TestCluster, isolated_home: Path, tmp_path: Path, chrome: WebDriver
) -> None:
    """With no daemon, `ugro dashboard --serve` shows the last verdicts, read-only, as stale."""
    config = cluster.write_config(
        tmp_path / "cluster.yaml",
        [cluster.host("h0")],
        None,
        checks=SSH_GPU,
        timeouts=FAST_TIMEOUTS,
        monitor=monitor(),
        exporter={"enabled": False},
    )
    assert run_ugro("--config", config, "check").code in {0, 1}
    # Verdicts older than stale_after_s: rewrite the check time an hour back.
    state_path = isolated_home / "cluster_state.json"
    state = json.loads(state_path.read_text(encoding="utf-8"))
    state["nodes"]["h0"]["last_check"] = "2000-01-01T00:00:00+00:00"
    state_path.write_text(json.dumps(state), encoding="utf-8")
    port = _free_port()
    with subprocess.Popen(
        [sys.executable, "-m", "ugro", "--config", str(config), *serve_args(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        try:
            first = process.stdout.readline().decode()
            assert f"http://127.0.0.1:{port}/" in first, first
            chrome.get(f"http://127.0.0.1:{port}/")
            _wait(chrome, "h0 stale", lambda d: _tile_status(d, "h0") == "stale")
            banner = chrome.find_element("id", "banner").text
            assert "read-only" in banner
            assert "stale" in banner
            assert browser.console_errors(chrome) == []
            chrome.save_screenshot(str(tmp_path / "served-stale.png"))
        finally:
            process.terminate()
            process.wait(timeout=10)
        assert b"Traceback" not in process.stderr.read()
