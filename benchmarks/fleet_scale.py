"""Fleet scale (issue #17): a thousand simulated nodes from one control node, and 100 real sshd.

Measures, in one run, and prints side by side against the issue's goals:

* connects: ugro's cold sweep of N farm nodes (default checks) with `max_connects` 10, 32
  and 64: how long a fleet takes to connect and check at each fan-out;
* warm: ugro's warm sweep of N farm nodes (connections kept) against a bare asyncssh fan-out
  of exactly the same remote commands over already-open connections (interleaved reps), all
  N started at once on both sides, every timeout 30 s on both; and against the same commands
  sent through ugro's runner (`ugro.transport.batch`), one batch a node on a channel of its
  own each time (ugro keeps its channel open), read whole;
* daemon: `ugro daemon run` on N farm nodes, default checks, 30 s interval: its first sweep
  (start to every node in the state file), then its CPU share and peak RSS (VmHWM) over the
  following `--seconds`, and what the farm's own processes spent meanwhile;
* hung: the same daemon with every tenth farm node hung (nvidia-smi and Python never
  answer, so their checks wait out the gpu and torch timeouts): the healthy nodes' gaps
  between checks (from the history database) against the interval;
* sshd: `ugro daemon run` on 100 real sshd test hosts, 10 s interval (the issue's
  7.4 % / 87 MB measurement: exporter off, history on).

The farm (tests/farm.py) answers like the sshd test hosts' stubs but is no sshd: no fork per
connection or command (its docstring lists what it does not model). Everything runs on this
machine, so the farm's processes compete with ugro for the same cores.

    .venv/bin/python benchmarks/fleet_scale.py [--nodes 1000] [--seconds 120]
        [--reps 3] [--profile] [--profile-daemon] [--skip connects warm daemon hung sshd]

The sshd part needs root (the harness's sshd must switch users) and /usr/sbin/sshd.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import os
import pstats
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncssh
import psutil

from ugro import config, sweep
from ugro.config.settings import DEFAULT_MAX_CONNECTS
from ugro.transport import batch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT.parent / "tests"))
from hung_nodes import check_times, percentile  # noqa: E402
from sweep_scaling import commands, fan_out, interleaved, not_healthy, raise_nofile  # noqa: E402

from farm import Farm  # noqa: E402
from sshcluster import TestCluster  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Callable

    from ugro.config import Worker

UGRO = Path(sys.executable).with_name("ugro")
INTERVAL_S = 30.0
SSHD_NODES = 100
SSHD_INTERVAL_S = 10.0
HUNG_EVERY = 10
FAN_OUTS = (10, 32, 64)
#: How often the daemon's CPU and RSS are sampled, and the state file polled.
SAMPLE_S = 1.0
#: Every timeout in the warm comparison, as long as the bare fan-out's (`fan_out`).
WARM_TIMEOUT_S = 30
#: Runs `ugro ARGS` with cProfile timed by the process's CPU clock, not the wall (on a busy
#: two-core machine, wall time charges a system call with the time spent waiting for a core),
#: from SIGUSR1 on: the benchmark sends it once the first sweep is done.
CPU_PROFILE = """
import cProfile, signal, sys, time
from ugro.cli import main
profile = cProfile.Profile(time.process_time)
signal.signal(signal.SIGUSR1, lambda *_: profile.enable())
stats, sys.argv = sys.argv[1], ["ugro", *sys.argv[2:]]
try:
    main()
except SystemExit:
    pass
finally:
    profile.disable()
    profile.dump_stats(stats)
