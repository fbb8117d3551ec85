"""How a sweep scales to 10, 50 and 100 nodes, against the ways people check nodes today.

Starts real OpenSSH servers on loopback (the test harness `tests/sshcluster.py`: one sshd
per node on 127.0.0.10+i, stubbed nvidia-smi and a fake torch) and measures, per N, for two
configs side by side (their repetitions interleaved, over the same connections):

* core: `checks:` the five core checks (`config.CORE_CHECKS`), four remote commands a node;
* default: no `checks:` (`config.DEFAULT_CHECKS`: the core five and the seven GPU health
  checks), each distinct remote command once a node (`ugro.transport.shared`);

and for each:

* ugro's warm sweep (connections kept, one long-lived event loop): wall and CPU seconds of
  this process; for core also without the latency check;
* a bare asyncssh fan-out of exactly that config's distinct remote commands over
  already-open connections, the lower bound for a warm sweep;

then ugro's cold sweep of the default config (new `Transports()` each time: connect, then the
checks), and, for the core commands only (reference figures):

* the naive sequential loop, one `ssh` process per node and command, one after another;
* parallel ssh: one `ssh` process per node and command, all at once (at most 64 running).

Then, at the largest N: `ugro health` and `ugro health --json` on a state file of that many
nodes (default checks) against a bare interpreter start, and the daemon's CPU share and peak
RSS while it monitors them (default checks) every 10 s.

The "remote" commands run on this machine too (sshd, sh, the stubs), so on a small machine
every figure includes the servers' work competing for the same cores; CPU figures for ugro
are its own process only.

    .venv/bin/python benchmarks/sweep_scaling.py [--nodes 10 50 100] [--reps 5]
        [--daemon-s 120] [--profile] [--skip naive parallel daemon health]

Needs root (the harness's sshd must switch users) and /usr/sbin/sshd.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import os
import pstats
import resource
import signal
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
from ugro.checks import Answering, Context, registry
from ugro.model import NodeStatus
from ugro.store.state import StateStore

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from sshcluster import TestCluster  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from ugro.config import Worker

UGRO = Path(sys.executable).with_name("ugro")
PARALLEL_SSH_LIMIT = 64
#: Extrapolate the naive loop instead of running it when one run would take longer.
NAIVE_FULL_LIMIT_S = 300.0
#: Spend at most about this long per N on repeating the naive loop (at least one full run).
NAIVE_BUDGET_S = 60.0
#: Likewise for parallel ssh, with at least PARALLEL_MIN_REPS runs.
PARALLEL_BUDGET_S = 40.0
PARALLEL_MIN_REPS = 3
HEALTH_RUNS = 15
#: The two configs measured side by side: their `checks:` lists (None: not given).
CONFIGS: dict[str, list[config.CheckName] | None] = {
    "core": list(config.CORE_CHECKS),
    "default": None,
}
#: Top-level cluster.yaml keys added to every generated config (--max-latency-ms).
CONFIG_EXTRA: dict[str, Any] = {}


# --- helpers --------------------------------------------------------------------------------


def raise_nofile() -> None:
    """Lift the soft open-files limit to the hard one: N connections and 64 ssh clients."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def median(values: list[float]) -> float:
    """The median."""
    return statistics.median(values)


def check_commands(name: str, node: Worker) -> list[str]:
    """The remote commands check `name` runs on `node`: what it asks for (`Answering`)."""
    check = registry()[name]
    if name == "latency":
        return []  # the connection's round trip, after the ssh check's command
    if not isinstance(check, Answering):
        raise TypeError(f"no remote commands known for check {name!r}; add them here")
    # A sweep without `previous` gives every node this context: xid reads a full lookback.
    return list(check.asks(node, Context()))


def commands(node: Worker) -> list[str]:
    """The distinct remote commands one node check runs for `node.checks`, in first-use order.

    Checks that do not apply to the node (GPU checks on `gpus: 0`, rendezvous without a
    master, deep without `deep: true`) run nothing; a command several checks share runs once.
    """
    checks = registry()
    found: dict[str, None] = {}
    for name in node.checks:
        if checks[name].applies(node):
            found.update(dict.fromkeys(check_commands(name, node)))
    return list(found)


