"""Fault injection: real faults against a running `ugro daemon run`, each one timed.

Every test starts the daemon on three test hosts (h0, h1, h2) with small timings (`POLICY`:
a check every 1 s, confirmation 0.3 s later, 2 bad checks to fail, 2 good ones to recover),
injects one real fault into h1 and judges three things: the verdict and its message; how
long detection took, against a bound computed from the configured interval, confirmation
delay and timeouts; and that h0 and h2 noticed nothing. Each test enables only the checks
its fault needs, so a sweep takes milliseconds where no fault slows it.

Network faults are iptables rules on OUTPUT (loss: INPUT) that match only the test host's 127.0.0.x
address and SSH port, and carry the comment `ugro-test-faults`; the `firewall` fixture
deletes every such rule before and after each test, whatever happened in between. Latency
is real: the kernel hands each matching packet to tests/nfqdelay.py through NFQUEUE, which
holds it 150 ms before accepting it (`tc netem` is not available on this kernel).

Needs root (iptables, NFQUEUE, sshd, mount), like the rest of the suite.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import psutil
import pytest

from conftest import PATIENCE_S, TESTS
from daemonharness import (
    FAST_TIMEOUTS,
    GOOD,
    DaemonProcess,
    State,
    daemon_starter,
    monitor,
    when,
)
from ugro.checks.running import GRACE_S

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from sshcluster import TestCluster, TestHost

# Integration: real daemons, sshd test hosts and iptables rules (root).
pytestmark = pytest.mark.integration

Node = dict[str, Any]

#: The daemon's hysteresis for every test. backoff_after is out of reach, so a node that
#: comes back is retried after one interval, not after a backoff.
POLICY: dict[str, float] = {
    "interval_s": 1,
    "confirm_s": 0.3,
    "fail_after": 2,
    "recover_after": 2,
    "backoff_after": 100,
}
INTERVAL_S = POLICY["interval_s"]
CONFIRM_S = POLICY["confirm_s"]
FAIL_AFTER = int(POLICY["fail_after"])
RECOVER_AFTER = int(POLICY["recover_after"])
#: What a detection bound allows beyond the configured times: interpreter and scheduling
#: delays on this busy two-core machine, the state write and the test's polling.
SLACK_S = 1.5
#: The node every test breaks, and the ones that must not notice.
VICTIM = "h1"
BYSTANDERS = ("h0", "h2")

COMMENT = "ugro-test-faults"
NFQDELAY = TESTS / "nfqdelay.py"
DELAY_MS = 150
MAX_LATENCY_MS = 100
#: The chains a test rule may be on.
CHAINS = ("OUTPUT", "INPUT")
#: Probability that the loss rule drops a packet, and how many checks may pass before one
#: of them must show it.
LOSS = 0.5
LOSS_CHECKS = 5
#: How long a queue reader may take to start.
READY_S = 10.0


# --- watching the daemon ------------------------------------------------------------------------


@dataclass
class Watch:
    """A running daemon and every node check the test saw in its state file."""

    daemon: DaemonProcess
    checks: dict[str, dict[str, Node]] = field(default_factory=dict)

    def until(
        self, predicate: Callable[[State], bool], what: str, timeout: float = PATIENCE_S
    ) -> tuple[State, float]:
        """Poll until `predicate` holds, recording each check; the state and when it was seen."""

        def check(state: State) -> bool:
            for name, node in state["nodes"].items():
                self.checks.setdefault(name, {})[node["last_check"]] = node
            return predicate(state)

        state = self.daemon.wait_state(check, timeout, what)
        return state, time.monotonic()

    def of(self, name: str, since: datetime) -> list[Node]:
        """The checks of `name` started at or after `since`, oldest first."""
        seen = self.checks.get(name, {})
        return [seen[at] for at in sorted(seen, key=when) if when(at) >= since]


def victim(state: State) -> Node:
    """h1's entry in the state."""
    node: Node = state["nodes"][VICTIM]
    return node


def all_ok(node: Node) -> bool:
    """Whether the node is shown healthy or degraded and every one of its checks passed."""
    return node["status"] in GOOD and all(c["status"] == "ok" for c in node["checks"].values())


