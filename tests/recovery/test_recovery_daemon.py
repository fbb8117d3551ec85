"""Cordons and remediation end to end: a real daemon against real sshd hosts.

The daemon runs as its own process (tests/recording_scheduler.py: `ugro daemon run` with a
scheduler that records its calls); faults are injected on the test hosts, and what counts is
what an operator sees: the cordons file, `ugro health`, `ugro history`, the log, the alerts
that reach a webhook, the files the actions leave behind, and what the scheduler was told.
"""

from __future__ import annotations

import contextlib
import re
import shlex
import signal
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import psutil
import pytest

from conftest import TESTS, run_ugro, wait_for
from daemonharness import FAST_TIMEOUTS, GOOD, DaemonProcess, daemon_starter
from recording_scheduler import calls
from ugro import paths
from ugro.store.cordons import CordonStore
from ugro.store.history import opened

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from conftest import Receiver
    from sshcluster import TestCluster, TestHost

# Integration: real daemon processes against real sshd test hosts.
pytestmark = pytest.mark.integration

LAUNCHER = TESTS / "recording_scheduler.py"
SSH_GPU = ["ssh", "gpu"]
HOOK = "/hook"


def write_config(
    cluster: TestCluster,
    path: Path,
    hosts: list[TestHost],
    recovery: dict[str, Any],
    receiver: Receiver | None = None,
) -> Path:
    """A cluster.yaml for a fast daemon with `recovery` settings and, maybe, a webhook."""
    sinks = [{"name": "hook", "type": "webhook", "url": receiver.url(HOOK)}] if receiver else []
    return cluster.write_config(
        path,
        hosts,
        None,
        timeouts=FAST_TIMEOUTS,
        checks=SSH_GPU,
        monitor={"interval_s": 1, "confirm_s": 0.3, "fail_after": 2, "recover_after": 2},
        exporter={"enabled": False},
        alerts={"cluster": "lab", "sinks": sinks},
        recovery=recovery,
    )


@pytest.fixture
def daemons(tmp_path: Path, isolated_home: Path) -> Iterator[Callable[..., DaemonProcess]]:
    """Start daemons with the recording scheduler; reap them all; no noise in their stderr."""
    record = str(tmp_path / "scheduler.jsonl")
    with daemon_starter(
        isolated_home, tmp_path, lambda config: [sys.executable, str(LAUNCHER), str(config), record]
    ) as start:
        yield start


def cordons() -> dict[str, Any]:
    """The cordons file now, as JSON objects by node."""
    return {n: c.to_json() for n, c in CordonStore().read().items()}


def up(hosts: list[TestHost]) -> Callable[[dict[str, Any]], bool]:
    """A state predicate: every one of `hosts` is shown healthy or degraded."""

    def check(state: dict[str, Any]) -> bool:
        shown = state["nodes"]
        return all(h.name in shown and shown[h.name]["status"] in GOOD for h in hosts)

    return check


def events(node: str | None = None) -> list[tuple[str, str]]:
    """(node, kind) of every event in the history."""
    with opened(paths.history_file()) as history:
        found = history.events(node, datetime.now(UTC) - timedelta(hours=1))
    return [(e.node, e.kind) for e in found]


def hook_events(receiver: Receiver) -> list[tuple[str, str, str]]:
    """(kind, node, key) of each alert the webhook received."""
    return [(r.body["kind"], r.body["node"], r.body["key"]) for r in receiver.at(HOOK)]


def action_processes(home: Path, node: str) -> dict[str, psutil.Process]:
    """The live processes of the control-node actions the daemon at `home` runs for `node`.

    By program name; an action's environment names its node, and the daemon's $UGRO_HOME
    tells this test's daemon from any other on the machine.
    """
    found = {}
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            env = process.environ()
            if env.get("UGRO_HOME") == str(home) and env.get("UGRO_NODE") == node:
                found[process.name()] = process
    return found