def ssh_argv(cluster: TestCluster, node: Worker, command: str) -> list[str]:
    """What people type: one ssh per command, key auth, no prompts."""
    return [
        "ssh",
        "-i",
        str(cluster.client_key),
        "-o",
        "BatchMode=yes",
        "-o",
        f"UserKnownHostsFile={cluster.known_hosts}",
        "-p",
        str(node.ssh_port),
        f"{cluster.user}@{node.ip}",
        command,
    ]


def listeners_children_cpu(cluster: TestCluster, count: int) -> float:
    """CPU seconds of the reaped children of the first `count` listening sshd.

    A persistent connection's handler is reaped only when it closes, so during warm sweeps
    this grows by what short-lived connections cost the servers (the latency check made three
    a node until it read the open connection instead; it should stay at 0 now).
    """
    total = 0.0
    for host in cluster.hosts[:count]:
        if host.pid is not None:
            times = psutil.Process(host.pid).cpu_times()
            total += times.children_user + times.children_system
    return total


def not_healthy(verdicts: list[Any]) -> list[str]:
    """`name: status` of each verdict that is not healthy."""
    return [
        f"{v.name}: {v.status.value} ({', '.join(c.message[:60] for c in v.failing())})"
        for v in verdicts
        if v.status is not NodeStatus.HEALTHY
    ]


# --- ugro sweeps ----------------------------------------------------------------------------


def cold(nodes: list[Worker], reps: int) -> tuple[list[float], list[float], list[str]]:
    """New Transports (and event loop) each repetition: connect + the nodes' checks."""
    walls, cpus, problems = [], [], []

    async def once() -> list[Any]:
        transports = sweep.Transports()
        try:
            return await sweep.sweep(nodes, transports)
        finally:
            await transports.close()

    for _ in range(reps):
        w0, c0 = time.perf_counter(), time.process_time()
        verdicts = asyncio.run(once())
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
        problems += not_healthy(verdicts)
    return walls, cpus, problems


Timed = tuple[list[float], list[float], list[Any]]


async def interleaved(
    reps: int, calls: dict[str, Callable[[], Awaitable[Any]]]
) -> dict[str, Timed]:
    """Await each of `calls` in turn, `reps` rounds: wall seconds, CPU seconds, results.

    Interleaving keeps a shared machine's load drifting evenly over the variants compared.
    """
    out: dict[str, Timed] = {key: ([], [], []) for key in calls}
    for _ in range(reps):
        for key, call in calls.items():
            walls, cpus, results = out[key]
            w0, c0 = time.perf_counter(), time.process_time()
            results.append(await call())
            walls.append(time.perf_counter() - w0)
            cpus.append(time.process_time() - c0)
    return out


def sweeper(nodes: Sequence[Worker], transports: sweep.Transports) -> Callable[[], Awaitable[Any]]:
    """A call that sweeps `nodes` over `transports`."""
    return lambda: sweep.sweep(nodes, transports)


def fan_out(cmds: list[tuple[asyncssh.SSHClientConnection, str]]) -> Callable[[], Awaitable[Any]]:
    """A call that runs every (connection, command) at once, as bare asyncssh."""

    async def run() -> list[Any]:
        return await asyncio.gather(*(c.run(cmd, check=True, timeout=30) for c, cmd in cmds))

    return run


