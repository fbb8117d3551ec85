"""Per-node schedules, concurrent writers and a full log disk, against real sshd test hosts.

Each test starts `python -m ugro daemon run` as a process and breaks one node (a wedged GPU,
a hostile node) or the world around the daemon (`ugro check` beside it, a full disk under
its log), and judges the other nodes and the daemon by what an operator sees: the state
file, `ugro health`, `ugro hosts`, /metrics, the log and stderr. Cadence bounds are
structural (a 6 s hang against a 1 s interval), never speed targets.
"""

from __future__ import annotations

import itertools
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

from conftest import closed_port, run_ugro, wait_for
from daemonharness import (
    FAST_TIMEOUTS,
    GOOD,
    SSH_GPU,
    SSH_ONLY,
    DaemonProcess,
    State,
    daemon_starter,
    read_state,
    when,
    write_config,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from sshcluster import TestCluster

# Integration: real daemon processes against real sshd test hosts.
pytestmark = pytest.mark.integration

INTERVAL_S = 1.0
CONFIRM_S = 0.3
#: The wedged GPU's hang: nvidia-smi and torch each time out after this long.
HANG_S = 6.0
#: Beyond the configured times, what a detection may take on this busy two-core machine.
SLACK_S = 1.5


@pytest.fixture
def daemons(tmp_path: Path, isolated_home: Path) -> Iterator[Callable[..., DaemonProcess]]:
    """Start `ugro daemon run` processes; each is killed and reaped at teardown."""
    with daemon_starter(isolated_home, tmp_path) as start:
        yield start


def good(state: State, names: set[str]) -> bool:
    """Whether every node of `names` is in the state and shown healthy or degraded."""
    return names <= set(state["nodes"]) and all(state["nodes"][n]["status"] in GOOD for n in names)


def test_a_wedged_gpu_delays_no_other_node(
    cluster: TestCluster, tmp_path: Path, daemons: Callable[..., DaemonProcess]
) -> None:
    """h0's wedged GPU (6 s hangs): the others keep their cadence, stay listed, faults show fast."""
    h0, h1 = cluster.host("h0"), cluster.host("h1")
    others = {h.name for h in cluster.hosts} - {"h0"}
    config = write_config(
        cluster,
        tmp_path / "cluster.yaml",
        checks=["ssh", "gpu", "torch"],
        timeouts={**FAST_TIMEOUTS, "gpu": HANG_S, "torch": HANG_S},
        interval_s=INTERVAL_S,
        confirm_s=CONFIRM_S,
    )
    daemon = daemons(config)
    daemon.wait_state(lambda s: good(s, {*others, "h0"}), what="every node good")

    h0.set_gpu("hang")
    h0.set_torch("hang")
    wait_for(h0.stub_processes, what="h0's hung nvidia-smi")
    since = datetime.now(UTC)
    seen: dict[str, set[str]] = {name: set() for name in others}

    def watch(state: State) -> bool:
        for name in others:
            seen[name].add(state["nodes"][name]["last_check"])
        return bool(state["nodes"]["h0"]["status"] == "unhealthy")

    shown = daemon.wait_state(watch, 3 * HANG_S + SLACK_S, "h0 confirmed unhealthy")

    gpu = shown["nodes"]["h0"]["checks"]["gpu"]["message"]
    assert gpu.startswith(f"no answer within {HANG_S:g} s (timeouts.gpu): nvidia-smi hung"), gpu
    torch = shown["nodes"]["h0"]["checks"]["torch"]["message"]
    assert torch.startswith(f"no answer within {HANG_S:g} s (timeouts.torch)"), torch
    assert "it may be swapping" not in str(shown["nodes"]["h0"])
    for name in others:
        starts = sorted(when(t) for t in seen[name] if when(t) >= since)
        spacing = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
        assert len(spacing) >= HANG_S / INTERVAL_S, (name, spacing)
        # Structural: any wait on h0 would be a 6 s gap.
        assert max(spacing) < INTERVAL_S + SLACK_S, (name, spacing)
    health = run_ugro("--config", config, "health", "--json").json()
    statuses = {row["name"]: row["status"] for row in health["nodes"]}
    assert all(statuses[name] in GOOD for name in others), statuses
    hosts = run_ugro("--config", config, "hosts")
    assert hosts.code == 0, hosts.err
    listed = set(hosts.out.split())
    assert {h.addr for h in cluster.hosts if h.name in others} <= listed, hosts.out
    assert "left out h0" in hosts.err

    h1.set_gpu("driver")
    fault_at = time.monotonic()
    daemon.wait_state(lambda s: s["nodes"]["h1"]["status"] == "unhealthy", what="h1 unhealthy")
    took = time.monotonic() - fault_at
    bound = INTERVAL_S + CONFIRM_S + SLACK_S
    assert took <= bound, f"h1's fault took {took:.1f} s to show beside the hung h0 ({bound})"


def test_a_verdict_never_goes_back_in_time_beside_ugro_check(
    cluster: TestCluster, tmp_path: Path, daemons: Callable[..., DaemonProcess]
) -> None:
    """`ugro check h2` in a loop beside the daemon: h2's stored last_check only moves forward."""
    hosts = cluster.hosts[:3]
    config = write_config(cluster, tmp_path / "cluster.yaml", hosts, checks=SSH_GPU, interval_s=0.5)
    daemon = daemons(config)
    daemon.wait_state(lambda s: good(s, {"h0", "h1", "h2"}), what="every node good")
    seen: list[str] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            state = read_state(daemon.home)
            if state is not None:
                seen.append(state["nodes"]["h2"]["last_check"])
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        for _ in range(6):
            ran = run_ugro("--config", config, "check", "h2")
            assert ran.code in (0, 1), ran.out
    finally:
        done.set()
        sampler.join(timeout=10)

    times = [when(t) for t in seen]
    backwards = [(a, b) for a, b in itertools.pairwise(times) if b < a]
    assert not backwards, backwards
    assert len(set(times)) >= 6, "both writers' checks were seen"


def test_ugro_check_goes_through_the_daemons_hysteresis(
    cluster: TestCluster, tmp_path: Path, daemons: Callable[..., DaemonProcess]
) -> None:
    """A failing `ugro check` beside the daemon is one observation: pending; the daemon confirms."""
    h1 = cluster.host("h1")
    # Long enough between the daemon's checks of h1 for `ugro check` to run in between.
    interval = 8.0
    config = write_config(
        cluster,
        tmp_path / "cluster.yaml",
        cluster.hosts[:2],
        checks=SSH_GPU,
        interval_s=interval,
        confirm_s=interval,
        fail_after=2,
    )
    daemon = daemons(config)
    first = daemon.wait_state(lambda s: good(s, {"h0", "h1"}), what="both nodes good")
    last = first["nodes"]["h1"]["last_check"]
    # Right after a daemon check of h1, so the next check of it is `ugro check`'s.
    daemon.wait_state(lambda s: s["nodes"]["h1"]["last_check"] != last, interval + SLACK_S)

    h1.set_gpu("driver")
    ran = run_ugro("--config", config, "check", "h1")

    assert ran.code == 2, "ugro check shows and exits with what it saw now"
    state = read_state(daemon.home)
    assert state is not None
    node = state["nodes"]["h1"]
    assert node["status"] in GOOD, "one bad check is not the node's status"
    assert node["tracking"]["observed"] == "unhealthy"
    assert node["tracking"]["fail_streak"] == 1
    confirmed = daemon.wait_state(
        lambda s: s["nodes"]["h1"]["status"] == "unhealthy", interval + SLACK_S, "confirmation"
    )
    assert confirmed["nodes"]["h1"]["tracking"]["fail_streak"] == 2, "the daemon counted it"
    log = daemon.wait_log("h1: ")
    assert "h1: healthy -> unhealthy" in log or "h1: degraded -> unhealthy" in log, log


def test_a_full_disk_under_the_log_costs_one_line(
    cluster: TestCluster, tmp_path: Path, isolated_home: Path
) -> None:
    """The log file on a full filesystem: monitoring goes on; stderr says so once, no tracebacks."""
    log_file = cluster.full_filesystem() / f"{tmp_path.name}.log"
    config = write_config(cluster, tmp_path / "cluster.yaml", cluster.hosts[:2], checks=SSH_ONLY)

    def argv(path: Path) -> list[str]:
        run = [sys.executable, "-m", "ugro", "--config", str(path), "daemon", "run"]
        return [*run, "--log-file", str(log_file)]

    try:
        with daemon_starter(isolated_home, tmp_path, argv) as start:
            daemon = start(config)
            state = daemon.wait_sweeps(5)
            assert state["daemon"]["log_errors"] > 0
            daemon.send(signal.SIGTERM)
            assert daemon.wait(timeout=10) == 0
            err = daemon.err()
    finally:
        log_file.unlink(missing_ok=True)

    assert err.count("ugro: cannot write the log") == 1, err
    assert f"cannot write the log ({log_file}): [Errno 28] No space left on device" in err
    assert "Logging error" not in err
    assert "Traceback" not in err
    stopped = read_state(isolated_home)
    assert stopped is not None
    assert stopped["daemon"]["running"] is False


def scrape(port: int) -> int:
    """The HTTP status of /metrics on the daemon's exporter (0: no answer)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            answer.read()
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def test_a_hostile_node_for_many_passes_harms_no_one(
    cluster: TestCluster, tmp_path: Path, daemons: Callable[..., DaemonProcess]
) -> None:
    """h0 turns hostile every way the hosts know, pass after pass: the rest stay fine."""
    h0 = cluster.host("h0")
    others = {"h1", "h2", "h3"}
    port = closed_port()
    config = cluster.write_config(
        tmp_path / "cluster.yaml",
        cluster.hosts[:4],
        None,
        timeouts={**FAST_TIMEOUTS, "gpu": 2, "torch": 2},
        monitor={"interval_s": 0.5, "confirm_s": 0.3},
        exporter={"enabled": True, "address": "127.0.0.1", "port": port},
        checks=["ssh", "gpu", "torch", "disk"],
    )
    daemon = daemons(config)
    daemon.wait_state(lambda s: good(s, {*others, "h0"}), what="every node good")
    faults: list[Callable[[], Any]] = [
        lambda: h0.set_gpu("garbage"),
        lambda: h0.set_torch("broken"),
        lambda: h0.set_gpu("hang"),
        lambda: h0.set_torch("hang"),
        lambda: h0.set_gpu("lost"),
        h0.kill,
        h0.start,
        lambda: h0.set_gpu("empty"),
        h0.pause,
        h0.resume,
    ]
    answers = []
    for fault in faults:
        fault()
        passes = daemon.sweeps()
        daemon.wait_sweeps(passes + 3)
        answers.append(scrape(port))
        state = daemon.state()
        assert state is not None
        now = datetime.now(UTC)
        for name in others:
            node = state["nodes"][name]
            assert node["status"] in GOOD, (name, node)
            assert (now - when(node["last_check"])).total_seconds() < 3 * 0.5 + SLACK_S, name
    assert answers == [200] * len(faults)
    assert daemon.process.poll() is None