def gone(process: psutil.Process) -> bool:
    """Whether `process` has exited (a zombie waiting for its reaper counts as gone)."""
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def stop(daemon: DaemonProcess) -> None:
    """SIGTERM the daemon; it must exit 0."""
    daemon.send(signal.SIGTERM)
    assert daemon.wait(timeout=15) == 0, daemon.err()


def test_auto_cordon_confirmed_then_lifted_and_a_persons_cordon_stays(
    cluster: TestCluster, tmp_path: Path, daemons: Callable[..., DaemonProcess]
) -> None:
    """A confirmed fault is cordoned and drained; recovery lifts it; a person's cordon stays."""
    hosts = cluster.hosts[:4]
    h1, h2 = cluster.host("h1"), cluster.host("h2")
    config = write_config(
        cluster, tmp_path / "cluster.yaml", hosts, {"auto_cordon": True, "recover_after": 3}
    )
    assert run_ugro("--config", config, "cordon", "h2", "--reason", "new PSU").code == 0
    daemon = daemons(config)
    daemon.wait_state(up(hosts), what="every node up")

    h1.set_gpu("driver")
    h2.set_gpu("driver")
    wait_for(lambda: "h1" in cordons(), "h1 cordoned")
    cordon = cordons()["h1"]
    assert cordon["by"] == "ugro"
    assert cordon["user"] is None
    assert cordon["reason"].startswith("unhealthy: gpu: ")
    assert "driver" in cordon["reason"].lower()
    log = daemon.wait_log("h1: cordoned")
    confirmed = re.search(r"h1: \w+ -> unhealthy", log)
    assert confirmed is not None, log
    assert confirmed.start() < log.index("h1: cordoned"), log
    health = run_ugro("health", "--json").json()
    shown = {n["name"]: n["cordon"] for n in health["nodes"]}
    assert shown["h1"]["by"] == "ugro"
    assert shown["h2"]["by"] == "manual"
    assert shown["h0"] is None
    assert "cordoned by ugro" in run_ugro("health", "--wide").out

    h1.set_gpu("healthy")
    h2.set_gpu("healthy")
    wait_for(lambda: "h1" not in cordons(), "h1 uncordoned")
    # Shown healthy after monitor.recover_after (2) passes; lifted a sweep later, after 3.
    log = daemon.wait_log("h1: uncordoned")
    shown_up = re.search(r"h1: unhealthy -> (healthy|degraded)", log)
    assert shown_up is not None, log
    lifted_at = log.index("h1: uncordoned, recovered: 3 passing checks in a row")
    assert "INFO sweep " in log[shown_up.end() : lifted_at], log
    # h2 recovers as well, more than recover_after times over: its person's cordon stays.
    daemon.wait_state(
        lambda s: s["nodes"]["h2"]["tracking"]["pass_streak"] >= 5, what="h2 long recovered"
    )
    assert cordons()["h2"]["by"] == "manual"
    assert cordons()["h2"]["reason"] == "new PSU"

    told = calls(tmp_path / "scheduler.jsonl")
    assert [(c["call"], c["node"]) for c in told] == [("drain", "h1"), ("resume", "h1")]
    assert told[0]["reason"] == cordon["reason"]
    stop(daemon)
    # What the scheduler said is an event of its own: the calls run beside the sweeps.
    kinds = [kind for _, kind in events("h1")]
    assert [k for k in kinds if k != "scheduler"] == ["cordon", "uncordon"]
    assert kinds.count("scheduler") == 2
    assert events("h2") == [("h2", "cordon")]
    history = run_ugro("history", "h1")
    assert history.code == 0, history.err
    assert "uncordon" in history.out
    assert "recovered: 3 passing checks" in history.out


