"""Launch gating, pure: which nodes are usable and why not, the selection and the host lists."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import pytest

from ugro.cli import spans
from ugro.config import Master, Worker
from ugro.model import CheckResult, GpuMetrics, NodeStatus, NodeVerdict, Status, Tracking
from ugro.store.cordons import Cordon
from ugro.verdict import gating
from ugro.verdict.gating import Gate

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
STALE_AFTER_S = 90.0

RESULTS = {
    "ok": (CheckResult("ssh", Status.OK, "ok"), CheckResult("gpu", Status.OK, "2 × RTX 4090")),
    "gpu-fails": (
        CheckResult("ssh", Status.OK, "ok"),
        CheckResult("gpu", Status.FAIL, "the NVIDIA driver is not loaded (exit 9)"),
        CheckResult("disk", Status.FAIL, "/scratch: 0.1 GB free, below 10 GB"),
    ),
    "unreachable": (
        CheckResult("ssh", Status.FAIL, "connection refused on port 22"),
        CheckResult("gpu", Status.UNKNOWN, "not run: node unreachable"),
    ),
}


def gpu(index: int) -> GpuMetrics:
    """One GPU's readings."""
    return GpuMetrics(index, f"GPU-{index}", "NVIDIA GeForce RTX 4090", 40, 0, 0, 24564, 30, 450)


def verdict(
    name: str = "gpu1",
    status: NodeStatus = NodeStatus.HEALTHY,
    *,
    score: float = 100,
    results: str = "ok",
    age_s: float = 5,
    gpus: int = 2,
    observed: NodeStatus | None = None,
) -> NodeVerdict:
    """A verdict checked `age_s` before NOW; `observed` adds the daemon's tracking."""
    when = NOW - timedelta(seconds=age_s)
    tracking = Tracking(observed, when, 0, 0, 0, when + timedelta(seconds=30)) if observed else None
    return NodeVerdict(
        name=name,
        address="ignored",
        status=status,
        health_score=score,
        pass_rate=1.0,
        last_check=when,
        checks=RESULTS[results],
        gpus=tuple(gpu(i) for i in range(gpus)),
        tracking=tracking,
    )


def worker(name: str = "gpu1", ip: str = "10.0.0.1", gpus: int = 2, **extra: str) -> Worker:
    """A configured worker."""
    return Worker(name=name, ip=ip, gpus=gpus, **extra)  # type: ignore[arg-type]


def judge(
    v: NodeVerdict | None, cordon: Cordon | None = None, min_score: float = 0, node: str = "gpu1"
) -> Gate:
    """Judge one node at NOW."""
    return gating.judge(
        worker(node),
        v,
        cordon,
        now=NOW,
        stale_after_s=STALE_AFTER_S,
        min_score=min_score,
        hostname="control",
    )


SINCE = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("v", "cordon", "min_score", "reasons"),
    [
        pytest.param(verdict(), None, 0, [], id="healthy"),
        pytest.param(
            verdict(status=NodeStatus.DEGRADED, score=85), None, 0, [], id="degraded-can-train"
        ),
        pytest.param(
            verdict(status=NodeStatus.UNHEALTHY, score=45, results="gpu-fails"),
            None,
            0,
            [
                (
                    "unhealthy: gpu: the NVIDIA driver is not loaded (exit 9); "
                    "disk: /scratch: 0.1 GB free, below 10 GB"
                )
            ],
            id="unhealthy-names-failing-checks",
        ),
        pytest.param(
            verdict(status=NodeStatus.UNREACHABLE, score=0, results="unreachable"),
            None,
            0,
            ["unreachable: ssh: connection refused on port 22"],
            id="unreachable-names-ssh-only",
        ),
        pytest.param(None, None, 0, ["unknown: never checked; run `ugro check`"], id="unknown"),
        pytest.param(
            verdict(age_s=300),
            None,
            0,
            ["stale: last checked 5m ago (healthy then); no fresh verdict"],
            id="stale",
        ),
        pytest.param(
            verdict(),
            Cordon("gpu1", "manual", "fan replaced, burn-in", SINCE, user="alice"),
            0,
            ["cordoned by alice (manual) since 2026-11-28 09:30:00Z: fan replaced, burn-in"],
            id="cordoned-by-a-person",
        ),
        pytest.param(
            verdict(),
            Cordon("gpu1", "ugro", "unhealthy 3 times in 1 h", SINCE),
            0,
            ["cordoned by ugro since 2026-11-28 09:30:00Z: unhealthy 3 times in 1 h"],
            id="cordoned-by-ugro",
        ),
        pytest.param(
            verdict(score=75, status=NodeStatus.DEGRADED),
            None,
            80,
            ["score 75 below the minimum 80"],
            id="score-below-minimum",
        ),
        pytest.param(
            verdict(results="gpu-fails", observed=NodeStatus.UNHEALTHY),
            None,
            0,
            [
                (
                    "last check found it unhealthy: gpu: the NVIDIA driver is not loaded (exit 9); "
                    "disk: /scratch: 0.1 GB free, below 10 GB (not confirmed yet)"
                )
            ],
            id="unconfirmed-failure-is-out",
        ),
        pytest.param(
            verdict(status=NodeStatus.UNHEALTHY, observed=NodeStatus.HEALTHY),
            None,
            0,
            ["unhealthy: its last check passed, but the recovery is not confirmed yet"],
            id="unconfirmed-recovery-is-out",
        ),
        pytest.param(
            verdict(status=NodeStatus.UNREACHABLE, score=0, results="unreachable"),
            Cordon("gpu1", "manual", "RMA", SINCE, user="bob"),
            0,
            [
                "unreachable: ssh: connection refused on port 22",
                "cordoned by bob (manual) since 2026-11-28 09:30:00Z: RMA",
            ],
            id="every-reason-is-given",
        ),
    ],
)
def test_usable_and_why_not(
    v: NodeVerdict | None, cordon: Cordon | None, min_score: float, reasons: list[str]
) -> None:
    """Healthy or degraded, fresh, confirmed, uncordoned and scoring enough: usable; else why."""
    gate = judge(v, cordon, min_score)
    assert list(gate.reasons) == reasons
    assert gate.usable is (not reasons)