def everyone_fine(state: State) -> bool:
    """Whether all three nodes are in the state, shown good, with every check ok."""
    nodes = state["nodes"]
    return {VICTIM, *BYSTANDERS} <= set(nodes) and all(all_ok(n) for n in nodes.values())


def assert_bystanders_unaffected(watch: Watch, since: datetime) -> None:
    """h0 and h2 are checked after `since` (waits for it), and every such check passed entirely."""
    watch.until(
        lambda _: all(watch.of(name, since) for name in BYSTANDERS),
        "h0 and h2 to be checked",
        INTERVAL_S + SLACK_S,
    )
    for name in BYSTANDERS:
        for node in watch.of(name, since):
            assert all_ok(node), (name, node)


def fault_config(
    cluster: TestCluster,
    path: Path,
    checks: list[str],
    *,
    timeouts: dict[str, float] | None = None,
    workers_extra: dict[str, dict[str, object]] | None = None,
) -> Path:
    """A cluster.yaml for h0..h2: `POLICY`, short timeouts, only `checks`, no metrics port."""
    return cluster.write_config(
        path,
        cluster.hosts[:3],
        workers_extra,
        timeouts={**FAST_TIMEOUTS, **(timeouts or {})},
        monitor=monitor(**POLICY),
        exporter={"enabled": False},
        checks=checks,
    )


@pytest.fixture
def watched(
    cluster: TestCluster, tmp_path: Path, isolated_home: Path
) -> Iterator[Callable[[Path], Watch]]:
    """Start `ugro daemon run` on a config, wait until every node passes; reaped at teardown.

    At teardown no hung stub command is left on the hosts either: `cluster.reset()` would
    remove them before the next test, but after the last test of a run nothing would.
    """
    try:
        with daemon_starter(isolated_home, tmp_path) as spawn_daemon:

            def start(config: Path) -> Watch:
                watch = Watch(spawn_daemon(config))
                watch.until(everyone_fine, "every node to pass every check")
                return watch

            try:
                yield start
            finally:
                for host in cluster.hosts:
                    host.set_gpu("healthy")  # a command the daemon still starts ends at once
    finally:
        remove_stub_commands(cluster)


def remove_stub_commands(cluster: TestCluster) -> None:
    """Kill the commands sessions left on the hosts (a hung `sleep 600`), until none appear."""
    deadline = time.monotonic() + 5
    quiet = 0
    while quiet < 2 and time.monotonic() < deadline:
        pids = [pid for host in cluster.hosts for pid in host.stub_processes()]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        quiet = 0 if pids else quiet + 1
        time.sleep(0.1)


# --- network faults -----------------------------------------------------------------------------


def _iptables() -> str:
    found = shutil.which("iptables", path="/usr/sbin:/usr/bin:/sbin:/bin")
    # scripts/test installs iptables, and the suite runs as root.
    assert found is not None, "iptables is not installed (Debian package iptables)"
    return found


