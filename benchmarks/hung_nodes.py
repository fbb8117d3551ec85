"""The healthy nodes' cadence while 10 % of the nodes hang (goal: within 10 % of the interval).

Starts real OpenSSH servers on loopback (the test harness `tests/sshcluster.py`: one sshd per
node on 127.0.0.10+i, stubbed nvidia-smi and a fake torch), and runs `ugro daemon run` on
them with the default checks and timeouts twice: once with every node healthy, once with a
tenth of them wedged (nvidia-smi and torch never answer, so each of their checks waits out
the gpu and torch timeouts, 30 s for torch). Halfway through each run one healthy node's
driver fails. Figures, per run:

* cadence: the gaps between consecutive checks of each healthy node (from the history
  database), as median, 95th percentile and maximum, and the maximum against the interval;
* freshness: the oldest healthy verdict seen in the state file (sampled every 0.2 s), and
  whether any was stale (older than 3 intervals) or missing from `ugro hosts`;
* detection: seconds from the driver failing to the node shown unhealthy.

    .venv/bin/python benchmarks/hung_nodes.py [--nodes 20] [--interval 10] [--seconds 120]

Needs root (the harness's sshd must switch users) and /usr/sbin/sshd.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from sshcluster import TestCluster, TestHost  # noqa: E402

#: The share of nodes that hang.
HUNG_SHARE = 0.1
#: How often the state file is sampled.
SAMPLE_S = 0.2
#: A verdict is stale after this many intervals (`ugro.store.state.STALE_SWEEPS`).
STALE_INTERVALS = 3


def percentile(values: list[float], share: float) -> float:
    """The `share` percentile of `values` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def check_times(history: Path) -> dict[str, list[float]]:
    """Each node's check start times (Unix seconds) from the history database, in order."""
    with contextlib.closing(sqlite3.connect(history)) as db:
        rows = db.execute(
            "SELECT n.name, s.ts FROM node_samples s JOIN names n ON n.id = s.node ORDER BY s.ts"
        ).fetchall()
    times: dict[str, list[float]] = {}
    for name, ts in rows:
        times.setdefault(name, []).append(ts / 1000)
    return times


