"""`ugro daemon`: the real monitor process against real sshd test hosts.

Every test starts `python -m ugro daemon run` (or `ugro daemon start`) as a separate process,
drives it with faults and signals, and judges it by what an operator sees: the state file,
the log, the pid file, exit codes and the command line's output.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import random
import re
import signal
import socket
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
import pytest

from conftest import run_ugro, wait_for
from daemonharness import (
    FAST_TIMEOUTS,
    GOOD,
    SSH_GPU,
    SSH_ONLY,
    DaemonProcess,
    State,
    daemon_processes,
    daemon_starter,
    dead_pid,
    monitor,
    read_state,
    tool,
    when,
    write_config,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from sshcluster import TestCluster


# Integration: real daemon processes against real sshd test hosts.
pytestmark = pytest.mark.integration


@pytest.fixture
def daemons(tmp_path: Path, isolated_home: Path) -> Iterator[Callable[..., DaemonProcess]]:
    """Start `ugro daemon run` processes; each is killed and reaped at teardown."""
    with daemon_starter(isolated_home, tmp_path) as start:
        yield start


@pytest.fixture
def detached(
    isolated_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """For `ugro daemon start`: no systemd unit in sight, and no daemon left behind."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    yield isolated_home
    leftovers = daemon_processes(isolated_home)
    for process in leftovers:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(leftovers, timeout=10)
    assert not leftovers, f"a detached daemon outlived its test: {leftovers}"


@pytest.fixture
def bystander() -> Iterator[subprocess.Popen[bytes]]:
    """An unrelated live process (`sleep 30`), killed and reaped at teardown."""
    process = subprocess.Popen([tool("sleep"), "30"])
    yield process
    process.kill()
    process.wait(timeout=10)


# --- the run loop -----------------------------------------------------------------------------


def test_start_writes_state_pid_and_logs(
    cluster: TestCluster, tmp_path: Path, daemons: Callable[..., DaemonProcess]
) -> None:
    """A started daemon persists every node and itself, and logs to its file and stderr."""
    config = write_config(cluster, tmp_path / "cluster.yaml")
    daemon = daemons(config)

    state = daemon.wait_state(
        lambda s: set(s["nodes"]) == {h.name for h in cluster.hosts}, what="every node"
    )

    assert state["schema_version"] == 1
    assert state["daemon"]["pid"] == daemon.pid
    assert state["daemon"]["running"] is True
    assert state["daemon"]["sweeps"] >= 1
    assert state["daemon"]["started_by"] == "foreground"
    assert state["daemon"]["interval_s"] == 1
    for node in state["nodes"].values():
        # A first check is shown as it is. (Whether it passes is no concern here: the first
        # sweep of 25 checks at once can outlast a short timeout on this two-core machine.)
        assert node["tracking"]["observed"] == node["status"], node
        if state["daemon"]["sweeps"] == 1:
            assert node["tracking"]["fail_streak"] + node["tracking"]["pass_streak"] == 1, node
    assert (daemon.home / "daemon.pid").read_text().strip() == str(daemon.pid)
    log = daemon.wait_log("sweep 1:")
    assert f"monitor started (pid {daemon.pid}): 5 nodes, every 1 s, config {config}" in log
    assert re.search(r"sweep 1: 5 nodes in [0-9.]+ s; cluster: ", log), log
    assert "monitor started" in daemon.err()


def test_fault_shows_only_after_confirmation(
    cluster: TestCluster, tmp_path: Path, daemons: Callable[..., DaemonProcess]
) -> None:
    """A failed check is pending until a second one confirms it, confirm_s later, not a sweep."""
    h1 = cluster.host("h1")
    config = write_config(
        cluster, tmp_path / "cluster.yaml", [h1], interval_s=6, confirm_s=1, checks=SSH_GPU
    )
    daemon = daemons(config)
    daemon.wait_state(lambda s: "h1" in s["nodes"] and s["nodes"]["h1"]["status"] in GOOD)

    h1.set_gpu("driver")

    pending = daemon.wait_state(
        lambda s: s["nodes"]["h1"]["tracking"]["observed"] == "unhealthy", what="a failed check"
    )
    seen = time.monotonic()
    node = pending["nodes"]["h1"]
    assert node["status"] in GOOD, node
    assert node["tracking"]["fail_streak"] == 1
    assert node["tracking"]["pass_streak"] == 0
    gap = when(node["tracking"]["next_check_at"]) - when(node["last_check"])
    assert gap < timedelta(seconds=2), "the confirming check waits confirm_s, not an interval"

    confirmed = daemon.wait_state(
        lambda s: s["nodes"]["h1"]["status"] == "unhealthy", what="the confirmed failure"
    )
    assert time.monotonic() - seen < 4
    assert confirmed["nodes"]["h1"]["tracking"]["fail_streak"] >= 2
    assert "NVIDIA driver is not loaded" in confirmed["nodes"]["h1"]["alerts"][0]["text"]
    log = daemon.wait_log("-> unhealthy")
    assert re.search(r"h1: (healthy|degraded) -> unhealthy \(.*NVIDIA driver", log), log
    assert "h1: observed unhealthy (1 of 2), confirming in 1 s" in log