@dataclass(frozen=True)
class Firewall:
    """Inserts OUTPUT (or INPUT) rules aimed at one test host's SSH port, and deletes them all."""

    iptables: str

    def add(self, host: TestHost, *match_and_target: str, chain: str = "OUTPUT") -> None:
        """Insert a rule for TCP from here to `host`'s address and port (a loopback one).

        On OUTPUT a dropped packet fails its send here, which TCP retries as a local
        congestion event; on INPUT it is dropped after it left, as on a wire, and TCP sees
        the loss and resends it.
        """
        assert ipaddress.ip_address(host.addr).is_loopback, host
        assert chain in CHAINS, chain
        self._run(
            "-I",
            chain,
            "-d",
            host.addr,
            "-p",
            "tcp",
            "--dport",
            str(host.port),
            "-m",
            "comment",
            "--comment",
            COMMENT,
            *match_and_target,
        )

    def ours(self) -> list[list[str]]:
        """The OUTPUT and INPUT rules carrying our comment, as `iptables -S` lists them."""
        listed = [line for c in CHAINS for line in self._run("-S", c).stdout.splitlines()]
        return [shlex.split(line) for line in listed if f"--comment {COMMENT}" in line]

    def clear(self) -> None:
        """Delete every rule with our comment (this run's and any a killed run left)."""
        for rule in self.ours():
            assert rule[0] == "-A", rule
            assert rule[1] in CHAINS, rule
            self._run("-D", *rule[1:])
        assert not self.ours(), "a test rule survived its deletion"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [self.iptables, "-w", "5", *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, f"iptables {shlex.join(args)}: {done.stderr}"
        return done


@pytest.fixture
def firewall() -> Iterator[Firewall]:
    """Our iptables rules; none before the test, none after it, even when it fails."""
    wall = Firewall(_iptables())
    wall.clear()
    try:
        yield wall
    finally:
        wall.clear()


@contextlib.contextmanager
def delayed_queue(queue: int, delay_ms: int, log: Path) -> Iterator[None]:
    """Run tests/nfqdelay.py on netfilter queue `queue` until the block ends."""
    with log.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, str(NFQDELAY), str(queue), str(delay_ms)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
        )
    assert process.stdout is not None
    try:
        ready, _, _ = select.select([process.stdout], [], [], READY_S)
        line = process.stdout.readline() if ready else b""
        assert line == b"ready\n", f"nfqdelay did not start: {log.read_text()}"
        yield
        assert process.poll() is None, f"nfqdelay died: {log.read_text()}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        process.stdout.close()


def test_latency_fails_the_node_and_clears(
    cluster: TestCluster,
    tmp_path: Path,
    watched: Callable[[Path], Watch],
    firewall: Firewall,
) -> None:
    """150 ms of real packet delay to h1 fails its latency check, confirmed, and clears."""
    h1 = cluster.host(VICTIM)
    config = fault_config(cluster, tmp_path / "cluster.yaml", ["ssh", "latency"])
    watch = watched(config)
    # A queue number no other program on this machine is likely to hold.
    queue = 31000 + os.getpid() % 1000

    with delayed_queue(queue, DELAY_MS, tmp_path / "nfqdelay.log"):
        firewall.add(h1, "-j", "NFQUEUE", "--queue-num", str(queue), "--queue-bypass")
        fault_wall, fault_at = datetime.now(UTC), time.monotonic()

        first, _ = watch.until(
            lambda s: victim(s)["checks"]["latency"]["status"] == "fail", "a slow latency check"
        )
        node = victim(first)
        assert node["status"] in GOOD, "one bad check is not yet a verdict"
        assert node["tracking"]["observed"] == "unhealthy"
        latency = node["checks"]["latency"]
        assert f"exceeds {MAX_LATENCY_MS} ms" in latency["message"], latency
        assert latency["message"].startswith("SSH connection round trip "), latency
        # The kernel's smoothed estimate of the open connection moves an eighth of the way to
        # each new sample: over the limit within a pass or two, never past the real delay.
        assert MAX_LATENCY_MS < latency["value"] < DELAY_MS + 250, latency
        assert node["checks"]["ssh"]["status"] == "ok", "the open SSH session still works"

        shown, shown_at = watch.until(
            lambda s: victim(s)["status"] == "unhealthy", "h1 shown unhealthy"
        )
        took = shown_at - fault_at
        bound = 2 * INTERVAL_S + CONFIRM_S + FAIL_AFTER * FAST_TIMEOUTS["latency"] + SLACK_S
        assert took <= bound, f"detected after {took:.1f} s, bound {bound:.1f} s"
        assert victim(shown)["tracking"]["fail_streak"] == FAIL_AFTER
        assert victim(shown)["alerts"][0]["text"].startswith("latency: SSH connection round trip")
        assert_bystanders_unaffected(watch, fault_wall)

        firewall.clear()
    clear_wall, clear_at = datetime.now(UTC), time.monotonic()

    recovered, recovered_at = watch.until(lambda s: all_ok(victim(s)), "h1 to recover")
    took = recovered_at - clear_at
    # The smoothed estimate takes a pass or two of traffic to come back down, as it went up.
    bound = 2 * INTERVAL_S + CONFIRM_S + RECOVER_AFTER * FAST_TIMEOUTS["latency"] + SLACK_S
    assert took <= bound, f"recovered after {took:.1f} s, bound {bound:.1f} s"
    assert victim(recovered)["checks"]["latency"]["value"] < MAX_LATENCY_MS
    assert victim(recovered)["tracking"]["pass_streak"] >= RECOVER_AFTER
    assert_bystanders_unaffected(watch, clear_wall)
    print(f"latency: detected in {shown_at - fault_at:.2f} s, recovered in {took:.2f} s")  # noqa: T201


