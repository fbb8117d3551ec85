"""Alerts end to end: a real `ugro daemon run` against real sshd hosts, to real receivers.

Faults are injected on the test hosts; what counts is what arrives, in which order, at an
HTTP receiver (as a webhook and as Apprise's json://), at a real Alertmanager, and what
`ugro alerts` and `ugro daemon status` say. Every sequence is asserted whole, so a duplicate
or an early message fails the test as surely as a missing one.
"""

from __future__ import annotations

import itertools
import re
import signal
import time
from typing import TYPE_CHECKING, Any

import psutil
import pytest

from conftest import closed_port, run_ugro, wait_for
from daemonharness import FAST_TIMEOUTS, GOOD, DaemonProcess, State, daemon_starter, tool

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from conftest import Alertmanager, Receiver, Request
    from sshcluster import TestCluster, TestHost

# Integration: real daemon processes, sshd test hosts and Alertmanager.
pytestmark = pytest.mark.integration

#: (kind, node, key) of one delivered event.
Event = tuple[str, str, str]

#: Planted in a sink's URL; it must never appear in an error, a counter, a log or the CLI.
MARKER = "s3cret"
#: The `alerts.cluster` label of every test here.
CLUSTER = "e2e-lab"
HOOK = "/hook"
APPRISE = "/apprise"
SSH_GPU = ["ssh", "gpu"]

# One message per node episode: a webhook or chat sink never gets the `check:gpu` alert,
# which goes to Alertmanager only; the node's alert names the check.
FIRED = [("firing", "h1", "unhealthy")]
RESOLVED = [("resolved", "h1", "unhealthy")]


def write_config(
    cluster: TestCluster,
    path: Path,
    hosts: list[TestHost],
    sinks: list[dict[str, Any]],
    *,
    checks: list[str],
    alerts: dict[str, Any] | None = None,
    **monitor: object,
) -> Path:
    """A cluster.yaml for a fast daemon that delivers alerts to `sinks`."""
    return cluster.write_config(
        path,
        hosts,
        None,
        timeouts=FAST_TIMEOUTS,
        checks=checks,
        monitor={
            "interval_s": 1,
            "confirm_s": 0.3,
            "fail_after": 2,
            "recover_after": 2,
            **monitor,
        },
        alerts={"cluster": CLUSTER, **(alerts or {}), "sinks": sinks},
        exporter={"enabled": False},
        history={"enabled": False},
    )


def webhook(receiver: Receiver, name: str = "hook") -> dict[str, Any]:
    """A webhook sink posting to the receiver's HOOK path."""
    return {"name": name, "type": "webhook", "url": receiver.url(HOOK)}


@pytest.fixture
def daemons(tmp_path: Path, isolated_home: Path) -> Iterator[Callable[[Path], DaemonProcess]]:
    """Start `ugro daemon run` processes; each is killed (if still running) and reaped."""
    with daemon_starter(isolated_home, tmp_path) as start:
        yield start


def status(state: State, node: str) -> str | None:
    """The status the state file shows for `node` (None before its first check)."""
    entry = state["nodes"].get(node)
    return None if entry is None else str(entry["status"])


def events(receiver: Receiver, path: str = HOOK) -> list[Event]:
    """(kind, node, key) of each event the webhook delivered to `path`, in order."""
    return [(r.body["kind"], r.body["node"], r.body["key"]) for r in receiver.at(path)]


def wait_requests(receiver: Receiver, count: int, path: str) -> list[Request]:
    """Wait until `count` requests reached `path`; the requests received there so far."""
    wait_for(
        lambda: len(receiver.at(path)) >= count,
        f"{count} deliveries to {path}; got {receiver.at(path)}",
    )
    return receiver.at(path)


def wait_events(receiver: Receiver, count: int, path: str = HOOK) -> list[Event]:
    """Wait until `count` events reached `path`; the events delivered there so far."""
    wait_requests(receiver, count, path)
    return events(receiver, path)


def settle(daemon: DaemonProcess, sweeps: int = 2) -> None:
    """Let `sweeps` more sweeps pass, and their deliveries land."""
    daemon.wait_sweeps(daemon.sweeps() + sweeps)
    time.sleep(0.3)


def expected_title(body: dict[str, Any]) -> str:
    """The Apprise title of the event a webhook received as `body`."""
    prefix = {"firing": "", "reminder": "still: ", "resolved": "resolved: "}[body["kind"]]
    return f"[{body['severity'].upper()}] {prefix}{body['node']}: {body['summary']}"