def test_stale_follows_the_daemons_backoff() -> None:
    """A node in backoff is not stale before its next planned check is overdue (as `health`)."""
    v = verdict(age_s=200, observed=NodeStatus.HEALTHY)
    backing_off = dataclasses.replace(
        v, tracking=Tracking(NodeStatus.HEALTHY, v.last_check, 0, 0, 3, NOW)
    )
    found = gating.judge(
        worker(), backing_off, None, now=NOW, stale_after_s=STALE_AFTER_S, interval_s=30
    )
    assert found.usable


def test_gpus_come_from_the_verdict_else_the_config() -> None:
    """Slots are the GPUs nvidia-smi reported; with none reported, the configured count."""
    assert judge(verdict(gpus=4)).gpus == 4
    assert judge(verdict(gpus=0)).gpus == 2
    assert judge(None).gpus == 2


def test_a_node_without_gpus_is_left_out_with_the_reason() -> None:
    """A `gpus: 0` node never yields 0 slots: it is out of every launch, and says why."""
    for v in (verdict(gpus=0), verdict(gpus=1), None):
        found = gating.judge(worker(gpus=0), v, None, now=NOW, stale_after_s=STALE_AFTER_S)
        assert not found.usable
        assert "no GPUs (`gpus: 0`): a GPU launch has nothing to run there" in found.reasons


def test_address_is_the_configured_ip_or_this_hosts_name() -> None:
    """SSH workers are reached at their `ip`; the local node at this machine's hostname."""
    assert gating.address_of(worker(ip="192.168.1.10"), "control") == "192.168.1.10"
    local = worker(ip="localhost", transport="local")
    assert gating.address_of(local, "control") == "control"


def test_gates_follow_config_order_and_ignore_unconfigured_nodes() -> None:
    """One gate per configured node, in config order; a verdict for a removed node is ignored."""
    nodes = [worker("b", "10.0.0.2"), worker("a", "10.0.0.1"), worker("c", "10.0.0.3")]
    verdicts = {n: verdict(n) for n in ("a", "b", "c", "removed")}
    found = gating.gates(nodes, verdicts, {}, now=NOW, stale_after_s=STALE_AFTER_S)
    assert [g.name for g in found] == ["b", "a", "c"]


def test_preflight_checks_what_is_unchecked_or_too_old_and_not_cordoned() -> None:
    """Due now: no verdict, or one older than the maximum age; never a cordoned node."""
    nodes = [worker(n) for n in ("fresh", "edge", "old", "never", "cordoned", "cordoned-old")]
    verdicts = {
        "fresh": verdict("fresh", age_s=10),
        # Exactly the maximum age is still young enough to reuse.
        "edge": verdict("edge", age_s=60),
        "old": verdict("old", age_s=61),
        "cordoned-old": verdict("cordoned-old", age_s=600),
        "removed": verdict("removed", age_s=600),
    }
    cordoned = {"cordoned": Cordon("cordoned", "manual", "RMA", SINCE, user="bob")}
    cordoned["cordoned-old"] = Cordon("cordoned-old", "ugro", "flapping", SINCE)
    due = gating.due_for_check(nodes, verdicts, cordoned, now=NOW, max_age_s=60)
    assert [n.name for n in due] == ["old", "never"]


def test_preflight_checks_nothing_when_every_verdict_is_young() -> None:
    """A maximum age longer than every verdict's: preflight reuses them all."""
    nodes = [worker("b"), worker("a")]
    verdicts = {"a": verdict("a", age_s=30), "b": verdict("b", age_s=5)}
    assert gating.due_for_check(nodes, verdicts, {}, now=NOW, max_age_s=60) == []
    assert gating.due_for_check(nodes, verdicts, {}, now=NOW, max_age_s=0) == nodes


