"""How long `ugro health` takes on 100 and 1000 nodes, beside the previous release.

Run from the repository root, with ugro's dependencies installed (the project's venv):

    python benchmarks/health_speed.py [--runs N] [--previous COMMIT]

It writes a 100-node and a 1000-node state file (most nodes healthy, some degraded,
unhealthy and unreachable, each with the checks, GPUs and versions a real sweep stores),
then runs `ugro health` and `ugro health --json` on each as separate processes, output
piped, the variants taking turns, and prints the median wall time of N runs of each, side
by side for this tree, the previous release (COMMIT, default the `main` commit 10927c0,
unpacked with `git archive` into a temporary directory and run with PYTHONPATH), and
`python -c pass` (the floor: starting Python). Bytecode is cached for every variant, as
for an installed ugro, even where $PYTHONDONTWRITEBYTECODE is set. The goals (issue 15):
at most 100 ms at 100 nodes, 300 ms at 1000.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path

from ugro.model import (
    Alert,
    CheckResult,
    DiskSpace,
    GpuMetrics,
    HostMetrics,
    NodeStatus,
    NodeVerdict,
    Status,
    Tracking,
)
from ugro.store.state import DaemonInfo, StateStore

REPO = Path(__file__).resolve().parent.parent
PREVIOUS = "10927c0"
SIZES = (100, 1000)
CHECKS = ("ssh", "gpu", "torch", "disk", "latency", "ecc", "xid", "remap", "temperature")
GOALS_MS = {100: 100, 1000: 300}


def verdict(i: int, now: datetime) -> NodeVerdict:
    """Node i: every 20th unreachable, every 20th (+1) unhealthy, every 10th (+2) degraded."""
    name = f"gpu{i:04d}"
    if i % 20 == 0:
        status, failing = NodeStatus.UNREACHABLE, {"ssh"}
        alerts = (Alert("critical", "unreachable: connection refused on port 22"),)
    elif i % 20 == 1:
        status, failing = NodeStatus.UNHEALTHY, {"xid"}
        alerts = (
            Alert("critical", "xid: Xid 79 on GPU 3: fell off the bus; drain and reset it"),
            Alert("warning", "temperature: GPU 3 at 87 °C"),
        )
    elif i % 10 == 2:
        status, failing, alerts = (
            NodeStatus.DEGRADED,
            set(),
            (Alert("warning", "load 70 on 64 CPUs"),),
        )
    else:
        status, failing, alerts = NodeStatus.HEALTHY, set(), ()
    checks = tuple(
        CheckResult(
            c,
            Status.FAIL if c in failing else Status.OK,
            "failed" if c in failing else "ok",
            value=0.4 if c == "latency" else None,
            unit="ms" if c == "latency" else None,
            duration_ms=12.5,
        )
        for c in CHECKS
    )
    gpus = tuple(
        GpuMetrics(
            g, f"GPU-{i}-{g}", "NVIDIA H100 80GB HBM3", 41.0, 97.0, 70000.0, 81559.0, 650.0, 700.0
        )
        for g in range(8)
    )
    return NodeVerdict(
        name=name,
        address=f"10.0.{i // 256}.{i % 256}",
        status=status,
        health_score={NodeStatus.HEALTHY: 100.0, NodeStatus.DEGRADED: 80.0}.get(status, 20.0),
        pass_rate=1.0 if not failing else 0.8,
        last_check=now,
        checks=checks,
        gpus=gpus if status is not NodeStatus.UNREACHABLE else (),
        host=HostMetrics(1.5, 1.25, 1.0, 64, 512 * 2**30, 400 * 2**30),
        disks=(DiskSpace("/", "/", 100 * 2**30, 500 * 2**30),),
        alerts=alerts,
        tracking=Tracking(status, now, 0, 3, 0, now + timedelta(seconds=30)),
        versions={"driver": "550.54.15", "cuda": "12.4", "torch": "2.4.0"},
    )


def write_states(root: Path) -> dict[int, Path]:
    """A $UGRO_HOME with a state file for each size."""
    homes = {}
    now = datetime.now(UTC)
    for size in SIZES:
        home = root / f"home-{size}"
        verdicts = [verdict(i, now) for i in range(size)]
        os.environ["UGRO_HOME"] = str(home)
        from ugro import paths

        # As a daemon at a one-hour interval writes it: fresh for the whole run, so every
        # command measured shows the verdicts, not why they went stale.
        daemon = DaemonInfo(os.getpid(), now, running=False, interval_s=3600.0)
        StateStore(paths.state_file()).update(
            verdicts, keep=[v.name for v in verdicts], daemon=daemon
        )
        homes[size] = home
    del os.environ["UGRO_HOME"]
    return homes


def unpack(commit: str, into: Path) -> Path:
    """The `src` tree of `commit`, unpacked under `into`."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", commit, "src"],  # noqa: S607 - git from PATH, as a developer runs it
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


Variant = tuple[list[str], dict[str, str]]


def medians_ms(variants: list[Variant], runs: int) -> list[float]:
    """The median wall time of each (command, env) over `runs` runs, output piped.

    The variants take turns, run by run, so a burst of load on a shared machine falls on
    all of them alike; each is run once first, untimed, to warm the caches.
    """
    times: list[list[float]] = [[] for _ in variants]
    for attempt in range(runs + 1):
        for (command, env), taken in zip(variants, times, strict=True):
            start = time.perf_counter()
            subprocess.run(command, env=env, capture_output=True, check=False)
            if attempt:
                taken.append((time.perf_counter() - start) * 1000)
    return [statistics.median(taken) for taken in times]


def main() -> int:
    """Build the states, time every variant, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--previous", default=PREVIOUS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ugro-bench-") as tmp:
        root = Path(tmp)
        homes = write_states(root)
        trees = {
            "this tree": REPO / "src",
            f"previous ({args.previous})": unpack(args.previous, root / "prev"),
        }
        # Bytecode cached, as an installed ugro has it (pip compiles on install), in a
        # directory of its own so neither tree is written to; each variant's warm-up run
        # writes its cache.
        unset = {"UGRO_CONFIG", "COLUMNS", "PYTHONDONTWRITEBYTECODE"}
        base = {k: v for k, v in os.environ.items() if k not in unset}
        base["PYTHONPYCACHEPREFIX"] = str(root / "pycache")
        cases = [(size, extra) for size in homes for extra in ([], ["--json"])]
        variants: list[Variant] = [([sys.executable, "-c", "pass"], base)]
        for size, extra in cases:
            for src in trees.values():
                env = {**base, "UGRO_HOME": str(homes[size]), "PYTHONPATH": str(src)}
                variants.append(([sys.executable, "-m", "ugro", "health", *extra], env))
        floor, *measured = medians_ms(variants, args.runs)
        print(f"median of {args.runs} runs, output piped; `python -c pass`: {floor:.0f} ms\n")
        header = (
            f"{'nodes':>5}  {'command':<20}"
            + "".join(f"{name:>24}" for name in trees)
            + f"{'goal':>8}"
        )
        print(header)
        for i, (size, extra) in enumerate(cases):
            mine = measured[i * len(trees) : (i + 1) * len(trees)]
            cells = "".join(f"{ms:>21.0f} ms" for ms in mine)
            command = " ".join(["ugro health", *extra])
            print(f"{size:>5}  {command:<20}{cells}{GOALS_MS[size]:>5} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
