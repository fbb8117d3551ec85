"""The dashboard's cost: overview load time in headless Chromium, page weight, server CPU.

For each cluster size, writes a state file of that many nodes (a mix of statuses, GPUs and
problems, some cordoned) into a temporary $UGRO_HOME and serves it with
`ugro dashboard --serve` (the daemon's own dashboard code, in a process of its own). Then:

- load: from navigating to / until every tile is drawn, in headless Debian chromium
  (median of `--runs`); goal ≤ 1 s at 1000 nodes;
- weight: the bytes a first visit transfers (pages, script, style, overview document), raw
  and gzipped as served;
- CPU: the serving process's CPU time per wall second with no page open, with the overview
  open and the state unchanged (polling alone), and with it open while the state is rewritten
  every second (a daemon at a 1 s interval, the worst case); from these, the cost at the
  default 30 s interval. Goal: the page costs < 1 % of a core at 100 nodes.

    .venv/bin/python benchmarks/dashboard_load.py [--nodes 100 1000] [--runs 5] [--cpu-s 20]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import browser
from ugro.model import (
    Alert,
    CheckResult,
    GpuMetrics,
    NodeStatus,
    NodeVerdict,
    Status,
)

STATUSES = [NodeStatus.HEALTHY] * 8 + [NodeStatus.DEGRADED, NodeStatus.UNHEALTHY]


def verdict(i: int, now: datetime) -> NodeVerdict:
    """Node i: mostly healthy, every tenth degraded or unhealthy with a shared problem."""
    status = STATUSES[i % len(STATUSES)]
    bad = status is not NodeStatus.HEALTHY
    gpus = tuple(
        GpuMetrics(
            g,
            f"GPU-{i:04d}-{g}",
            "NVIDIA H100 80GB HBM3",
            40.0 + g,
            90.0,
            70000.0,
            81559.0,
            650.0,
            700.0,
        )
        for g in range(8)
    )
    checks = (
        CheckResult("ssh", Status.OK, "SSH session open", duration_ms=12.0),
        CheckResult(
            "gpu",
            Status.FAIL if bad else Status.OK,
            "7 of 8 GPUs visible: GPU 3 fell off the bus" if bad else "8 × H100",
            duration_ms=80.0,
        ),
        CheckResult("latency", Status.OK, "0.4 ms", value=0.4, unit="ms", duration_ms=3.0),
    )
    return NodeVerdict(
        name=f"gpu{i:04d}",
        address=f"10.0.{i // 250}.{i % 250}",
        status=status,
        health_score=40.0 if bad else 100.0,
        pass_rate=0.8 if bad else 1.0,
        last_check=now,
        checks=checks,
        gpus=gpus,
        alerts=(Alert("critical", "gpu: 7 of 8 GPUs visible: GPU 3 fell off the bus"),)
        if bad
        else (),
        versions={"driver": "550.54.15", "cuda": "12.4"},
    )


def write_state(home: Path, nodes: int) -> list[NodeVerdict]:
    """Write the state of `nodes` nodes into `home`; the verdicts written."""
    os.environ["UGRO_HOME"] = str(home)
    from ugro import paths
    from ugro.store.cordons import Cordon, CordonStore
    from ugro.store.state import StateStore

    now = datetime.now(UTC)
    verdicts = [verdict(i, now) for i in range(nodes)]
    StateStore(paths.state_file()).update(verdicts)
    CordonStore().cordon(
        Cordon("gpu0009", "manual", "fan replaced", now - timedelta(hours=2), "ops")
    )
    return verdicts


def free_port() -> int:
    """A free port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fetch(url: str, *, gzipped: bool) -> int:
    """Bytes `url` transfers, gzipped when asked."""
    headers = {"Accept-Encoding": "gzip"} if gzipped else {}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - loopback
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
        return len(response.read())


def weight(base: str) -> tuple[int, int]:
    """(raw, gzipped) bytes of a first visit to the overview."""
    parts = [
        "/",
        "/static/dashboard.js",
        "/static/dashboard.css",
        "/static/favicon.svg",
        "/api/v1/overview",
    ]
    raw = sum(fetch(base + p, gzipped=False) for p in parts)
    packed = sum(fetch(base + p, gzipped=True) for p in parts)
    return raw, packed