def test_recovery_shows_only_after_recover_after_passes(
    cluster: TestCluster, tmp_path: Path, daemons: Callable[..., DaemonProcess]
) -> None:
    """A cleared fault is shown healthy only after recover_after (2) passing checks in a row."""
    h1 = cluster.host("h1")
    h1.set_gpu("driver")
    config = write_config(cluster, tmp_path / "cluster.yaml", [h1], recover_after=2, checks=SSH_GPU)
    daemon = daemons(config)
    daemon.wait_state(lambda s: "h1" in s["nodes"] and s["nodes"]["h1"]["status"] == "unhealthy")

    h1.set_gpu("healthy")

    pending = daemon.wait_state(
        lambda s: s["nodes"]["h1"]["tracking"]["observed"] in GOOD, what="a passing check"
    )
    node = pending["nodes"]["h1"]
    assert node["status"] == "unhealthy", node
    assert node["tracking"]["pass_streak"] == 1
    assert node["tracking"]["fail_streak"] == 0
    recovered = daemon.wait_state(lambda s: s["nodes"]["h1"]["status"] in GOOD, what="recovery")
    assert recovered["nodes"]["h1"]["tracking"]["pass_streak"] >= 2
    log = daemon.wait_log("h1: unhealthy -> ")
    assert re.search(r"h1: observed (healthy|degraded) \(1 of 2\), confirming in 0.3 s", log), log


def test_unreachable_node_backs_off_and_returns(
    cluster: TestCluster, tmp_path: Path, daemons: Callable[..., DaemonProcess]
) -> None:
    """A dead node is retried 2 s, then 4 s apart (capped), and is healthy again at the next try."""
    h1 = cluster.host("h1")
    config = write_config(
        cluster,
        tmp_path / "cluster.yaml",
        [h1],
        checks=SSH_ONLY,
        interval_s=1,
        backoff_after=3,
        max_backoff_s=4,
        fail_after=2,
        recover_after=2,
    )
    daemon = daemons(config)
    daemon.wait_state(lambda s: "h1" in s["nodes"] and s["nodes"]["h1"]["status"] in GOOD)

    h1.kill()

    checks: dict[int, dict[str, Any]] = {}

    def record(state: State) -> bool:
        node = state["nodes"]["h1"]
        streak = int(node["tracking"]["unreachable_streak"])
        if streak:
            checks.setdefault(streak, node)
        return streak >= 5

    daemon.wait_state(record, timeout=30, what="five unreachable checks in a row")
    assert set(checks) == {1, 2, 3, 4, 5}, "every check was seen"
    delays = {
        streak: (when(n["tracking"]["next_check_at"]) - when(n["last_check"])).total_seconds()
        for streak, n in checks.items()
    }
    # 1: pending (confirm_s); 2: confirmed, a normal interval; then 2 s, 4 s, capped at 4 s.
    for streak, expected in {1: 0.3, 2: 1, 3: 2, 4: 4, 5: 4}.items():
        assert delays[streak] == pytest.approx(expected, abs=0.15), (streak, delays)
    for streak in (2, 3, 4, 5):
        spacing = when(checks[streak]["last_check"]) - when(checks[streak - 1]["last_check"])
        assert spacing.total_seconds() == pytest.approx(delays[streak - 1], abs=0.5), streak
    assert checks[1]["status"] in GOOD
    assert all(checks[s]["status"] == "unreachable" for s in (2, 3, 4, 5))
    assert "h1: unreachable 4 times in a row; next try in 4 s" in daemon.log()

    h1.start()
    next_try = when(daemon.state()["nodes"]["h1"]["tracking"]["next_check_at"])  # type: ignore[index]

    back = daemon.wait_state(
        lambda s: s["nodes"]["h1"]["tracking"]["observed"] in GOOD, what="a passing check"
    )
    first_pass = when(back["nodes"]["h1"]["last_check"])
    assert abs((first_pass - next_try).total_seconds()) < 0.6, "retried when it was due"
    assert back["nodes"]["h1"]["status"] == "unreachable", "one pass is not yet recovery"
    recovered = daemon.wait_state(lambda s: s["nodes"]["h1"]["status"] in GOOD, timeout=5)
    assert recovered["nodes"]["h1"]["tracking"]["unreachable_streak"] == 0