def test_packet_loss_shows_within_a_few_checks_and_clears(
    cluster: TestCluster,
    tmp_path: Path,
    watched: Callable[[Path], Watch],
    firewall: Firewall,
) -> None:
    """Dropping half of h1's packets shows in its latency or ssh check within 5 checks.

    The packets are dropped on INPUT, after they left, as a lossy wire drops them. Which check
    shows it, and how, is chance: lost packets of the open SSH session are resent, which the
    latency check reads from the kernel's counters of the connection (a warning), and resent
    with backoff, which may push the ssh check past its timeout (and then the latency check,
    which waits for the same command, is given up).
    So the test asserts that one of the first 5 checks after the rule is not ok, and that
    whatever it says names loss, a limit or a timeout; then that h1 is fine again once the
    rule is gone.
    """
    h1 = cluster.host(VICTIM)
    config = fault_config(cluster, tmp_path / "cluster.yaml", ["ssh", "latency"])
    watch = watched(config)

    firewall.add(
        h1,
        *("-m", "statistic", "--mode", "random", "--probability", str(LOSS), "-j", "DROP"),
        chain="INPUT",
    )
    fault_wall, fault_at = datetime.now(UTC), time.monotonic()

    def hurt(node: Node) -> bool:
        return any(c["status"] != "ok" for c in node["checks"].values())

    def decided(_: State) -> bool:
        checks = watch.of(VICTIM, fault_wall)
        return any(hurt(n) for n in checks) or len(checks) >= LOSS_CHECKS

    per_check = INTERVAL_S + max(FAST_TIMEOUTS["latency"], FAST_TIMEOUTS["ssh"])
    watch.until(decided, "a check of h1 that shows the loss", LOSS_CHECKS * per_check + SLACK_S)
    seen_at = time.monotonic()
    checks = watch.of(VICTIM, fault_wall)
    bad = [n for n in checks if hurt(n)]
    assert bad, f"{len(checks)} checks under {LOSS:.0%} loss all passed: {checks}"
    node = bad[0]
    latency, ssh = node["checks"]["latency"], node["checks"]["ssh"]
    if latency["status"] != "ok":
        # Unknown when the ssh check failed first: the sweep gives up on the rest.
        judged = latency["status"] in ("warn", "fail")
        assert judged or (latency["status"] == "unknown" and ssh["status"] == "fail"), latency
        assert re.search(
            r"segments sent since the last check were resent \(packet loss\?\)|exceeds 100 ms"
            r"|no answer within|not judged: the node's shell did not answer",
            latency["message"],
        ), latency
    if ssh["status"] != "ok":
        assert ssh["status"] == "fail", ssh
        assert re.search(r"no answer within 2 s \(timeouts\.ssh\)|connection lost", ssh["message"])
    assert_bystanders_unaffected(watch, fault_wall)

    firewall.clear()
    clear_at = time.monotonic()
    # A check in flight may still wait for a retransmission (exponential backoff from
    # 0.2 s), so recovery may take a timeout longer than with a clean cut.
    bound = INTERVAL_S + CONFIRM_S + (RECOVER_AFTER + 1) * FAST_TIMEOUTS["ssh"] + SLACK_S
    _, recovered_at = watch.until(lambda s: all_ok(victim(s)), "h1 to recover", bound)
    print(  # noqa: T201
        f"loss: shown by check {checks.index(node) + 1} after {seen_at - fault_at:.2f} s "
        f"({node['status']}; latency {latency['status']}, ssh {ssh['status']}); "
        f"recovered in {recovered_at - clear_at:.2f} s"
    )


# --- sshd faults --------------------------------------------------------------------------------