"""
#: Connects in flight while the bare fan-out opens its connections.
BARE_CONNECTS = 64


# --- in-process sweeps ---------------------------------------------------------------------


async def cold_sweep(nodes: list[Worker], max_connects: int) -> tuple[float, float, int]:
    """One sweep over new connections: wall s, CPU s of this process, nodes not healthy."""
    transports = sweep.Transports(max_connects=max_connects)
    w0, c0 = time.perf_counter(), time.process_time()
    try:
        verdicts = await sweep.sweep(nodes, transports)
    finally:
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        await transports.close()
    return wall, cpu, len(not_healthy(verdicts))


def connects(nodes: list[Worker]) -> dict[int, tuple[float, float, int]]:
    """A cold sweep at each fan-out of FAN_OUTS."""
    return {k: asyncio.run(cold_sweep(nodes, k)) for k in FAN_OUTS}


async def warm_and_bare(
    farm: Farm, nodes: list[Worker], reps: int, profile: bool
) -> dict[str, Any]:
    """Warm ugro sweeps and the bare fan-out of the same commands, interleaved."""
    transports = sweep.Transports()
    limit = asyncio.Semaphore(BARE_CONNECTS)
    # Parsed once for every connection, as ugro does: a path would be parsed at each connect.
    known_hosts = asyncssh.read_known_hosts(str(farm.known_hosts))

    async def connect(node: Worker) -> asyncssh.SSHClientConnection:
        async with limit:
            return await asyncssh.connect(
                node.ip,
                port=farm.port,
                username="farm",
                client_keys=[str(farm.client_key)],
                known_hosts=known_hosts,
            )

    conns: list[asyncssh.SSHClientConnection] = []
    out: dict[str, Any] = {}
    try:
        await sweep.sweep(nodes, transports)  # open ugro's connections
        conns = list(await asyncio.gather(*(connect(n) for n in nodes)))
        cmds = [(c, cmd) for c, n in zip(conns, nodes, strict=True) for cmd in commands(n)]
        out["commands_per_node"] = len(cmds) / len(nodes)
        bare = fan_out(cmds)
        # The same commands as one batch a node through ugro's runner, on a channel of its own
        # each time (as ugro sent them until it kept the channel open): a bare asyncssh run,
        # read whole, with no parsing.
        jobs = [[batch.Job(cmd, WARM_TIMEOUT_S) for cmd in commands(n)] for n in nodes]
        batches = [
            (c, batch.opening(len(j)), batch.Requests().next(j)[1])
            for c, j in zip(conns, jobs, strict=True)
        ]

        async def together() -> list[Any]:
            return await asyncio.gather(
                *(
                    c.run(cmd, input=stdin, encoding=None, check=True, timeout=30)
                    for c, cmd, stdin in batches
                )
            )

        await bare()  # the farm answers each distinct command once, then replays it
        await together()
        timed = await interleaved(
            reps,
            {"ugro": lambda: sweep.sweep(nodes, transports), "bare": bare, "batch": together},
        )
        out["ugro"], out["bare"] = timed["ugro"][:2], timed["bare"][:2]
        out["batch"] = timed["batch"][:2]
        out["unhealthy"] = sum(len(not_healthy(r)) for r in timed["ugro"][2])
        if profile:
            prof = cProfile.Profile(time.process_time)
            prof.enable()
            await sweep.sweep(nodes, transports)
            prof.disable()
            out["profile"] = prof
    finally:
        await transports.close()
        for conn in conns:
            conn.close()
    return out


# --- the daemon ----------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port nothing listens on now, for the daemon's exporter."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def vm_hwm(pid: int) -> int:
    """The kernel's peak RSS of `pid` in bytes (0 when unreadable)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def checked(state: Path) -> int:
    """How many nodes the state file has a verdict for (0 while it is absent or being replaced)."""
    try:
        return len(json.loads(state.read_bytes())["nodes"])
    except (OSError, ValueError, KeyError):
        return 0