# --- signals ----------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_signal_abandons_a_hung_check(
    cluster: TestCluster,
    tmp_path: Path,
    daemons: Callable[..., DaemonProcess],
    sig: signal.Signals,
) -> None:
    """SIGTERM/SIGINT during a hung check: exit 0 within 5 s, state written with running false."""
    h0, h1 = cluster.host("h0"), cluster.host("h1")
    slow = {**FAST_TIMEOUTS, "connect": 15, "gpu": 15}
    config = write_config(
        cluster, tmp_path / "cluster.yaml", [h0, h1], checks=SSH_GPU, timeouts=slow
    )
    daemon = daemons(config)
    daemon.wait_sweeps(1)

    h1.pause()
    h0.set_gpu("hang")
    # The hung nvidia-smi of h0 running on the host proves a check is in flight.
    wait_for(h0.stub_processes, what="the next sweep's hung nvidia-smi")

    daemon.send(sig)
    start = time.monotonic()
    code = daemon.wait(timeout=10)
    assert time.monotonic() - start < 5
    assert code == 0, daemon.err()

    state = read_state(daemon.home)
    assert state is not None
    assert state["daemon"]["running"] is False
    assert state["daemon"]["pid"] == daemon.pid
    assert set(state["nodes"]) == {"h0", "h1"}, "the last verdicts are kept"
    assert state["nodes"]["h0"]["checks"]["gpu"]["status"] == "ok", "the hung check is not"
    log = daemon.log()
    assert f"{sig.name} received: stopping" in log
    assert re.search(r"stopping: abandoned the checks in flight of h0(, h1)?\n", log), log
    assert log.rstrip().endswith("monitor stopped")
    assert not (daemon.home / "daemon.pid").exists()


def test_sighup_reloads_and_keeps_running_config_when_bad(
    cluster: TestCluster, tmp_path: Path, daemons: Callable[..., DaemonProcess]
) -> None:
    """SIGHUP with a broken config keeps sweeping on the old one; with a good one, applies it."""
    hosts = cluster.hosts[:3]
    config = write_config(
        cluster, tmp_path / "cluster.yaml", hosts, interval_s=0.5, checks=SSH_ONLY
    )
    good = config.read_text()
    daemon = daemons(config)
    daemon.wait_state(lambda s: set(s["nodes"]) == {"h0", "h1", "h2"})

    broken = {
        "invalid YAML": "workers: [unclosed\n",
        "ssh_port 70000": good.replace(f"ssh_port: {hosts[0].port}", "ssh_port: 70000"),
    }
    for failures, (what, text) in enumerate(broken.items(), start=1):
        assert text != good, what
        config.write_text(text)
        daemon.send(signal.SIGHUP)
        daemon.wait_log("config reload failed", count=failures)
        state = daemon.wait_sweeps(daemon.sweeps() + 2)
        assert set(state["nodes"]) == {"h0", "h1", "h2"}, what
        assert daemon.process.poll() is None
    log = daemon.log()
    assert "config reload failed, keeping the running config: " in log
    assert "YAML syntax error" in log
    assert "70000" in log

    write_config(cluster, config, hosts[:2], interval_s=0.5, checks=SSH_ONLY)
    daemon.send(signal.SIGHUP)
    daemon.wait_log("config reloaded: 2 nodes")
    state = daemon.wait_state(lambda s: set(s["nodes"]) == {"h0", "h1"}, what="h2 dropped")
    assert state["daemon"]["running"] is True
    assert daemon.process.poll() is None