def test_scheduler_refusal_keeps_the_cordon(
    cluster: TestCluster, tmp_path: Path, daemons: Callable[..., DaemonProcess]
) -> None:
    """A scheduler that refuses the drain is logged; ugro's cordon is recorded all the same."""
    h0 = cluster.host("h0")
    hosts = cluster.hosts[:2]
    config = write_config(cluster, tmp_path / "cluster.yaml", hosts, {"auto_cordon": True})
    daemon = daemons(config, {"UGRO_TEST_REFUSE": "h0"})
    daemon.wait_state(up([h0]), what="h0 up")
    h0.kill()
    wait_for(lambda: "h0" in cordons(), "h0 cordoned")
    cordon = cordons()["h0"]
    assert cordon["by"] == "ugro"
    assert cordon["reason"].startswith("unreachable: ")
    daemon.wait_log("scheduler recorder: node h0 is not known to the recorder")
    # The refusal came after the cordon was recorded; sweeps later, the cordon still stands.
    daemon.wait_sweeps(daemon.sweeps() + 2)
    assert cordons()["h0"] == cordon
    told = calls(tmp_path / "scheduler.jsonl")
    assert [(c["call"], c["node"]) for c in told][:1] == [("drain", "h0")]
    assert told[0]["reason"] == cordon["reason"]
    stop(daemon)
    assert ("h0", "cordon") in events("h0")


def test_a_refused_drain_alerts_and_is_tried_again_until_it_lands(
    cluster: TestCluster, tmp_path: Path, daemons: Callable[..., DaemonProcess]
) -> None:
    """A refused drain raises an alert and is retried after the pause; success resolves it."""
    h0 = cluster.host("h0")
    hosts = cluster.hosts[:2]
    config = write_config(cluster, tmp_path / "cluster.yaml", hosts, {"auto_cordon": True})
    env = {"UGRO_TEST_REFUSE": "h0", "UGRO_TEST_REFUSALS": "2", "UGRO_TEST_SCHEDULER_RETRY_S": "1"}
    daemon = daemons(config, env)
    daemon.wait_state(up([h0]), what="h0 up")
    h0.kill()

    def out_of_sync(state: dict[str, Any]) -> bool:
        firing = (state.get("alerts") or {}).get("firing", [])
        return any(a["key"] == "scheduler_out_of_sync" and a["node"] == "h0" for a in firing)

    daemon.wait_state(out_of_sync, what="scheduler_out_of_sync alert for h0")
    record = tmp_path / "scheduler.jsonl"
    wait_for(
        lambda: [c["call"] for c in calls(record) if c["node"] == "h0"] == ["drain"] * 3,
        "two refused drains, then one that lands",
    )
    daemon.wait_state(lambda state: not out_of_sync(state), what="the alert resolved")
    assert ("h0", "scheduler") in events("h0")
    stop(daemon)


def test_breaker_holds_cordons_and_alerts(
    cluster: TestCluster,
    tmp_path: Path,
    receiver: Receiver,
    daemons: Callable[..., DaemonProcess],
) -> None:
    """Three of four nodes failing cordon at most half the cluster, and the breaker alerts."""
    hosts = cluster.hosts[:4]
    config = write_config(
        cluster, tmp_path / "cluster.yaml", hosts, {"auto_cordon": True}, receiver
    )
    daemon = daemons(config)
    daemon.wait_state(up(hosts), what="every node up")
    seen: list[int] = []

    def breaker_fired() -> bool:
        seen.append(len(cordons()))
        return ("firing", "cluster", "cordon_breaker") in hook_events(receiver)

    for host in hosts[1:]:
        host.set_gpu("driver")
    wait_for(breaker_fired, "the breaker alert")
    alert = next(r.body for r in receiver.at(HOOK) if r.body["key"] == "cordon_breaker")
    assert alert["severity"] == "critical"
    assert alert["summary"].startswith("cordon breaker open")
    daemon.wait_log("cordon breaker open")
    # A few more sweeps with the breaker open: still at most half of the nodes cordoned.
    daemon.wait_sweeps(daemon.sweeps() + 3)
    seen.append(len(cordons()))
    assert max(seen) <= 2, seen
    assert any(h.name not in cordons() for h in hosts[1:])

    for host in hosts[1:]:
        host.set_gpu("healthy")
    wait_for(
        lambda: ("resolved", "cluster", "cordon_breaker") in hook_events(receiver),
        "the breaker alert resolved",
    )
    wait_for(lambda: not cordons(), "every automatic cordon lifted")
    stop(daemon)
    kinds = [kind for node, kind in events() if node == "cluster"]
    assert kinds[:2] == ["breaker", "breaker"]