def hosts_listed(home: str, config: Path) -> set[str]:
    """The addresses `ugro hosts` lists now."""
    done = subprocess.run(
        [sys.executable, "-m", "ugro", "--config", str(config), "hosts"],
        env={**os.environ, "UGRO_HOME": home},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return set(done.stdout.split())


@dataclass
class Watch:
    """What the state file showed during a run: freshness, `ugro hosts`, the fault's detection."""

    healthy: list[str]
    victim: str
    interval: float
    oldest: float = 0.0
    missing_from_hosts: int = 0
    failed_at: float = 0.0
    detected_after: float | None = None

    def sample(self, nodes: dict[str, Any], since_start: float) -> None:
        """Take in one reading of the state file's nodes."""
        if since_start > self.interval and all(n in nodes for n in self.healthy):
            now = datetime.now(UTC)
            ages = [
                (now - datetime.fromisoformat(nodes[n]["last_check"])).total_seconds()
                for n in self.healthy
            ]
            self.oldest = max(self.oldest, *ages)
        if (
            self.failed_at
            and self.detected_after is None
            and nodes[self.victim]["status"] == "unhealthy"
        ):
            self.detected_after = time.monotonic() - self.failed_at


def run(
    cluster: TestCluster,
    hosts: list[TestHost],
    hung: list[TestHost],
    *,
    interval: float,
    seconds: float,
) -> dict[str, Any]:
    """Run the daemon on `hosts` with `hung` wedged, fail the last host halfway; the figures."""
    victim = hosts[-1]
    for host in hosts:
        host.reset()
    with tempfile.TemporaryDirectory(prefix="ugro-hung-") as home:
        config = cluster.write_config(
            Path(home) / "cluster.yaml",
            hosts=hosts,
            timeouts={},
            monitor={"interval_s": interval},
            exporter={"enabled": False},
        )
        daemon = subprocess.Popen(
            [sys.executable, "-m", "ugro", "--config", str(config), "daemon", "run", "--no-stderr"],
            env={**os.environ, "UGRO_HOME": home},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        state_path = Path(home) / "cluster_state.json"
        healthy = [h.name for h in hosts if h not in hung and h is not victim]
        watch = Watch(healthy, victim.name, interval)
        try:
            for host in hung:
                host.set_gpu("hang")
                host.set_torch("hang")
            started = time.monotonic()
            while time.monotonic() - started < seconds:
                time.sleep(SAMPLE_S)
                if not watch.failed_at and time.monotonic() - started > seconds / 2:
                    victim.set_gpu("driver")
                    watch.failed_at = time.monotonic()
                    listed = hosts_listed(home, config)
                    watch.missing_from_hosts = sum(
                        h.addr not in listed for h in hosts if h.name in healthy
                    )
                with contextlib.suppress(FileNotFoundError, ValueError, KeyError):
                    watch.sample(
                        json.loads(state_path.read_bytes())["nodes"], time.monotonic() - started
                    )
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        times = check_times(Path(home) / "history.db")
    # The first check of each node includes its connect; the cadence is what follows.
    gaps = [
        b - a for name in healthy for a, b in zip(times[name][1:], times[name][2:], strict=False)
    ]
    return {
        "gaps": gaps,
        "oldest": watch.oldest,
        "missing_from_hosts": watch.missing_from_hosts,
        "detected_after": watch.detected_after,
        "hung_checks": sum(len(times.get(h.name, [])) for h in hung),
    }


def show(what: str, figures: dict[str, Any], interval: float) -> None:
    """Print one run's figures."""
    gaps = figures["gaps"]
    worst = max(gaps)
    print(f"\n{what}:")
    print(
        f"  healthy nodes' check gaps ({len(gaps)}): median {statistics.median(gaps):.2f} s, "
        f"p95 {percentile(gaps, 0.95):.2f} s, max {worst:.2f} s "
        f"({(worst - interval) / interval:+.1%} of the {interval:g} s interval; goal within 10 %)"
    )
    stale = figures["oldest"] > STALE_INTERVALS * interval
    print(
        f"  oldest healthy verdict seen: {figures['oldest']:.1f} s "
        f"({'stale' if stale else 'never stale'}); "
        f"healthy nodes missing from `ugro hosts`: {figures['missing_from_hosts']}"
    )
    detected = figures["detected_after"]
    print(
        "  a healthy node's driver failing shown unhealthy after "
        + (f"{detected:.1f} s" if detected is not None else "never (within the run)")
    )
    if figures["hung_checks"]:
        print(f"  checks of the hung nodes completed: {figures['hung_checks']}")


def main() -> None:
    """Start the hosts, measure without and with hung nodes, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=120.0)
    args = parser.parse_args()
    print(
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}; {args.nodes} nodes, "
        f"interval {args.interval:g} s, {args.seconds:g} s a run, default checks and timeouts; "
        f"load before start {os.getloadavg()[0]:.2f}"
    )
    with tempfile.TemporaryDirectory(prefix="ugro-bench-") as name:
        cluster = TestCluster.start(Path(name) / "cluster", args.nodes)
        try:
            hosts = cluster.hosts
            hung = hosts[: max(1, round(HUNG_SHARE * len(hosts)))]
            timing = {"interval": args.interval, "seconds": args.seconds}
            baseline = run(cluster, hosts, [], **timing)
            show("every node healthy", baseline, args.interval)
            figures = run(cluster, hosts, hung, **timing)
            show(f"{len(hung)} of {len(hosts)} nodes hung (GPU wedged)", figures, args.interval)
        finally:
            cluster.stop_all()
    print(f"\nload at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