def gate(name: str, score: float | None = 100, *, usable: bool = True, gpus: int = 2) -> Gate:
    """A gate with an address derived from its name."""
    reasons = () if usable else ("unhealthy",)
    status = NodeStatus.HEALTHY if usable else NodeStatus.UNHEALTHY
    return Gate(name, f"addr-{name}", gpus, score, status, 1.0, reasons)


def test_select_best_score_first_ties_in_config_order() -> None:
    """The N best usable nodes: higher score first, equal scores in config order."""
    found = [gate("a", 90), gate("b", 100), gate("c", 90), gate("d", 100, usable=False)]
    assert [g.name for g in gating.select(found, 3) or []] == ["b", "a", "c"]
    assert [g.name for g in gating.select(found, 1) or []] == ["b"]


def test_select_refuses_when_too_few_are_usable() -> None:
    """Fewer usable nodes than needed: no selection at all."""
    assert gating.select([gate("a"), gate("b", usable=False)], 2) is None


def test_launch_environment() -> None:
    """UGRO_HOSTS in selection order, the count, the first node as master, port 29500."""
    selected = [gate("b"), gate("a")]
    master = gating.rendezvous(selected, None, {"addr-a", "addr-b"})
    assert gating.launch_env(selected, master) == {
        "UGRO_HOSTS": "addr-b,addr-a",
        "UGRO_NNODES": "2",
        "UGRO_MASTER_ADDR": "addr-b",
        "UGRO_MASTER_PORT": "29500",
    }


@pytest.mark.parametrize(
    ("addr", "expected"),
    [
        ("addr-a", ("addr-a", 29400)),  # a selected worker: used
        ("10.0.0.1", ("10.0.0.1", 29400)),  # not a worker (the control node): used
        ("addr-c", ("addr-b", 29400)),  # a worker left out: the first selected instead
    ],
)
def test_configured_master_wins_unless_it_is_a_worker_left_out(
    addr: str, expected: tuple[str, int]
) -> None:
    """`master` from cluster.yaml is the rendezvous, unless it names a worker not selected."""
    master = Master(addr=addr, port=29400)
    selected = [gate("b"), gate("a")]
    assert gating.rendezvous(selected, master, {"addr-a", "addr-b", "addr-c"}) == expected


@pytest.mark.parametrize(
    ("fmt", "text"),
    [
        ("plain", "addr-a\naddr-b"),
        ("deepspeed", "addr-a slots=2\naddr-b slots=4"),
        ("mpi", "addr-a slots=2\naddr-b slots=4"),
        (
            "torchrun",
            "--nnodes=2 --nproc-per-node=2 --rdzv-backend=c10d --rdzv-endpoint=addr-a:29500",
        ),
    ],
)
def test_host_list_formats(fmt: gating.Format, text: str) -> None:
    """Each launcher gets its own host list format."""
    assert gating.render([gate("a"), gate("b", gpus=4)], fmt)[0] == text


def test_torchrun_with_differing_gpu_counts_uses_the_smallest_and_says_so() -> None:
    """Uneven nodes: --nproc-per-node is the smallest count, with a note for stderr."""
    text, notes = gating.render([gate("a", gpus=8), gate("b", gpus=4)], "torchrun")
    assert text.endswith("--rdzv-endpoint=addr-a:29500")
    assert "--nproc-per-node=4 " in text
    assert notes == [
        (
            "GPU counts differ (a 8, b 4); --nproc-per-node=4, the smallest, "
            "so every node runs the same number of processes"
        )
    ]
    assert gating.render([gate("a"), gate("b")], "torchrun")[1] == []


def test_json_format() -> None:
    """JSON: name, address, gpus, score and status of each usable node."""
    text, _ = gating.render([gate("a", 97.5)], "json")
    assert json.loads(text) == [
        {"name": "a", "address": "addr-a", "gpus": 2, "score": 97.5, "status": "healthy"}
    ]


def test_ipv6_rendezvous_endpoint_is_bracketed() -> None:
    """An IPv6 master address is written [addr]:port."""
    assert gating.endpoint("fd00::1") == "[fd00::1]:29500"
    assert gating.endpoint("10.0.0.1") == "10.0.0.1:29500"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("1h", 3600), ("90", 90), ("0", 0), ("1.5m", 90), (" 2d ", 172800)],
)
def test_spans(text: str, seconds: float) -> None:
    """--max-age takes 30s, 5m, 1h and plain seconds."""
    assert spans.span_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "5x", "-1", "nan", "inf", "m5"])
def test_bad_spans(text: str) -> None:
    """Anything else is refused with what was expected."""
    with pytest.raises(ValueError, match="expected a span"):
        spans.span_seconds(text)