def watch_sweeps(
    daemon: DaemonProcess, until: Callable[[State], bool]
) -> tuple[float, int, list[float], float]:
    """Watch the state until `until`: seconds watched, sweeps seen, gaps between them, longest."""
    samples: list[tuple[float, int, float]] = []

    def done() -> bool:
        state = daemon.state()
        assert state is not None
        info = state["daemon"]
        samples.append((time.monotonic(), info["sweeps"], info["last_sweep_duration_s"]))
        return until(state)

    wait_for(done, f"{until} while watching the sweeps", 30, every=0.1)
    seen = [t for (_, before, _), (t, n, _) in itertools.pairwise(samples) if n > before]
    return (
        samples[-1][0] - samples[0][0],
        samples[-1][1] - samples[0][1],
        [b - a for a, b in itertools.pairwise(seen)],
        max(duration for _, _, duration in samples),
    )


def stop(daemon: DaemonProcess) -> None:
    """SIGTERM the daemon; it must exit 0 within 10 s."""
    daemon.send(signal.SIGTERM)
    assert daemon.wait(timeout=10) == 0, daemon.err()


# --- tests -----------------------------------------------------------------------------------


def test_fault_fires_after_confirmation_reminds_and_resolves(
    cluster: TestCluster,
    tmp_path: Path,
    receiver: Receiver,
    daemons: Callable[[Path], DaemonProcess],
) -> None:
    """A confirmed fault fires once per alert, reminds once per interval and resolves once."""
    h1 = cluster.host("h1")
    chat = {
        "name": "chat",
        "type": "apprise",
        "urls": [f"json://127.0.0.1:{receiver.port}{APPRISE}"],
    }
    config = write_config(
        cluster,
        tmp_path / "cluster.yaml",
        [h1],
        [webhook(receiver), chat],
        checks=SSH_GPU,
        alerts={"repeat_interval_s": 3},
    )
    daemon = daemons(config)
    daemon.wait_state(lambda s: status(s, "h1") in GOOD, what="h1 healthy")

    h1.set_gpu("driver")
    pending = daemon.wait_state(
        lambda s: s["nodes"]["h1"]["tracking"]["observed"] == "unhealthy", what="a failed check"
    )
    assert status(pending, "h1") in GOOD
    assert receiver.requests == [], "an unconfirmed fault was announced"
    daemon.wait_state(lambda s: status(s, "h1") == "unhealthy", what="the confirmed fault")
    assert wait_events(receiver, 1) == FIRED
    assert receiver.at(HOOK)[0].body["checks"] == ["gpu"]

    reminded = wait_events(receiver, 2)
    assert reminded == [*FIRED, ("reminder", "h1", "unhealthy")]
    fired, reminder = receiver.at(HOOK)
    # The engine compares sweep start times; deliveries may shift by a sweep's length.
    assert 2.7 < reminder.received_at - fired.received_at < 5, (fired, reminder)

    h1.set_gpu("healthy")
    daemon.wait_state(lambda s: status(s, "h1") in GOOD, what="recovery")
    assert wait_events(receiver, 3) == [*reminded, *RESOLVED]
    settle(daemon)
    assert events(receiver) == [*reminded, *RESOLVED]

    chat_requests = wait_requests(receiver, 3, APPRISE)
    titles = [r.body["title"] for r in chat_requests]
    assert titles == [expected_title(r.body) for r in receiver.at(HOOK)]
    assert titles[0].startswith("[CRITICAL] h1: unhealthy: 1 of 2 checks fail"), titles
    assert titles[1].startswith("[CRITICAL] still: h1: unhealthy: "), titles
    assert titles[2].startswith("[CRITICAL] resolved: h1: unhealthy: "), titles
    types = [r.body["type"] for r in chat_requests]
    assert types == ["failure"] * 2 + ["success"]
    assert "NVIDIA driver" in chat_requests[0].body["message"]