async def warm_and_bare(
    cluster: TestCluster, configs: dict[str, list[Worker]], reps: int, profile: bool
) -> dict[str, Any]:
    """Warm ugro sweeps and the bare asyncssh fan-out of each config, in one long-lived loop.

    Every config has the same nodes (only `checks` differs), so they share the connections.
    """
    nodes = configs["default"]
    transports = sweep.Transports()
    out: dict[str, Any] = {}
    try:
        await sweep.sweep(nodes, transports)  # open the connections
        probes0 = listeners_children_cpu(cluster, len(nodes))
        timed = await interleaved(
            reps, {key: sweeper(workers, transports) for key, workers in configs.items()}
        )
        out["probe_server_cpu"] = (listeners_children_cpu(cluster, len(nodes)) - probes0) / (
            reps * len(configs)
        )
        out["warm"] = {
            key: (walls, cpus, [p for r in results for p in not_healthy(r)])
            for key, (walls, cpus, results) in timed.items()
        }
        out["verdicts"] = {key: results[-1] for key, (_, _, results) in timed.items()}
        # The core warm sweep without the latency check, which costs a read of TCP_INFO.
        remote_only = [
            n.model_copy(update={"checks": [c for c in n.checks if c != "latency"]})
            for n in configs["core"]
        ]
        walls, cpus, _ = (await interleaved(reps, {"": sweeper(remote_only, transports)}))[""]
        out["warm_nolat"] = (walls, cpus)
        if profile:
            prof = cProfile.Profile(time.process_time)  # CPU, not time spent preempted
            prof.enable()
            for _ in range(reps):
                await sweep.sweep(nodes, transports)
            prof.disable()
            out["profile"] = prof
    finally:
        await transports.close()

    known_hosts = asyncssh.read_known_hosts(str(cluster.known_hosts))
    conns = await asyncio.gather(
        *(
            asyncssh.connect(
                n.ip,
                port=n.ssh_port,
                username=cluster.user,
                client_keys=[str(cluster.client_key)],
                known_hosts=known_hosts,
            )
            for n in nodes
        )
    )
    try:
        calls = {}
        out["bare_commands"] = {}
        for key, workers in configs.items():
            cmds = [(c, cmd) for c, n in zip(conns, workers, strict=True) for cmd in commands(n)]
            out["bare_commands"][key] = len(cmds) / len(workers)
            calls[key] = fan_out(cmds)
            await calls[key]()  # the first run of each command warms the page cache
        timed = await interleaved(reps, calls)
        out["bare"] = {key: (walls, cpus) for key, (walls, cpus, _) in timed.items()}
    finally:
        for conn in conns:
            conn.close()
        await asyncio.gather(*(c.wait_closed() for c in conns), return_exceptions=True)
    return out


# --- ssh baselines --------------------------------------------------------------------------


def naive_once(cluster: TestCluster, nodes: list[Worker]) -> float:
    """For each node, for each command: one ssh, waited for. Return wall seconds."""
    start = time.perf_counter()
    for node in nodes:
        for cmd in commands(node):
            done = subprocess.run(
                ssh_argv(cluster, node, cmd), capture_output=True, check=False, timeout=120
            )
            if done.returncode != 0:
                raise RuntimeError(f"ssh to {node.name} failed: {done.stderr.decode()[-300:]}")
    return time.perf_counter() - start