def test_sshd_killed_mid_sweep_is_unreachable_then_recovers(
    cluster: TestCluster, tmp_path: Path, watched: Callable[[Path], Watch]
) -> None:
    """Killing sshd while h1's gpu check hangs: unreachable once confirmed, back after restart."""
    h1 = cluster.host(VICTIM)
    gpu_timeout = 3.0
    config = fault_config(
        cluster, tmp_path / "cluster.yaml", ["ssh", "gpu"], timeouts={"gpu": gpu_timeout}
    )
    watch = watched(config)

    h1.set_gpu("hang")
    watch.until(lambda _: bool(h1.stub_processes()), "h1's gpu check to hang")
    fault_wall, fault_at = datetime.now(UTC), time.monotonic()
    h1.kill()

    shown, shown_at = watch.until(
        lambda s: victim(s)["status"] == "unreachable", "h1 shown unreachable"
    )
    took = shown_at - fault_at
    bound = gpu_timeout + CONFIRM_S + INTERVAL_S + SLACK_S
    assert took <= bound, f"detected after {took:.1f} s, bound {bound:.1f} s"
    node = victim(shown)
    assert node["tracking"]["fail_streak"] >= FAIL_AFTER
    refused = f"connection refused on port {h1.port}: sshd is not running"
    assert node["checks"]["ssh"]["message"].startswith(refused), node["checks"]
    assert node["alerts"][0]["text"].startswith(f"unreachable: {refused}")
    # The check in flight ended when its connection died, not at the gpu timeout.
    assert took < gpu_timeout, f"the in-flight check waited {took:.1f} s for its timeout"
    in_flight = re.search(
        r"h1: observed \w+ \(1 of 2\), confirming in 0\.3 s \((.*)\)", watch.daemon.log()
    )
    assert in_flight, watch.daemon.log()
    assert_bystanders_unaffected(watch, fault_wall)

    h1.set_gpu("healthy")
    h1.start()
    restart_at = time.monotonic()
    _, recovered_at = watch.until(lambda s: all_ok(victim(s)), "h1 to recover")
    took = recovered_at - restart_at
    bound = INTERVAL_S + RECOVER_AFTER * CONFIRM_S + SLACK_S
    assert took <= bound, f"recovered after {took:.1f} s, bound {bound:.1f} s"
    print(f"kill: detected in {shown_at - fault_at:.2f} s, recovered in {took:.2f} s")  # noqa: T201
    assert "connection lost" in in_flight[1], in_flight


def test_stopped_sshd_is_unreachable_and_delays_no_one(
    cluster: TestCluster, tmp_path: Path, watched: Callable[[Path], Watch]
) -> None:
    """A SIGSTOPped sshd: no handshake, unreachable after 2 timeouts; h0, h2 keep their pace."""
    h1 = cluster.host(VICTIM)
    connect = FAST_TIMEOUTS["connect"]
    config = fault_config(cluster, tmp_path / "cluster.yaml", ["ssh"])
    watch = watched(config)

    pid = h1.pid
    assert pid is not None
    h1.pause()
    # The daemon keeps one SSH connection per node, served by its own (running) sshd
    # child: cut it, as a hung host's kernel eventually would, so the daemon reconnects.
    for child in psutil.Process(pid).children(recursive=True):
        child.kill()
    fault_wall, fault_at = datetime.now(UTC), time.monotonic()

    shown, shown_at = watch.until(
        lambda s: victim(s)["status"] == "unreachable", "h1 shown unreachable"
    )
    took = shown_at - fault_at
    bound = FAIL_AFTER * connect + CONFIRM_S + INTERVAL_S + SLACK_S
    assert took <= bound, f"detected after {took:.1f} s, bound {bound:.1f} s"
    node = victim(shown)
    assert node["tracking"]["fail_streak"] == FAIL_AFTER
    hung = f"no SSH handshake within {connect:g} s: the host or its sshd is hung"
    assert node["checks"]["ssh"]["message"].startswith(hung), node["checks"]
    assert node["alerts"][0]["text"].startswith(f"unreachable: {hung}")
    failed = [n for n in watch.of(VICTIM, fault_wall) if n["tracking"]["observed"] == "unreachable"]
    assert len(failed) == FAIL_AFTER, "shown unreachable at the fail_after-th failed check"
    assert failed[0]["status"] in GOOD

    assert_bystanders_unaffected(watch, fault_wall)
    for name in BYSTANDERS:
        checks = watch.of(name, fault_wall)
        assert all(n["checks"]["ssh"]["duration_ms"] < 1000 for n in checks), checks
        # Each node keeps its own schedule: h1's connect timeouts never hold the others back.
        starts = [when(n["last_check"]) for n in checks]
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
        assert all(gap <= max(INTERVAL_S, connect) + 0.75 for gap in gaps), (name, gaps)

    h1.resume()
    resume_at = time.monotonic()
    _, recovered_at = watch.until(lambda s: all_ok(victim(s)), "h1 to recover")
    took = recovered_at - resume_at
    bound = INTERVAL_S + RECOVER_AFTER * CONFIRM_S + SLACK_S
    assert took <= bound, f"recovered after {took:.1f} s, bound {bound:.1f} s"
    print(f"sigstop: detected in {shown_at - fault_at:.2f} s, recovered in {took:.2f} s")  # noqa: T201