def test_flapping_node_gets_one_alert_instead_of_a_stream(
    cluster: TestCluster,
    tmp_path: Path,
    receiver: Receiver,
    daemons: Callable[[Path], DaemonProcess],
) -> None:
    """A flapping node is announced as flapping, again as critical once it fails, then silent."""
    h1 = cluster.host("h1")
    config = write_config(
        cluster,
        tmp_path / "cluster.yaml",
        [h1],
        [webhook(receiver)],
        checks=SSH_GPU,
        alerts={"flap_changes": 4, "flap_window_s": 60},
        fail_after=1,
        recover_after=1,
    )
    daemon = daemons(config)
    daemon.wait_state(lambda s: status(s, "h1") in GOOD, what="h1 healthy")

    flapping = ("firing", "h1", "flapping")
    # What the receiver holds after each of the first five changes; nothing comes after. The
    # fifth, a failure held back, raises the flapping alert to critical: a new firing.
    expected: list[list[Event]] = [FIRED, [*FIRED, *RESOLVED], [*FIRED, *RESOLVED, *FIRED]]
    expected.append([*expected[-1], flapping])
    expected.append([*expected[-1], flapping])
    for change, mode in enumerate(["driver", "healthy"] * 3):
        h1.set_gpu(mode)
        faulty = mode == "driver"

        def seen(state: State, faulty: bool = faulty) -> bool:
            return (status(state, "h1") == "unhealthy") is faulty

        daemon.wait_state(seen, what=f"change {change + 1}: {mode}")
        if change < len(expected):
            assert wait_events(receiver, len(expected[change])) == expected[change], change
    settle(daemon)
    assert events(receiver) == expected[-1]

    state = daemon.state()
    assert state is not None
    firing = {(a["node"], a["key"]) for a in state["alerts"]["firing"]}
    assert firing == {("h1", "flapping")}
    assert len(state["alerts"]["changes"]["h1"]) == 6


def test_half_the_cluster_down_at_once_is_one_cluster_alert(
    cluster: TestCluster,
    tmp_path: Path,
    receiver: Receiver,
    daemons: Callable[[Path], DaemonProcess],
) -> None:
    """Two of four nodes going down together: one cluster alert, no per-node ones."""
    hosts = cluster.hosts[:4]
    h2, h3 = cluster.host("h2"), cluster.host("h3")
    config = write_config(
        cluster, tmp_path / "cluster.yaml", hosts, [webhook(receiver)], checks=["ssh"]
    )
    daemon = daemons(config)
    daemon.wait_state(
        lambda s: all(status(s, h.name) in GOOD for h in hosts), what="every node healthy"
    )
    # Right after a sweep, so that both deaths fall between the same two sweeps.
    daemon.wait_sweeps(daemon.sweeps() + 1)
    h2.kill()
    h3.kill()

    down = daemon.wait_state(
        lambda s: status(s, "h2") == status(s, "h3") == "unreachable", what="h2 and h3 down"
    )
    assert status(down, "h0") in GOOD
    assert status(down, "h1") in GOOD
    assert wait_events(receiver, 1) == [("firing", "cluster", "nodes_down")]
    body = receiver.at(HOOK)[0].body
    assert body["cluster"] == CLUSTER
    assert body["summary"] == "2 of 4 nodes went down at once"
    assert [line.split(":", 1)[0] for line in body["details"]] == ["h2", "h3"]
    held = daemon.wait_state(
        lambda s: len(s["alerts"]["firing"]) == 3, what="the group and its held alerts"
    )
    assert {(a["node"], a["key"], a["grouped"]) for a in held["alerts"]["firing"]} == {
        ("cluster", "nodes_down", False),
        ("h2", "unreachable", True),
        ("h3", "unreachable", True),
    }

    h2.start()
    h3.start()
    daemon.wait_state(
        lambda s: all(status(s, h.name) in GOOD for h in hosts), what="every node back"
    )
    assert wait_events(receiver, 2) == [
        ("firing", "cluster", "nodes_down"),
        ("resolved", "cluster", "nodes_down"),
    ]
    settle(daemon)
    assert events(receiver) == [
        ("firing", "cluster", "nodes_down"),
        ("resolved", "cluster", "nodes_down"),
    ]


def test_alertmanager_shows_the_alerts_while_they_fire(
    cluster: TestCluster,
    tmp_path: Path,
    receiver: Receiver,
    alertmanager: Alertmanager,
    daemons: Callable[[Path], DaemonProcess],
) -> None:
    """A real Alertmanager lists a confirmed fault's alerts with ugro's labels until recovery."""
    h1 = cluster.host("h1")
    am = {"name": "am", "type": "alertmanager", "url": alertmanager.url}
    config = write_config(
        cluster, tmp_path / "cluster.yaml", [h1], [am, webhook(receiver)], checks=SSH_GPU
    )

    def active() -> dict[str, dict[str, str]]:
        return {
            a["labels"]["key"]: a["labels"]
            for a in alertmanager.alerts("?active=true")
            if a["labels"].get("cluster") == CLUSTER
        }

    daemon = daemons(config)
    daemon.wait_state(lambda s: status(s, "h1") in GOOD, what="h1 healthy")
    assert active() == {}

    h1.set_gpu("driver")
    assert wait_events(receiver, 1) == FIRED
    shown = wait_for(lambda: len(active()) == 2 and active(), what="both alerts in Alertmanager")
    common = {"node": "h1", "severity": "critical", "cluster": CLUSTER}
    assert shown == {
        "unhealthy": {"alertname": "UgroUnhealthy", "key": "unhealthy", **common},
        "check:gpu": {"alertname": "UgroCheckGpu", "key": "check:gpu", "check": "gpu", **common},
    }

    h1.set_gpu("healthy")
    assert wait_events(receiver, 2) == [*FIRED, *RESOLVED]
    wait_for(lambda: active() == {}, what="the resolved alerts to leave the active ones")
    # Counters reach the state file with the sweep after the delivery.
    state = daemon.wait_state(
        lambda s: s["alerts"]["delivery"]["am"]["sent"] >= 4, what="4 deliveries counted"
    )
    stats = state["alerts"]["delivery"]["am"]
    assert (stats["sent"], stats["retries"], stats["failed"]) == (4, 0, 0), stats