def test_remediation_attempts_escalate_and_survive_a_restart(
    cluster: TestCluster,
    tmp_path: Path,
    receiver: Receiver,
    daemons: Callable[..., DaemonProcess],
) -> None:
    """Actions run max_attempts times, then escalate to a cordon and an alert; restarts remember."""
    h1 = cluster.host("h1")
    hosts = cluster.hosts[:3]
    node_log = h1.dir / "fix.log"
    node_log.unlink(missing_ok=True)
    control_log = tmp_path / "control.log"
    limits = {"max_attempts": 2, "window_s": 3600, "cooldown_s": 1, "timeout_s": 10}
    recovery = {
        "dry_run": False,
        "actions": [
            # The session's HOME is the test host's directory.
            {
                "name": "reload-driver",
                "check": "gpu",
                "run": 'echo attempt >> "$HOME/fix.log"; echo reloading the driver',
                **limits,
            },
            {
                "name": "tell-bmc",
                "check": "gpu",
                "where": "control",
                "run": f'echo "$UGRO_NODE $UGRO_ADDRESS" >> {shlex.quote(str(control_log))}',
                **limits,
            },
        ],
    }
    config = write_config(cluster, tmp_path / "cluster.yaml", hosts, recovery, receiver)
    daemon = daemons(config)
    daemon.wait_state(up(hosts), what="every node up")

    h1.set_gpu("driver")
    wait_for(lambda: "h1" in cordons(), "the escalated cordon")
    cordon = cordons()["h1"]
    assert cordon["by"] == "ugro"
    assert cordon["escalated"] is True
    assert cordon["reason"].startswith("remediation failed: reload-driver ran 2 times in 1 h")
    assert node_log.read_text(encoding="utf-8").splitlines() == ["attempt", "attempt"]
    assert control_log.read_text(encoding="utf-8").splitlines() == [f"h1 {h1.addr}"] * 2
    wait_for(
        lambda: ("firing", "h1", "remediation_failed") in hook_events(receiver),
        "the escalation alert",
    )
    assert daemon.wait_log("h1: reload-driver exited 0", count=2).count("reload-driver exited") == 2

    # A restart remembers: the node stays escalated and nothing runs again.
    stop(daemon)
    daemon = daemons(config)
    daemon.wait_state(
        lambda s: s["daemon"]["pid"] == daemon.pid and s["daemon"]["sweeps"] >= 4,
        what="4 sweeps of the restarted daemon",
    )
    assert node_log.read_text(encoding="utf-8").splitlines() == ["attempt", "attempt"]
    assert cordons()["h1"]["escalated"] is True
    assert ("resolved", "h1", "remediation_failed") not in hook_events(receiver)

    # A person lifts the escalated cordon: the escalation ends and remediation starts afresh.
    lifted = run_ugro("--config", config, "uncordon", "h1")
    assert lifted.code == 0, lifted.err
    assert "escalated" in lifted.out
    wait_for(lambda: node_log.read_text(encoding="utf-8").count("attempt") >= 3, "a fresh attempt")
    wait_for(
        lambda: ("resolved", "h1", "remediation_failed") in hook_events(receiver),
        "the escalation alert resolved",
    )
    h1.set_gpu("healthy")
    daemon.wait_state(up([h1]), what="h1 recovered")
    stop(daemon)

    kinds = [kind for _, kind in events("h1")]
    assert kinds.count("escalation") >= 2  # escalated, then cleared
    assert "cordon" in kinds
    assert "uncordon" in kinds
    with opened(paths.history_file()) as history:
        ran = [
            e.detail
            for e in history.events("h1", datetime.now(UTC) - timedelta(hours=1))
            if e.kind == "remediation"
        ]
    node_runs = [d for d in ran if d["action"] == "reload-driver"]
    assert len(node_runs) >= 3
    assert all(d["exit_status"] == 0 and d["dry_run"] is False for d in node_runs)
    assert node_runs[0]["output"] == "reloading the driver\n"
    assert node_runs[0]["duration_s"] >= 0
    shown = run_ugro("history", "h1", "--json").json()
    assert {e["kind"] for e in shown["events"]} >= {"remediation", "escalation", "cordon"}