def test_blackholed_connection_is_unreachable_within_two_ssh_timeouts(
    cluster: TestCluster,
    tmp_path: Path,
    watched: Callable[[Path], Watch],
    firewall: Firewall,
) -> None:
    """h1's held connection blackholed: unreachable after 2 ssh timeouts, said plainly, alone.

    Every command on the silent connection hangs; the node's slowest check (torch, 8 s)
    must not be what it waits for, and h0 and h2 keep their pace meanwhile.
    """
    h1 = cluster.host(VICTIM)
    ssh_timeout = FAST_TIMEOUTS["ssh"]
    torch_timeout = 8.0
    config = fault_config(
        cluster,
        tmp_path / "cluster.yaml",
        ["ssh", "gpu", "torch"],
        timeouts={"torch": torch_timeout},
    )
    watch = watched(config)

    fault_wall, fault_at = datetime.now(UTC), time.monotonic()
    firewall.add(h1, "-j", "DROP")

    shown, shown_at = watch.until(
        lambda s: victim(s)["status"] == "unreachable", "h1 shown unreachable"
    )
    took = shown_at - fault_at
    # The channel open that no answer comes to is bounded by the check's grace period.
    bound = INTERVAL_S + FAIL_AFTER * (ssh_timeout + GRACE_S) + CONFIRM_S + SLACK_S
    assert took <= bound, f"detected after {took:.1f} s, bound {bound:.1f} s"
    assert bound < FAIL_AFTER * torch_timeout, "the bound tells the torch timeout apart"
    node = victim(shown)
    silent = (
        f"no answer within {ssh_timeout:g} s (timeouts.ssh): the open SSH connection went silent"
    )
    assert node["checks"]["ssh"]["message"].startswith(silent), node["checks"]
    assert node["checks"]["torch"]["message"].startswith("not judged: the node's shell"), node
    assert "it may be swapping" not in str(node)
    assert_bystanders_unaffected(watch, fault_wall)
    for name in BYSTANDERS:
        starts = [when(n["last_check"]) for n in watch.of(name, fault_wall)]
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
        assert all(gap <= INTERVAL_S + SLACK_S for gap in gaps), (name, gaps)

    firewall.clear()
    _, recovered_at = watch.until(lambda s: all_ok(victim(s)), "h1 to recover")
    print(  # noqa: T201
        f"blackhole: detected in {took:.2f} s, recovered {recovered_at - shown_at:.2f} s later"
    )


# --- node faults ---------------------------------------------------------------------------------