def cpu_s(pids: list[int]) -> float:
    """User and system CPU seconds of `pids` so far."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            total += sum(psutil.Process(pid).cpu_times()[:2])
    return total


def run_daemon(
    write: Callable[[Path], Path],
    count: int,
    seconds: float,
    others: list[int],
    profile: bool = False,
) -> dict[str, Any]:
    """`ugro daemon run` on the config `write` puts in a fresh home: first sweep, CPU, RSS.

    `others` are processes (the farm's) whose CPU is reported beside the daemon's. With
    `profile`, the daemon runs under cProfile and the result has its top functions.
    """
    with tempfile.TemporaryDirectory(prefix="ugro-fleet-") as name:
        home = Path(name)
        cfg = write(home / "cluster.yaml")
        env = {**os.environ, "UGRO_HOME": str(home)}
        stats = home / "daemon.prof"
        python = [sys.executable, "-c", CPU_PROFILE, str(stats)]
        started = time.perf_counter()
        argv = ["--config", str(cfg), "daemon", "run", "--no-stderr"]
        proc = subprocess.Popen(
            [*(python if profile else [str(UGRO)]), *argv],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            ps = psutil.Process(proc.pid)
            state = home / "cluster_state.json"
            while checked(state) < count:
                if proc.poll() is not None or time.perf_counter() - started > 10 * INTERVAL_S:
                    raise RuntimeError(f"the daemon did not check every node; see {home}")
                time.sleep(0.2)
            first_sweep_s = time.perf_counter() - started
            if profile:
                proc.send_signal(signal.SIGUSR1)
            t0, f0 = ps.cpu_times(), cpu_s(others)
            w0 = time.perf_counter()
            peak = ps.memory_info().rss
            while time.perf_counter() - w0 < seconds:
                time.sleep(SAMPLE_S)
                peak = max(peak, ps.memory_info().rss)
            wall = time.perf_counter() - w0
            t1 = ps.cpu_times()
            user, system = t1.user - t0.user, t1.system - t0.system
            others_cpu = cpu_s(others) - f0
            hwm = vm_hwm(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        times = check_times(home / "history.db")
        top = ""
        if profile:
            stream = io.StringIO()
            pstats.Stats(str(stats), stream=stream).sort_stats("tottime").print_stats(25)
            top = stream.getvalue()
        log = (home / "monitor.log").read_text(errors="replace").splitlines()
    return {
        "first_sweep_s": first_sweep_s,
        "cpu_pct": 100 * (user + system) / wall,
        "user_pct": 100 * user / wall,
        "system_pct": 100 * system / wall,
        "others_cpu_pct": 100 * others_cpu / wall,
        "peak_rss_mb": max(peak, hwm) / 1e6,
        "wall_s": wall,
        "times": times,
        "profile": top,
        "errors": [line for line in log if " ERROR " in line or " WARNING " in line][-3:],
    }


def on_farm(farm: Farm, count: int, **top: object) -> Callable[[Path], Path]:
    """What writes the farm's config for `count` nodes, interval INTERVAL_S, with `top`."""
    return lambda path: farm.write_config(
        path, count, monitor={"interval_s": INTERVAL_S}, exporter={"port": free_port()}, **top
    )


def gaps(times: dict[str, list[float]], names: set[str]) -> list[float]:
    """Gaps between consecutive check starts of `names`, after each node's first check."""
    return [
        b - a
        for name in names
        for a, b in zip(times.get(name, [])[1:], times.get(name, [])[2:], strict=False)
    ]


# --- output --------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    """The median."""
    return statistics.median(values)


def row(what: str, measured: str, goal: str = "") -> None:
    """One line of a side-by-side table."""
    print(f"  {what:<52} {measured:>16}   {goal}")


def show_profile(prof: cProfile.Profile, n: int) -> None:
    """The top of a cProfile of one warm sweep, by own time."""
    stream = io.StringIO()
    pstats.Stats(prof, stream=stream).sort_stats("tottime").print_stats(20)
    print(f"\ncProfile (CPU time) of one warm sweep at N = {n}:")
    print(stream.getvalue())


def main() -> None:  # noqa: C901, PLR0912, PLR0915 - one report, read top to bottom
    """Start the farm, measure each part, print them side by side."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--farm-processes", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=120.0, help="daemon sampling, per run")
    parser.add_argument("--sshd-seconds", type=float, default=120.0)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile one warm sweep")
    parser.add_argument(
        "--profile-daemon", action="store_true", help="run the N-node daemon under cProfile"
    )
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=["connects", "warm", "daemon", "hung", "sshd"]
    )
    args = parser.parse_args()
    raise_nofile()
    n = args.nodes
    print(
        f"{psutil.cpu_count()} CPUs, Python {sys.version.split()[0]}, asyncssh "
        f"{asyncssh.__version__}; N = {n} farm nodes in {args.farm_processes} processes; "
        f"load before start {os.getloadavg()[0]:.2f}"
    )
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="ugro-farm-") as name:
        base = Path(name)
        if {"connects", "warm", "daemon"} - set(args.skip):
            with Farm.start(base / "farm", n, processes=args.farm_processes) as farm:
                nodes = config.load(farm.write_config(base / "cluster.yaml")).nodes
                if "connects" not in args.skip:
                    results["connects"] = connects(nodes)
                if "warm" not in args.skip:
                    # Both sides run every command: ugro's timeouts as long as the bare side's,
                    # so that a command slowed by the burst is waited for, not failed.
                    patient = dict.fromkeys(("connect", *config.ALL_CHECKS), WARM_TIMEOUT_S)
                    warm = farm.write_config(base / "warm.yaml", timeouts=patient)
                    results["warm"] = asyncio.run(
                        warm_and_bare(farm, config.load(warm).nodes, args.reps, args.profile)
                    )
                if "daemon" not in args.skip:
                    results["daemon"] = run_daemon(
                        on_farm(farm, n), n, args.seconds, farm.pids(), args.profile_daemon
                    )
        if "hung" not in args.skip:
            hung = set(range(0, n, HUNG_EVERY))
            with Farm.start(base / "hung", n, processes=args.farm_processes, hung=hung) as farm:
                seconds = max(args.seconds, 4 * INTERVAL_S)
                figures = run_daemon(on_farm(farm, n), n, seconds, farm.pids())
                figures["gaps"] = gaps(
                    figures["times"], {f"f{i}" for i in range(n) if i not in hung}
                )
                figures["hung"] = len(hung)
                results["hung"] = figures
    if "sshd" not in args.skip:
        with tempfile.TemporaryDirectory(prefix="ugro-sshd-") as name:
            cluster = TestCluster.start(Path(name) / "cluster", SSHD_NODES)
            try:

                def write(path: Path) -> Path:
                    # As the issue measured: default checks and timeouts, exporter off.
                    return cluster.write_config(
                        path,
                        timeouts={},
                        monitor={"interval_s": SSHD_INTERVAL_S},
                        exporter={"enabled": False},
                    )

                results["sshd"] = run_daemon(write, SSHD_NODES, args.sshd_seconds, [])
            finally:
                cluster.stop_all()

    print(f"\nN = {n} simulated nodes, default checks (measured · goal):")
    if "connects" in results:
        for k, (wall, cpu, bad) in results["connects"].items():
            mark = " (default)" if k == DEFAULT_MAX_CONNECTS else ""
            row(
                f"cold sweep, max_connects {k}{mark}",
                f"{wall:.1f} s wall, {cpu:.1f} s CPU",
                f"{bad} not healthy",
            )
    if "warm" in results:
        warm = results["warm"]
        (uw, uc), (bw, bc) = warm["ugro"], warm["bare"]
        per = warm["commands_per_node"]
        row("ugro warm sweep", f"{median(uw):.2f} s wall, {median(uc):.2f} s CPU")
        row(
            f"bare asyncssh fan-out ({per:g} commands a node)",
            f"{median(bw):.2f} s wall, {median(bc):.2f} s CPU",
        )
        row("warm / bare", f"{median(uw) / median(bw):.2f}× wall", "goal ≤ 1.2×")
        row("", f"{median(uc) / median(bc):.2f}× CPU", f"({warm['unhealthy']} not healthy)")
        tw, tc = warm["batch"]
        row(
            "bare asyncssh, one batch a node, a channel each",
            f"{median(tw):.2f} s wall, {median(tc):.2f} s CPU",
        )
        row("warm / bare batch", f"{median(uw) / median(tw):.2f}× wall")
        row("", f"{median(uc) / median(tc):.2f}× CPU")
    if "daemon" in results:
        d = results["daemon"]
        row(
            f"daemon, interval {INTERVAL_S:g} s: first sweep (start → all in state)",
            f"{d['first_sweep_s']:.1f} s",
            "goal ≤ 20 s",
        )
        row(
            f"daemon CPU over {d['wall_s']:.0f} s after it",
            f"{d['cpu_pct']:.1f} % of a core",
            "goal ≤ 25 %",
        )
        row("daemon peak RSS (VmHWM)", f"{d['peak_rss_mb']:.0f} MB", "goal ≤ 300 MB")
        row("(the farm's own processes meanwhile)", f"{d['others_cpu_pct']:.1f} % of a core")
        for line in d["errors"]:
            print(f"    log: {line[:150]}")
    if "hung" in results:
        h = results["hung"]
        g = h["gaps"]
        worst = max(g) if g else float("nan")
        row(
            f"{h['hung']} of {n} hung: healthy nodes' gaps ({len(g)})",
            f"median {median(g):.2f} s" if g else "none",
            f"interval {INTERVAL_S:g} s",
        )
        row("", f"p95 {percentile(g, 0.95):.2f} s" if g else "")
        row(
            "", f"max {worst:.2f} s", f"{(worst - INTERVAL_S) / INTERVAL_S:+.1%} (goal within 10 %)"
        )
        row("daemon CPU / peak RSS with them", f"{h['cpu_pct']:.1f} % / {h['peak_rss_mb']:.0f} MB")
    if "sshd" in results:
        s = results["sshd"]
        print(f"\nN = {SSHD_NODES} real sshd, default checks, interval {SSHD_INTERVAL_S:g} s:")
        row("daemon CPU", f"{s['cpu_pct']:.1f} % of a core", "issue: 7.4 %; goal ≤ 3 %")
        row("daemon peak RSS", f"{s['peak_rss_mb']:.0f} MB", "issue: 87 MB; goal ≤ 80 MB")
        row("first sweep (start → all in state)", f"{s['first_sweep_s']:.1f} s")
        for line in s["errors"]:
            print(f"    log: {line[:150]}")
    if "warm" in results and "profile" in results["warm"]:
        show_profile(results["warm"]["profile"], n)
    if results.get("daemon", {}).get("profile"):
        print(f"\ncProfile (CPU time) of the daemon at N = {n}, after its first sweep:")
        print(results["daemon"]["profile"])
    print(f"\nload at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