async def parallel_once(cluster: TestCluster, nodes: list[Worker]) -> float:
    """One ssh per (node, command), all at once, at most PARALLEL_SSH_LIMIT running."""
    limit = asyncio.Semaphore(PARALLEL_SSH_LIMIT)

    async def one(node: Worker, cmd: str) -> None:
        async with limit:
            proc = await asyncio.create_subprocess_exec(
                *ssh_argv(cluster, node, cmd),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            _, err = await proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(f"ssh to {node.name} failed: {err.decode()[-300:]}")

    start = time.perf_counter()
    await asyncio.gather(*(one(n, c) for n in nodes for c in commands(n)))
    return time.perf_counter() - start


# --- health and daemon ----------------------------------------------------------------------


def time_command(argv: list[str], env: dict[str, str], runs: int) -> float:
    """Median wall seconds of running `argv` to completion."""
    walls = []
    for _ in range(runs + 1):  # the first run warms the page cache and is dropped
        start = time.perf_counter()
        subprocess.run(argv, env=env, capture_output=True, check=False, timeout=60)
        walls.append(time.perf_counter() - start)
    return median(walls[1:])


def health_timings(verdicts: list[Any], runs: int) -> dict[str, float]:
    """Write `verdicts` to a fresh state file; time `ugro health` on it."""
    with tempfile.TemporaryDirectory() as home:
        StateStore(Path(home) / "cluster_state.json").update(verdicts)
        env = {**os.environ, "UGRO_HOME": home}
        env.pop("UGRO_CONFIG", None)
        return {
            "python -c pass": time_command([sys.executable, "-c", "pass"], env, runs),
            "ugro health --json": time_command([str(UGRO), "health", "--json"], env, runs),
            "ugro health": time_command([str(UGRO), "health"], env, runs),
        }


def persistence_cpu(verdicts: list[Any], runs: int = 5) -> dict[str, float]:
    """CPU seconds the daemon spends per sweep writing the state file and the history."""
    from ugro.store.history import History
    from ugro.store.history_records import Sample

    out = {}
    with tempfile.TemporaryDirectory() as home:
        store = StateStore(Path(home) / "cluster_state.json")
        history = History(Path(home) / "history.db")
        for name, call in (
            ("state file update", lambda: store.update(verdicts, keep=[v.name for v in verdicts])),
            ("history record", lambda: history.record([Sample(v, 10) for v in verdicts])),
        ):
            cpus = []
            for _ in range(runs):
                c0 = time.process_time()
                call()
                cpus.append(time.process_time() - c0)
            out[name] = median(cpus)
        history.close()
    return out


def vm_hwm(pid: int) -> int:
    """The kernel's peak RSS of `pid` in bytes (0 when unreadable)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def daemon_figures(cluster: TestCluster, nodes: list[Worker], seconds: float) -> dict[str, float]:
    """Run `ugro daemon run` on `nodes` every 10 s; sample CPU and RSS once a second."""
    with tempfile.TemporaryDirectory() as home:
        cfg = cluster.write_config(
            Path(home) / "cluster.yaml",
            hosts=[cluster.host(n.name) for n in nodes],
            timeouts={},
            **CONFIG_EXTRA,
            monitor={"interval_s": 10},
            exporter={"enabled": False},
        )
        env = {**os.environ, "UGRO_HOME": home}
        proc = subprocess.Popen(
            [str(UGRO), "--config", str(cfg), "daemon", "run", "--no-stderr"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            ps = psutil.Process(proc.pid)
            state = Path(home) / "cluster_state.json"
            started = time.perf_counter()
            while not state.exists():  # the first sweep, connections included, is done
                if proc.poll() is not None or time.perf_counter() - started > 60:
                    raise RuntimeError(f"the daemon wrote no state; see {home}/monitor.log")
                time.sleep(0.1)
            first_sweep_s = time.perf_counter() - started
            startup_cpu = sum(ps.cpu_times()[:2])
            w0, c0 = time.perf_counter(), startup_cpu
            peak_rss = ps.memory_info().rss
            samples = []
            while time.perf_counter() - w0 < seconds:
                time.sleep(1.0)
                t, c = time.perf_counter(), sum(ps.cpu_times()[:2])
                samples.append((t, c))
                peak_rss = max(peak_rss, ps.memory_info().rss)
            wall = samples[-1][0] - w0
            cpu = samples[-1][1] - c0
            hwm = vm_hwm(proc.pid)
            log = (Path(home) / "monitor.log").read_text(errors="replace")
            sweep_lines = [ln for ln in log.splitlines() if " INFO sweep " in ln]
            unhealthy = [ln for ln in sweep_lines if f"cluster: healthy {len(nodes)}" not in ln]
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return {
        "first_sweep_s": first_sweep_s,
        "startup_cpu_s": startup_cpu,
        "cpu_pct": 100 * cpu / wall,
        "wall_s": wall,
        "peak_rss_mb": max(peak_rss, hwm) / 1e6,
        "sampled_peak_rss_mb": peak_rss / 1e6,
        "sweeps_logged": len(sweep_lines),
        "sweep_lines_not_all_healthy": len(unhealthy),
        "last_log_lines": "\n".join(log.splitlines()[-3:]),
    }


# --- main -----------------------------------------------------------------------------------


def fmt_ratio(value: float) -> str:
    """A ratio with sensible precision."""
    return f"{value:.1f}×" if value < 100 else f"{value:.0f}×"


def configured(nodes: list[Worker]) -> dict[str, list[Worker]]:
    """`nodes` as each of CONFIGS: with its `checks:`, or as loaded (no `checks:` given)."""
    return {
        key: nodes if checks is None else [n.model_copy(update={"checks": checks}) for n in nodes]
        for key, checks in CONFIGS.items()
    }


def measure(
    cluster: TestCluster, nodes: list[Worker], args: argparse.Namespace, naive_per_node: float
) -> dict[str, Any]:
    """Every sweep variant at one N; `naive_per_node` (0: unknown) guides extrapolation."""
    n = len(nodes)
    configs = configured(nodes)
    row: dict[str, Any] = {"cold": cold(configs["default"], args.reps)}
    profile = args.profile and n == max(args.nodes)
    row.update(asyncio.run(warm_and_bare(cluster, configs, args.reps, profile)))
    core = configs["core"]
    if "naive" not in args.skip:
        if naive_per_node * n > NAIVE_FULL_LIMIT_S:
            row["naive"] = ([naive_per_node * n], "extrapolated from the smallest N")
        else:
            walls = [naive_once(cluster, core)]
            while len(walls) < args.reps and sum(walls) + walls[0] <= NAIVE_BUDGET_S:
                walls.append(naive_once(cluster, core))
            row["naive"] = (walls, f"median of {len(walls)}")
    if "parallel" not in args.skip:
        walls = [asyncio.run(parallel_once(cluster, core))]
        while len(walls) < args.reps and (
            len(walls) < PARALLEL_MIN_REPS or sum(walls) + walls[0] <= PARALLEL_BUDGET_S
        ):
            walls.append(asyncio.run(parallel_once(cluster, core)))
        row["parallel"] = (walls, f"median of {len(walls)}")
    return row


def show(n: int, row: dict[str, Any]) -> None:
    """Print one N's table and ratios."""
    cw, cc, cp = row["cold"]
    warm, bare, per_node = row["warm"], row["bare"], row["bare_commands"]
    (nw, nc) = row["warm_nolat"]
    print(
        f"\nN = {n}  (remote commands per node: core {per_node['core']:g}, "
        f"default {per_node['default']:g})"
    )
    print(f"  {'':<40} {'wall s':>8} {'CPU s':>8}")
    lines = [("ugro cold sweep, default checks", cw, cc)]
    for key in CONFIGS:
        lines += [
            (f"ugro warm sweep, {key}", warm[key][0], warm[key][1]),
            (f"bare asyncssh fan-out, {key} ({per_node[key]:g} cmds)", *bare[key]),
        ]
        if key == "core":
            lines.append(("ugro warm, core, latency check off", nw, nc))
    for name, walls, cpus in lines:
        print(f"  {name:<40} {median(walls):>8.3f} {median(cpus):>8.3f}")
    for key, name in (
        ("naive", "naive sequential ssh, core"),
        ("parallel", "parallel ssh (≤64 at once), core"),
    ):
        if key in row:
            walls, how = row[key]
            print(f"  {name:<40} {median(walls):>8.2f} {'':>8}  ({how})")
    for key in CONFIGS:
        (ww, wc, _), (bw, bc) = warm[key], bare[key]
        print(
            f"  {key} warm / bare: {median(ww) / median(bw):.2f}× wall (target ≤ 1.2×), "
            f"{median(wc) / median(bc):.2f}× CPU"
        )
    (bw, bc) = bare["core"]
    print(
        f"  core warm without latency check / bare: {median(nw) / median(bw):.2f}× wall, "
        f"{median(nc) / median(bc):.2f}× CPU"
    )
    (dw, dc, _), (kw, kc, _) = warm["default"], warm["core"]
    (dbw, _), (kbw, _) = bare["default"], bare["core"]
    print(
        f"  default / core, ugro warm: {median(dw) / median(kw):.2f}× wall, "
        f"{median(dc) / median(kc):.2f}× CPU; bare: {median(dbw) / median(kbw):.2f}× wall"
    )
    if "naive" in row:
        ratio = median(row["naive"][0]) / median(kw)
        print(f"  naive / core warm: {fmt_ratio(ratio)} (target ≥ 40×)")
    if "parallel" in row:
        print(f"  parallel ssh / core warm: {fmt_ratio(median(row['parallel'][0]) / median(kw))}")
    print(f"  default cold / default warm: {fmt_ratio(median(cw) / median(dw))}")
    print(
        f"  sshd CPU spent on short-lived connections (once the latency check's probes): "
        f"{row['probe_server_cpu']:.3f} s per warm sweep (this machine's cores, not ugro's)"
    )
    for name, bad in (
        ("cold default", cp),
        ("warm core", warm["core"][2]),
        ("warm default", warm["default"][2]),
    ):
        print(f"  verdicts not healthy, {name}: {len(bad)}" + (f" e.g. {bad[:2]}" if bad else ""))


def show_profile(prof: cProfile.Profile, reps: int, n: int) -> None:
    """The top of a cProfile of warm sweeps, by own time and by cumulative time."""
    stream = io.StringIO()
    stats = pstats.Stats(prof, stream=stream)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(30)
    print(f"\ncProfile (CPU time) of {reps} warm sweeps at N = {n}:")
    print(stream.getvalue())


def show_health(verdicts: list[Any], runs: int) -> None:
    """`ugro health` against a bare interpreter start."""
    timings = health_timings(verdicts, runs)
    base = timings["python -c pass"]
    print(f"\nstate file of {len(verdicts)} nodes, median of {runs} runs:")
    for name, wall in timings.items():
        extra = (
            "" if name.startswith("python") else f"  ({(wall - base) * 1000:+.0f} ms over python)"
        )
        print(f"  {name:<22} {wall * 1000:>6.0f} ms{extra}")
    print("  (target ≤ 150 ms for ugro)")


def show_daemon(cluster: TestCluster, tmp: Path, n: int, seconds: float) -> None:
    """The daemon's CPU share and peak RSS while monitoring n nodes every 10 s."""
    path = cluster.write_config(
        tmp / "daemon.yaml", hosts=cluster.hosts[:n], timeouts={}, **CONFIG_EXTRA
    )
    fig = daemon_figures(cluster, config.load(path).nodes, seconds)
    print(
        f"\ndaemon, {n} nodes, interval 10 s, exporter off, history on, "
        f"sampled every 1 s for {fig['wall_s']:.0f} s after its first sweep:"
    )
    print(f"  CPU {fig['cpu_pct']:.1f} % of one core (target ≤ 3 %)")
    print(
        f"  peak RSS {fig['peak_rss_mb']:.0f} MB (target ≤ 80 MB; "
        f"sampled max {fig['sampled_peak_rss_mb']:.0f} MB)"
    )
    print(
        f"  first sweep (with connects) after {fig['first_sweep_s']:.1f} s; "
        f"start-up CPU {fig['startup_cpu_s']:.2f} s; {fig['sweeps_logged']} sweeps logged, "
        f"{fig['sweep_lines_not_all_healthy']} not all healthy"
    )
    print("  " + fig["last_log_lines"].replace("\n", "\n  "))


def main() -> None:
    """Start the cluster once (largest N), measure each N on its first N hosts, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[10, 50, 100])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--daemon-s", type=float, default=120.0)
    parser.add_argument("--health-runs", type=int, default=HEALTH_RUNS)
    parser.add_argument(
        "--max-latency-ms",
        type=float,
        help="max_latency_ms for every node (default: ugro's); see docs/benchmarks.md",
    )
    parser.add_argument("--profile", action="store_true", help="cProfile warm sweeps at max N")
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=["naive", "parallel", "daemon", "health"]
    )
    args = parser.parse_args()
    raise_nofile()
    if args.max_latency_ms:
        CONFIG_EXTRA["max_latency_ms"] = args.max_latency_ms
        print(f"max_latency_ms: {args.max_latency_ms:g} on every node")
    sizes = sorted(args.nodes)
    biggest = sizes[-1]
    print(
        f"{psutil.cpu_count()} CPUs, Python {sys.version.split()[0]}, asyncssh "
        f"{asyncssh.__version__}; median of {args.reps} unless noted; "
        f"load before start {os.getloadavg()[0]:.2f}"
    )
    with tempfile.TemporaryDirectory(prefix="ugro-bench-") as name:
        tmp = Path(name)
        started = time.perf_counter()
        cluster = TestCluster.start(tmp / "cluster", biggest)
        print(f"started {biggest} sshd in {time.perf_counter() - started:.0f} s")
        try:
            rows: dict[int, dict[str, Any]] = {}
            naive_per_node = 0.0
            for n in sizes:
                cfg_path = cluster.write_config(
                    tmp / f"cluster-{n}.yaml", hosts=cluster.hosts[:n], timeouts={}, **CONFIG_EXTRA
                )
                rows[n] = row = measure(cluster, config.load(cfg_path).nodes, args, naive_per_node)
                if "naive" in row and not naive_per_node:
                    naive_per_node = median(row["naive"][0]) / n
                show(n, row)
            if "profile" in rows[biggest]:
                show_profile(rows[biggest]["profile"], args.reps, biggest)
            print()
            verdicts = rows[biggest]["verdicts"]["default"]
            for what, spent in persistence_cpu(verdicts).items():
                print(f"per sweep of {biggest} nodes (default), {what}: {spent * 1000:.0f} ms CPU")
            if "health" not in args.skip:
                show_health(verdicts, args.health_runs)
            if "daemon" not in args.skip:
                show_daemon(cluster, tmp, biggest, args.daemon_s)
        finally:
            cluster.stop_all()
    print(f"\nload at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