def test_sigkill_during_writes_never_corrupts_the_state(
    tmp_path: Path, daemons: Callable[..., DaemonProcess], isolated_home: Path
) -> None:
    """SIGKILL at 50 random moments of frequent writes: the state file always parses."""
    # Five nodes checked locally with the ssh check alone: a sweep takes milliseconds, so the
    # daemon writes about every 0.2 s and most of each cycle is the interpreter starting.
    # What is tested is the write; SSH would only make each of the 50 starts slower.
    config = tmp_path / "cluster.yaml"
    workers = [{"name": f"n{i}", "ip": "localhost", "transport": "local"} for i in range(5)]
    config.write_text(
        json.dumps(
            {
                "checks": ["ssh"],
                "monitor": monitor(interval_s=0.2),
                "exporter": {"enabled": False},
                "workers": workers,
            }
        )
    )
    state_file = isolated_home / "cluster_state.json"
    rng = random.Random(1)
    pids: set[int] = set()
    mid_write = 0
    deadline = time.monotonic() + 60

    def temp_files() -> set[Path]:
        return set(isolated_home.glob(".cluster_state.json.*.tmp"))

    for i in range(50):
        assert time.monotonic() < deadline, f"only {i} kills within 60 s"
        before = state_file.stat().st_mtime_ns if state_file.exists() else None
        # Temp files of writes that earlier kills interrupted (nothing removes them).
        leftovers = temp_files()
        daemon = daemons(config)
        pids.add(daemon.pid)

        def written(before: int | None = before, daemon: DaemonProcess = daemon) -> bool:
            assert daemon.process.poll() is None, daemon.err()
            try:
                return state_file.stat().st_mtime_ns != before
            except FileNotFoundError:
                return False

        def writing(leftovers: set[Path] = leftovers) -> bool:
            return bool(temp_files() - leftovers)

        if i % 2:
            # Aim at the write itself: its temp file exists from mkstemp to the rename. The
            # first sweep starts right after this log line and lasts milliseconds.
            daemon.wait_log("monitor started")
            wait_for(lambda: writing() or written(), what="a write", every=0.001)
        else:
            wait_for(written, what="a write")
            time.sleep(rng.uniform(0, 0.03))
        daemon.send(signal.SIGKILL)
        assert daemon.wait(timeout=10) == -signal.SIGKILL
        mid_write += bool(temp_files() - leftovers)

        document = json.loads(state_file.read_bytes())
        assert document["schema_version"] == 1, i
        assert document["daemon"]["pid"] in pids, i
        assert set(document["nodes"]) == {w["name"] for w in workers}, i
        # The killed daemon's pid file stays behind, unlocked: the next start must not mind.
        assert (isolated_home / "daemon.pid").exists()
    print(f"{mid_write} of 50 kills left a temp file")  # noqa: T201
    assert mid_write, "no kill landed inside a write"


def test_second_daemon_refuses_to_start(
    cluster: TestCluster, tmp_path: Path, daemons: Callable[..., DaemonProcess]
) -> None:
    """A second `ugro daemon run` on the same home exits 1 at once, naming the running pid."""
    config = write_config(cluster, tmp_path / "cluster.yaml", cluster.hosts[:1], checks=SSH_ONLY)
    daemon = daemons(config)
    daemon.wait_sweeps(1)

    start = time.monotonic()
    ran = run_ugro("--config", config, "daemon", "run", timeout=30)
    assert time.monotonic() - start < 5
    assert ran.code == 1
    assert f"already running (pid {daemon.pid}" in ran.err
    assert daemon.process.poll() is None
    assert (daemon.home / "daemon.pid").read_text().strip() == str(daemon.pid)
    daemon.wait_sweeps(daemon.sweeps() + 1)


# --- the pid file -----------------------------------------------------------------------------


def test_status_removes_pid_file_of_dead_process(detached: Path) -> None:
    """A pid file whose process is gone is stale: status says so, exits 3 and removes it."""
    pid_file = detached / "daemon.pid"
    detached.mkdir(parents=True, exist_ok=True)
    pid = dead_pid()
    pid_file.write_text(f"{pid}\n")

    ran = run_ugro("daemon", "status")

    assert ran.code == 3
    assert f"stale pid file {pid_file} (its process is gone); removed it" in ran.out
    assert "the monitor is not running" in ran.out
    assert not pid_file.exists()