def test_full_filesystem_fails_the_disk_check(
    cluster: TestCluster, tmp_path: Path, watched: Callable[[Path], Watch]
) -> None:
    """h1's data path moving onto a really full filesystem fails disk, confirmed, naming it."""
    full = cluster.full_filesystem()
    roomy = tmp_path / "roomy"
    roomy.mkdir()
    data = tmp_path / "data"
    data.symlink_to(roomy)
    extra: dict[str, dict[str, object]] = {
        VICTIM: {"disk_paths": ["/", str(data)], "min_disk_gb": 0.001}
    }
    config = fault_config(cluster, tmp_path / "cluster.yaml", ["ssh", "disk"], workers_extra=extra)
    watch = watched(config)

    # Swap the symlink in one rename, as a volume mounted over the data path would appear.
    swap = tmp_path / "data.new"
    swap.symlink_to(full)
    fault_wall, fault_at = datetime.now(UTC), time.monotonic()
    swap.replace(data)

    shown, shown_at = watch.until(lambda s: victim(s)["status"] == "unhealthy", "h1 unhealthy")
    took = shown_at - fault_at
    bound = INTERVAL_S + CONFIRM_S + SLACK_S
    assert took <= bound, f"detected after {took:.1f} s, bound {bound:.1f} s"
    node = victim(shown)
    assert node["tracking"]["fail_streak"] == FAIL_AFTER
    disk = node["checks"]["disk"]
    assert disk["status"] == "fail"
    assert disk["message"].startswith(f"{data}: 0.0 GB free, below 0.001 GB;"), disk
    assert "/: " not in disk["message"], "the root filesystem has room"
    assert disk["value"] == 0
    (on_full,) = [d for d in node["disks"] if d["path"] == str(data)]
    assert on_full["mount"] == str(full)
    assert on_full["free_bytes"] == 0
    assert node["alerts"][0]["text"].startswith(f"disk: {data}: 0.0 GB free")
    assert_bystanders_unaffected(watch, fault_wall)
    print(f"disk: detected in {took:.2f} s")  # noqa: T201


def test_hung_nvidia_smi_fails_gpu_in_one_timeout_per_sweep(
    cluster: TestCluster, tmp_path: Path, watched: Callable[[Path], Watch]
) -> None:
    """nvidia-smi hanging on h1 fails gpu after 2 timeouts; each sweep lasts one timeout."""
    h1 = cluster.host(VICTIM)
    gpu_timeout = 3.0
    config = fault_config(
        cluster, tmp_path / "cluster.yaml", ["ssh", "gpu"], timeouts={"gpu": gpu_timeout}
    )
    watch = watched(config)
    sweeps_before = watch.daemon.sweeps()

    h1.set_gpu("hang")
    fault_wall, fault_at = datetime.now(UTC), time.monotonic()

    shown, shown_at = watch.until(
        lambda s: victim(s)["status"] == "unhealthy", "h1 shown unhealthy", PATIENCE_S
    )
    took = shown_at - fault_at
    bound = INTERVAL_S + FAIL_AFTER * gpu_timeout + CONFIRM_S + SLACK_S
    assert took <= bound, f"detected after {took:.1f} s, bound {bound:.1f} s"
    node = victim(shown)
    assert node["tracking"]["fail_streak"] == FAIL_AFTER
    gpu = node["checks"]["gpu"]
    assert gpu["status"] == "fail"
    assert gpu["message"].startswith(
        f"no answer within {gpu_timeout:g} s (timeouts.gpu): nvidia-smi hung"
    ), gpu
    assert node["checks"]["ssh"]["status"] == "ok"
    assert node["alerts"][0]["text"].startswith("gpu: no answer within 3 s (timeouts.gpu)")

    sweeps_after = int(shown["daemon"]["sweeps"])
    # The state is written before the sweep's log line: wait for that line.
    log = watch.daemon.wait_log(f"sweep {sweeps_after}: ")
    durations = {
        int(m[1]): float(m[2]) for m in re.finditer(r"sweep (\d+): \d+ nodes? in ([0-9.]+) s", log)
    }
    during = [durations[n] for n in range(sweeps_before + 1, sweeps_after + 1) if n in durations]
    hung = [d for d in during if d >= gpu_timeout - 0.1]
    assert len(hung) >= FAIL_AFTER, (sweeps_before, sweeps_after, durations)
    # The check's own timeout ends the sweep, not the monitor's grace period behind it.
    assert max(during) <= gpu_timeout + 0.75, during
    assert_bystanders_unaffected(watch, fault_wall)
    print(f"hang: detected in {took:.2f} s; sweeps {during}")  # noqa: T201