def test_dry_run_only_says_what_it_would_run(
    cluster: TestCluster, tmp_path: Path, daemons: Callable[..., DaemonProcess]
) -> None:
    """By default nothing runs: the log and history say what would, once per cooldown."""
    h1 = cluster.host("h1")
    marker = tmp_path / "ran"
    action = {"name": "touch", "check": "gpu", "where": "control", "run": f"touch {marker}"}
    config = write_config(cluster, tmp_path / "cluster.yaml", [h1], {"actions": [action]})
    daemon = daemons(config)
    daemon.wait_state(up([h1]), what="h1 up")
    h1.set_gpu("driver")
    daemon.wait_log("h1: would run touch on this control node")
    daemon.wait_sweeps(daemon.sweeps() + 4)
    stop(daemon)
    assert daemon.log().count("would run touch") == 1
    assert not marker.exists()
    assert not cordons(), "remediation in a dry run never escalates"
    with opened(paths.history_file()) as history:
        done = history.events("h1", datetime.now(UTC) - timedelta(hours=1))
    assert [(e.kind, e.detail["dry_run"]) for e in done] == [("remediation", True)]


def test_a_hung_action_costs_its_timeout_not_the_sweeps(
    cluster: TestCluster, tmp_path: Path, daemons: Callable[..., DaemonProcess]
) -> None:
    """A hung action is killed at its timeout and recorded so; sweeps go on meanwhile."""
    h1 = cluster.host("h1")
    hung = {
        "name": "hang",
        "check": "gpu",
        "where": "control",
        "run": "sleep 600",
        "timeout_s": 3,
        "cooldown_s": 3600,
    }
    recovery = {"dry_run": False, "actions": [hung]}
    config = write_config(cluster, tmp_path / "cluster.yaml", [h1], recovery)
    daemon = daemons(config)
    daemon.wait_state(up([h1]), what="h1 up")
    h1.set_gpu("driver")
    daemon.wait_log("h1: running hang")

    def sleeping() -> dict[str, psutil.Process]:
        found = action_processes(daemon.home, "h1")
        return found if "sleep" in found else {}

    running = wait_for(sleeping, "the hung action's `sleep 600`").values()
    log = daemon.wait_log("h1: hang no result within 3 s")
    between = log[log.index("h1: running hang") : log.index("h1: hang no result")]
    assert between.count("INFO sweep ") >= 1, between
    # Killed: the shell and its `sleep 600` are gone, not left to run out their ten minutes.
    wait_for(lambda: all(gone(p) for p in running), "the hung action killed", 5)
    daemon.wait_sweeps(daemon.sweeps() + 1)
    stop(daemon)
    with opened(paths.history_file()) as history:
        done = history.events("h1", datetime.now(UTC) - timedelta(hours=1))
    (detail,) = [e.detail for e in done if e.kind == "remediation"]
    assert detail["action"] == "hang"
    assert detail["exit_status"] is None
    assert detail["error"] == "no result within 3 s (timeout_s): stopped"
    # It cost its timeout, and not much more.
    assert 3 <= detail["duration_s"] < 3 + 2, detail