def test_failing_and_hanging_sinks_delay_neither_sweeps_nor_good_sinks(
    cluster: TestCluster,
    tmp_path: Path,
    receiver: Receiver,
    daemons: Callable[[Path], DaemonProcess],
) -> None:
    """A refusing and a hanging sink beside a good one: sweeps keep time, errors are counted."""
    h1 = cluster.host("h1")
    refused = closed_port()
    sinks = [
        {
            "name": "refusing",
            "type": "webhook",
            "url": f"http://user:{MARKER}@127.0.0.1:{refused}/hook?token={MARKER}",
            "timeout_s": 1,
        },
        {"name": "hung", "type": "command", "command": [tool("sleep"), "30"], "timeout_s": 1},
        webhook(receiver),
    ]
    config = write_config(cluster, tmp_path / "cluster.yaml", [h1], sinks, checks=SSH_GPU)
    daemon = daemons(config)
    daemon.wait_state(lambda s: status(s, "h1") in GOOD, what="h1 healthy")

    h1.set_gpu("driver")
    daemon.wait_state(lambda s: status(s, "h1") == "unhealthy", what="the confirmed fault")
    confirmed = time.monotonic()
    assert wait_events(receiver, 1) == FIRED
    assert receiver.at(HOOK)[0].received_at - confirmed < 1.5, "the good sink waited"

    # The refusing sink gives up after 5 attempts, 1 + 2 + 4 + 8 s apart: meanwhile the
    # sweeps must keep their one-second cadence.
    elapsed, swept, gaps, longest = watch_sweeps(
        daemon, lambda s: s["alerts"]["delivery"]["refusing"]["failed"] > 0
    )
    assert elapsed > 10, elapsed
    assert swept >= 0.75 * elapsed, (swept, elapsed)
    assert max(gaps) < 2, gaps
    assert longest < 0.9, longest

    report = run_ugro("alerts", "--json")
    assert report.code == 0, report.err
    delivery = report.json()["delivery"]
    refusing, hung, hook = delivery["refusing"], delivery["hung"], delivery["hook"]
    assert (refusing["sent"], refusing["failed"]) == (0, 1), refusing
    assert refusing["retries"] >= 4, refusing
    assert refusing["target"] == f"http://127.0.0.1:{refused}/…"
    assert "refused" in refusing["last_error"], refusing
    # It gives up on its first event about 20 s after it came (1 s attempts, 1 + 2 + 4 + 8 s).
    assert hung["sent"] == 0, hung
    assert hung["failed"] <= 1, hung
    assert hung["retries"] >= 2, hung
    assert hung["target"] == "sleep"
    assert "sleep did not finish within 1 s and was killed" in hung["last_error"], hung
    assert (hook["sent"], hook["retries"], hook["failed"], hook["last_error"]) == (1, 0, 0, None)
    assert MARKER not in report.out

    shown = run_ugro("daemon", "status")
    assert shown.code == 0, shown.out
    assert "alerts firing: 2" in shown.out
    assert "sink hook: 1 sent, 0 retries, 0 failed\n" in shown.out
    # Retries of the next event may have been counted since `ugro alerts` read the state.
    refusal = f"sink 'refusing': POST http://127.0.0.1:{refused}/…: Connection refused"
    assert re.search(
        rf"^sink refusing: 0 sent, \d+ retries, 1 failed, last error: {re.escape(refusal)}$",
        shown.out,
        re.MULTILINE,
    ), shown.out
    assert "sink hung: 0 sent, " in shown.out
    assert MARKER not in shown.out
    assert "gave up on firing event h1/unhealthy after 5 attempts" in daemon.log()
    assert MARKER not in daemon.log()
    assert MARKER not in daemon.err()

    # A clean stop kills the hung command in flight, if any, with the daemon's other children.
    children = psutil.Process(daemon.pid).children(recursive=True)
    stop(daemon)
    _, alive = psutil.wait_procs(children, timeout=5)
    assert not alive, alive
    assert events(receiver) == FIRED