def test_pid_file_of_unrelated_process_is_never_signalled(
    cluster: TestCluster,
    tmp_path: Path,
    detached: Path,
    bystander: subprocess.Popen[bytes],
) -> None:
    """A pid reused by another program: status/stop call the file stale and leave it alone."""
    pid_file = detached / "daemon.pid"
    detached.mkdir(parents=True, exist_ok=True)

    pid_file.write_text(f"{bystander.pid}\n")
    ran = run_ugro("daemon", "status")
    assert ran.code == 3
    assert f"pid {bystander.pid} now belongs to another program" in ran.out
    assert not pid_file.exists()
    assert bystander.poll() is None

    pid_file.write_text(f"{bystander.pid}\n")
    ran = run_ugro("daemon", "stop")
    assert ran.code == 0
    assert "now belongs to another program" in ran.out
    assert "the monitor is not running" in ran.out
    assert bystander.poll() is None

    pid_file.write_text(f"{bystander.pid}\n")
    config = write_config(cluster, tmp_path / "cluster.yaml", cluster.hosts[:1], checks=SSH_ONLY)
    ran = run_ugro("--config", config, "daemon", "start")
    assert ran.code == 0, ran.out
    pid = int(pid_file.read_text())
    assert pid != bystander.pid
    assert f"the monitor is running (pid {pid})" in ran.out
    assert run_ugro("daemon", "stop").code == 0
    assert bystander.poll() is None


def test_pid_file_removed_while_a_daemon_waits_for_its_lock(
    cluster: TestCluster, tmp_path: Path, daemons: Callable[..., DaemonProcess], isolated_home: Path
) -> None:
    """A daemon whose pid file a stale-file cleaner removes meanwhile still owns a pid file.

    `ugro daemon status` removes a stale file while holding its lock; a daemon starting at
    that moment opened the old file and waits for the lock. It must not lock and write the
    unlinked file: then no pid file says it runs, and a second daemon starts beside it.
    """
    config = write_config(cluster, tmp_path / "cluster.yaml", cluster.hosts[:1], checks=SSH_ONLY)
    pid_file = isolated_home / "daemon.pid"
    isolated_home.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(f"{dead_pid()}\n")
    with pid_file.open("r+") as cleaner:
        fcntl.flock(cleaner, fcntl.LOCK_EX | fcntl.LOCK_NB)
        daemon = daemons(config)

        def holds_pid_file() -> bool:
            with contextlib.suppress(OSError):
                return any(
                    str(fd.readlink()) == str(pid_file)
                    for fd in Path(f"/proc/{daemon.pid}/fd").iterdir()
                )
            return False

        wait_for(holds_pid_file, what="the daemon to open its pid file")
        pid_file.unlink()  # what remove_if_stale does, then it lets go of the lock
    daemon.wait_sweeps(1)

    assert pid_file.exists(), "the running daemon has no pid file"
    assert pid_file.read_text().strip() == str(daemon.pid)
    second = run_ugro("--config", config, "daemon", "run", timeout=30)
    assert second.code == 1, "a second daemon ran beside the first"
    assert f"already running (pid {daemon.pid}" in second.err


# --- start / status / stop --------------------------------------------------------------------


def test_start_status_stop_without_systemd(
    cluster: TestCluster, tmp_path: Path, detached: Path
) -> None:
    """Detached start, status (text and JSON) and stop, as an operator without systemd sees them."""
    config = write_config(cluster, tmp_path / "cluster.yaml", cluster.hosts[:2], checks=SSH_ONLY)

    started = run_ugro("--config", config, "daemon", "start")
    assert started.code == 0, started.out
    match = re.search(r"the monitor is running \(pid (\d+)\); log: (\S+)", started.out)
    assert match, started.out
    pid = int(match[1])
    assert match[2] == str(detached / "monitor.log")
    wait_for(
        lambda: (s := read_state(detached)) and s["daemon"]["pid"] == pid and s["daemon"]["sweeps"],
        what="the first sweep",
    )

    status = run_ugro("daemon", "status")
    assert status.code == 0, status.out
    assert f"the monitor is running: pid {pid}, up " in status.out
    assert "started by: ugro daemon start" in status.out
    assert re.search(
        r"last sweep: \d+s ago, took [0-9.]+ s \(\d+ sweeps?, \d+ node checks?\)", status.out
    ), status.out
    report = run_ugro("daemon", "status", "--json").json()
    assert report["running"] is True
    assert report["pid"] == pid
    assert report["started_by"] == "ugro daemon start"
    assert report["sweeps"] >= 1

    again = run_ugro("--config", config, "daemon", "start")
    assert again.code == 0
    assert f"the monitor is already running (pid {pid})" in again.out

    stopped = run_ugro("daemon", "stop")
    assert stopped.code == 0, stopped.out
    assert f"stopped the monitor (pid {pid})" in stopped.out
    wait_for(lambda: not psutil.pid_exists(pid), timeout=5, what="the daemon to be reaped")
    assert not (detached / "daemon.pid").exists()
    assert "monitor stopped" in (detached / "monitor.log").read_text()
    after = run_ugro("daemon", "status")
    assert after.code == 3
    assert "the monitor is not running" in after.out
    assert run_ugro("daemon", "stop").code == 0