def load_times(base: str, nodes: int, runs: int) -> list[float]:
    """Seconds from navigating to / until all `nodes` tiles are drawn, per run."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser.chromium()
    try:
        times = []
        for _ in range(runs):
            driver.get("about:blank")
            started = time.perf_counter()
            driver.get(base + "/")
            WebDriverWait(driver, 60, poll_frequency=0.005).until(
                lambda d: (
                    d.execute_script("return document.querySelectorAll('#tiles li').length")
                    == nodes
                )
            )
            times.append(time.perf_counter() - started)
        errors = browser.console_errors(driver)
        if errors:
            print(f"  console errors: {errors}")
        return times
    finally:
        driver.quit()


def cpu_share(process: psutil.Process, seconds: float, verdicts: list[NodeVerdict] | None) -> float:
    """The server's CPU time per wall second; the state rewritten every second with `verdicts`."""
    from ugro import paths
    from ugro.store.state import StateStore

    store = StateStore(paths.state_file())
    stop = threading.Event()

    def sweeps() -> None:
        while verdicts is not None and not stop.wait(1.0):
            now = datetime.now(UTC)
            store.update([dataclasses.replace(v, last_check=now) for v in verdicts])

    writer = threading.Thread(target=sweeps, daemon=True)
    writer.start()
    before = process.cpu_times()
    started = time.monotonic()
    time.sleep(seconds)
    after = process.cpu_times()
    wall = time.monotonic() - started
    stop.set()
    writer.join()
    return (after.user + after.system - before.user - before.system) / wall


def measure(nodes: int, runs: int, cpu_s: float) -> dict[str, float]:
    """Every figure for one cluster size."""
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        verdicts = write_state(home, nodes)
        port = free_port()
        env = {**os.environ, "UGRO_HOME": str(home)}
        config = home / "cluster.yaml"
        config.write_text(
            "workers:\n" + "".join(f"  - {{name: {v.name}, ip: {v.address}}}\n" for v in verdicts),
            encoding="utf-8",
        )
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ugro",
                "--config",
                str(config),
                "dashboard",
                "--serve",
                "--port",
                str(port),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        try:
            if server.stdout is None:
                sys.exit("no output from ugro dashboard --serve")
            server.stdout.readline()
            base = f"http://127.0.0.1:{port}"
            raw, packed = weight(base)
            times = load_times(base, nodes, runs)
            process = psutil.Process(server.pid)
            idle = cpu_share(process, cpu_s, verdicts)
            driver = browser.chromium()
            try:
                driver.get(base + "/")
                time.sleep(2)
                polling = cpu_share(process, cpu_s, None)
                busy = cpu_share(process, cpu_s, verdicts)
            finally:
                driver.quit()
        finally:
            server.terminate()
            server.wait(timeout=10)
            if server.stdout:
                server.stdout.close()
    return {
        "load_median_s": statistics.median(times),
        "load_max_s": max(times),
        "weight_raw_kb": raw / 1024,
        "weight_gzip_kb": packed / 1024,
        "cpu_idle_pct": idle * 100,
        "cpu_polling_pct": polling * 100,
        "cpu_page_pct": busy * 100,
        # Polling, plus one rebuild per sweep: what the page costs at the default 30 s interval.
        "cpu_page_30s_pct": (polling + (busy - polling) / 30) * 100,
    }


def main() -> None:
    """Measure each size and print the figures side by side."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cpu-s", type=float, default=20.0)
    args = parser.parse_args()
    why = browser.available()
    if why:
        sys.exit(why)
    results = {n: measure(n, args.runs, args.cpu_s) for n in args.nodes}
    print("load: navigate to / until every tile is drawn; weight: a first visit's bytes")
    print(f"{'nodes':>6} {'load median':>12} {'load max':>9} {'first visit':>12} {'gzipped':>9}")
    for n, r in results.items():
        print(
            f"{n:>6} {r['load_median_s']:>11.3f}s {r['load_max_s']:>8.3f}s "
            f"{r['weight_raw_kb']:>9.1f} KB {r['weight_gzip_kb']:>6.1f} KB"
        )
    print("server CPU, % of one core: no page open, state rewritten every 1 s; the page open,")
    print("state unchanged (polling alone); the page open, state rewritten every 1 s (a 1 s")
    print("interval, the worst case); and from these, the page open at the default 30 s interval")
    print(f"{'nodes':>6} {'no page':>8} {'polling':>8} {'1 s sweeps':>11} {'30 s sweeps':>12}")
    for n, r in results.items():
        print(
            f"{n:>6} {r['cpu_idle_pct']:>7.2f}% {r['cpu_polling_pct']:>7.2f}% "
            f"{r['cpu_page_pct']:>10.2f}% {r['cpu_page_30s_pct']:>11.2f}%"
        )
    print("goals: load ≤ 1 s at 1000 nodes; the page costs < 1 % of a core at 100 nodes")


if __name__ == "__main__":
    main()