def test_alerts_table_and_test_notifications(
    cluster: TestCluster,
    tmp_path: Path,
    receiver: Receiver,
    daemons: Callable[[Path], DaemonProcess],
) -> None:
    """`ugro alerts` lists what fires; `ugro alerts test` reaches each sink or says why not."""
    h1 = cluster.host("h1")
    config = write_config(
        cluster, tmp_path / "cluster.yaml", [h1], [webhook(receiver)], checks=SSH_GPU
    )
    daemon = daemons(config)
    daemon.wait_state(lambda s: status(s, "h1") in GOOD, what="h1 healthy")
    h1.set_gpu("driver")
    assert wait_events(receiver, 1) == FIRED
    daemon.wait_state(
        lambda s: s["alerts"]["delivery"]["hook"]["sent"] == 1, what="the delivery counted"
    )

    table = run_ugro("alerts")
    assert table.code == 0, table.err
    lines = table.out.splitlines()
    assert lines[0].strip() == "firing"
    assert any(
        line.split()[:2] == ["critical", "h1"] and "unhealthy: 1 of 2 checks fail" in line
        for line in lines
    ), table.out
    assert any(
        line.split()[:2] == ["critical", "h1"] and "gpu check fail" in line for line in lines
    ), table.out
    assert "nothing resolved recently" in table.out
    assert any(line.split()[:4] == ["hook", "1", "0", "0"] for line in lines), table.out

    stop(daemon)
    sent = run_ugro("--config", config, "alerts", "test")
    assert sent.code == 0, sent.out + sent.err
    assert sent.out == "hook: delivered\n"
    assert wait_events(receiver, 2) == [*FIRED, ("test", "cluster", "test")]
    assert receiver.at(HOOK)[1].body["cluster"] == CLUSTER

    refused = closed_port()
    bad = {
        "name": "bad",
        "type": "webhook",
        "url": f"http://user:{MARKER}@127.0.0.1:{refused}/hook?token={MARKER}",
        "timeout_s": 2,
    }
    both = write_config(
        cluster, tmp_path / "both.yaml", [h1], [webhook(receiver), bad], checks=SSH_GPU
    )
    failed = run_ugro("--config", both, "alerts", "test")
    assert failed.code == 1, failed.out + failed.err
    assert "hook: delivered\n" in failed.out
    assert f"bad: FAILED: sink 'bad': POST http://127.0.0.1:{refused}/…: " in failed.out
    assert "refused" in failed.out
    assert MARKER not in failed.out + failed.err
    assert wait_events(receiver, 3) == [*FIRED, *[("test", "cluster", "test")] * 2]


def test_firing_retried_at_a_stop_arrives_after_the_restart(
    cluster: TestCluster,
    tmp_path: Path,
    receiver: Receiver,
    daemons: Callable[[Path], DaemonProcess],
) -> None:
    """Receiver down, fault, stop mid-retry, receiver up, restart: the firing arrives, once."""
    h1 = cluster.host("h1")
    config = write_config(
        cluster, tmp_path / "cluster.yaml", [h1], [webhook(receiver)], checks=SSH_GPU
    )
    receiver.status = 503
    daemon = daemons(config)
    daemon.wait_state(lambda s: status(s, "h1") in GOOD, what="h1 healthy")
    h1.set_gpu("driver")
    daemon.wait_log("attempt 1/5 failed, retrying in 1 s")
    stop(daemon)
    refused = len(receiver.at(HOOK))
    assert refused >= 1
    assert {r.body["kind"] for r in receiver.at(HOOK)} == {"firing"}

    receiver.status = 200
    again = daemons(config)
    wait_for(lambda: len(receiver.at(HOOK)) >= refused + 1, "the kept firing after the restart")
    settle(again)
    got = receiver.at(HOOK)[refused:]
    assert [(r.body["kind"], r.body["node"], r.body["key"]) for r in got] == FIRED

    h1.set_gpu("healthy")
    wait_for(lambda: len(receiver.at(HOOK)) >= refused + 2, "the resolution")
    settle(again)
    got = receiver.at(HOOK)[refused:]
    assert [(r.body["kind"], r.body["node"], r.body["key"]) for r in got] == [*FIRED, *RESOLVED]
    # Each resolved answers a firing the receiver accepted (200), none a refused one alone.
    accepted = {(r.body["key"], r.body["started_at"]) for r in got if r.body["kind"] == "firing"}
    assert {(r.body["key"], r.body["started_at"]) for r in got[1:]} == accepted