def test_start_with_a_bad_config_shows_the_log(
    cluster: TestCluster, tmp_path: Path, detached: Path
) -> None:
    """`ugro daemon start` of a daemon that cannot start fails and prints the end of the log."""
    config = write_config(cluster, tmp_path / "cluster.yaml", cluster.hosts[:1], checks=SSH_ONLY)
    config.write_text(
        config.read_text().replace(f"ssh_port: {cluster.hosts[0].port}", "ssh_port: 70000")
    )

    ran = run_ugro("--config", config, "daemon", "start")

    assert ran.code != 0
    assert "the monitor failed to start (exit 1)" in ran.out
    assert "ssh_port" in ran.out
    assert "70000" in ran.out
    assert not daemon_processes(detached)


# --- what `ugro health` says about the monitor --------------------------------------------------


@pytest.mark.parametrize(
    ("sig", "note"),
    [(signal.SIGTERM, "the monitor stopped after"), (signal.SIGKILL, "died without stopping")],
    ids=["stopped", "killed"],
)
def test_health_explains_stale_verdicts(
    cluster: TestCluster,
    tmp_path: Path,
    daemons: Callable[..., DaemonProcess],
    sig: signal.Signals,
    note: str,
) -> None:
    """Once the daemon is gone, verdicts go stale after 3 intervals and health says why."""
    config = write_config(
        cluster, tmp_path / "cluster.yaml", cluster.hosts[:1], interval_s=0.5, checks=SSH_ONLY
    )
    daemon = daemons(config)
    daemon.wait_sweeps(1)
    fresh = run_ugro("health")
    assert fresh.code in (0, 1), fresh.out

    daemon.send(sig)
    daemon.wait(timeout=10)
    state = read_state(daemon.home)
    assert state is not None
    assert state["stale_after_s"] == 1.5
    node = state["nodes"]["h0"]
    stale_at = max(
        when(node["last_check"]) + timedelta(seconds=1.5),
        when(node["tracking"]["next_check_at"]) + timedelta(seconds=1.0),
    )
    wait_for(lambda: datetime.now(UTC) > stale_at + timedelta(seconds=0.2), what="staleness")

    ran = run_ugro("health")
    assert ran.code == 3, ran.out
    assert "stale" in ran.out
    assert note in ran.out
    document = run_ugro("health", "--json").json()
    assert document["nodes"][0]["status"] == "stale"
    assert document["nodes"][0]["checked_status"] in GOOD
    (text,) = document["notes"]
    assert note in text
    if sig is signal.SIGKILL:
        assert f"(pid {daemon.pid})" in text


# --- systemd ------------------------------------------------------------------------------------


def test_sd_notify_ready_status_watchdog_stopping(
    cluster: TestCluster, tmp_path: Path, daemons: Callable[..., DaemonProcess]
) -> None:
    """Under a notify socket the daemon says READY, STATUS, pings the watchdog, then STOPPING."""
    address = tmp_path / "notify.sock"
    config = write_config(cluster, tmp_path / "cluster.yaml", cluster.hosts[:2], checks=SSH_ONLY)
    messages: list[str] = []

    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(address))
        sock.settimeout(0.1)

        def received(wanted: Callable[[list[str]], bool]) -> bool:
            with contextlib.suppress(TimeoutError):
                messages.append(sock.recv(4096).decode())
            return wanted(messages)

        daemon = daemons(config, env={"NOTIFY_SOCKET": str(address), "WATCHDOG_USEC": "400000"})
        wait_for(
            lambda: received(
                lambda m: (
                    sum(x == "WATCHDOG=1" for x in m) >= 2
                    and any(x.startswith("STATUS=") for x in m[1:])
                )
            ),
            what="READY, a sweep's STATUS and two watchdog pings",
        )
        daemon.send(signal.SIGTERM)
        wait_for(lambda: received(lambda m: "STOPPING=1" in m), what="STOPPING=1")
        assert daemon.wait(timeout=10) == 0

    assert messages[0] == "READY=1\nSTATUS=monitoring 2 nodes"
    statuses = [m for m in messages[1:] if m.startswith("STATUS=")]
    assert re.fullmatch(r"STATUS=(degraded \d, )?healthy \d|STATUS=degraded 2", statuses[0])
    assert messages.index("STOPPING=1") > messages.index(statuses[0])
