"""Launch gating: which nodes a training job may use now, and why the others may not.

Pure: verdicts, cordons, the config's workers and the time in; out come one `Gate` per node,
the host lists launchers read, and the nodes `ugro preflight` must check before it decides.
`ugro hosts` and `ugro preflight` are thin wrappers around it.

A node is usable when all of these hold:

- its status is healthy or degraded (degraded is a warning, such as a warm GPU or a busy
  host: the node can train);
- its latest check agrees: a node whose last check failed, while the daemon waits to confirm
  the failure, is held out, and so is one shown down whose recovery is not yet confirmed;
- its verdict is fresh (not stale);
- it is not cordoned;
- its score is at least the minimum asked for;
- it has GPUs (a `gpus: 0` node, such as a control node, is never a launch's host).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ugro.model import GOOD_STATUSES, NodeStatus, NodeVerdict, Status
from ugro.verdict.rows import Row, age

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping, Sequence
    from datetime import datetime

    from ugro.config import Master, Worker
    from ugro.store.cordons import Cordon

# torchrun's and DeepSpeed's default rendezvous / master port.
MASTER_PORT = 29500

Format = Literal["plain", "torchrun", "deepspeed", "mpi", "json"]
FORMATS: tuple[Format, ...] = ("plain", "torchrun", "deepspeed", "mpi", "json")


@dataclass(frozen=True, slots=True)
class Gate:
    """One node as a launcher sees it: where it is, what it has, and why it is out, if it is."""

    name: str
    address: str
    gpus: int
    # None for a node never checked.
    score: float | None
    # As shown now: stale when too old, unknown when never checked.
    status: NodeStatus
    age_s: float | None
    # Why the node is out; empty when it is usable.
    reasons: tuple[str, ...] = ()

    @property
    def usable(self) -> bool:
        """Whether a job may use the node."""
        return not self.reasons

    def to_json(self) -> dict[str, Any]:
        """The node in `--json` output."""
        return {
            "name": self.name,
            "address": self.address,
            "gpus": self.gpus,
            "score": self.score,
            "status": self.status.value,
            "usable": self.usable,
            "reasons": list(self.reasons),
            "age_s": None if self.age_s is None else round(self.age_s, 1),
        }


def address_of(node: Worker, hostname: str) -> str:
    """Where a launcher reaches `node`: its `ip`, or this machine's hostname for the local node."""
    return hostname if node.transport == "local" else node.ip


def judge(  # noqa: PLR0913 - the keyword-only inputs of one pure decision
    node: Worker,
    verdict: NodeVerdict | None,
    cordon: Cordon | None,
    *,
    now: datetime,
    stale_after_s: float,
    interval_s: float | None = None,
    min_score: float = 0,
    hostname: str = "localhost",
) -> Gate:
    """Decide whether `node` is usable at `now` (module docstring), with every reason it is not."""
    reasons: list[str] = []
    if verdict is None:
        status, score, age, gpus = NodeStatus.UNKNOWN, None, None, node.gpus
        reasons.append("unknown: never checked; run `ugro check`")
    else:
        row = Row.of(verdict, now, stale_after_s, interval_s)
        status, score, age = row.status, verdict.health_score, row.age_s
        gpus = len(verdict.gpus) if verdict.gpus else node.gpus
        reasons.extend(_health_reasons(verdict, row, min_score))
    if cordon is not None:
        reasons.append(f"cordoned {cordon.describe()}")
    if node.gpus == 0:
        # Launchers take the GPU count as the node's slots: 0 would mean
        # `--nproc-per-node=0` or `slots=0`, a job that starts nothing there. The config
        # decides: a GPU a `gpus: 0` node happens to report is not the operator's to launch on.
        reasons.append("no GPUs (`gpus: 0`): a GPU launch has nothing to run there")
    return Gate(node.name, address_of(node, hostname), gpus, score, status, age, tuple(reasons))


def _health_reasons(verdict: NodeVerdict, row: Row, min_score: float) -> list[str]:
    reasons: list[str] = []
    if row.status is NodeStatus.STALE:
        reasons.append(
            f"stale: last checked {age(row.age_s)} ago ({verdict.status.value} then); "
            "no fresh verdict"
        )
        return reasons
    observed = verdict.tracking.observed if verdict.tracking else verdict.status
    if verdict.status not in GOOD_STATUSES:
        if observed in GOOD_STATUSES:
            reasons.append(
                f"{verdict.status.value}: its last check passed, but the recovery is not "
                "confirmed yet"
            )
        else:
            reasons.append(_problems(verdict.status, verdict))
    elif observed not in GOOD_STATUSES:
        reasons.append(
            "last check found it " + _problems(observed, verdict) + " (not confirmed yet)"
        )
    if verdict.health_score < min_score:
        reasons.append(f"score {verdict.health_score:.0f} below the minimum {min_score:g}")
    return reasons


def _problems(status: NodeStatus, verdict: NodeVerdict) -> str:
    """'unhealthy: gpu: …; disk: …', the failing checks' own messages."""
    failing = [c for c in verdict.checks if c.status is Status.FAIL] or list(verdict.failing())
    detail = "; ".join(f"{c.name}: {c.message}" for c in failing)
    return f"{status.value}: {detail}" if detail else status.value


def gates(  # noqa: PLR0913 - the keyword-only inputs of one pure decision
    nodes: Sequence[Worker],
    verdicts: Mapping[str, NodeVerdict],
    cordons: Mapping[str, Cordon],
    *,
    now: datetime,
    stale_after_s: float,
    interval_s: float | None = None,
    min_score: float = 0,
    hostname: str = "localhost",
) -> list[Gate]:
    """Every configured node's gate, in config order; verdicts of other nodes are ignored."""
    return [
        judge(
            node,
            verdicts.get(node.name),
            cordons.get(node.name),
            now=now,
            stale_after_s=stale_after_s,
            interval_s=interval_s,
            min_score=min_score,
            hostname=hostname,
        )
        for node in nodes
    ]


def due_for_check(
    nodes: Sequence[Worker],
    verdicts: Mapping[str, NodeVerdict],
    cordoned: Collection[str],
    *,
    now: datetime,
    max_age_s: float,
) -> list[Worker]:
    """The nodes `ugro preflight` must check now, in config order.

    Every node that is not cordoned and has no verdict younger than `max_age_s`. A cordoned
    node is out whatever a check finds, so checking it would only cost the launch time.
    """
    return [
        node
        for node in nodes
        if node.name not in cordoned
        and (
            node.name not in verdicts
            or (now - verdicts[node.name].last_check).total_seconds() > max_age_s
        )
    ]


def select(candidates: Sequence[Gate], count: int) -> list[Gate] | None:
    """The `count` best usable nodes, best score first, ties in config order; None if too few."""
    usable = [g for g in candidates if g.usable]
    if len(usable) < count:
        return None
    ranked = sorted(enumerate(usable), key=lambda item: (-(item[1].score or 0), item[0]))
    return [g for _, g in ranked[:count]]


def rendezvous(
    selected: Sequence[Gate], master: Master | None, workers: Collection[str]
) -> tuple[str, int]:
    """Where the job's rendezvous listens.

    The configured `master`, unless it names a worker (by address) that is not among
    `selected`; otherwise the first selected node.
    """
    port = master.port if master else MASTER_PORT
    if master and (master.addr not in workers or master.addr in {g.address for g in selected}):
        return master.addr, port
    return selected[0].address, port


def launch_env(selected: Sequence[Gate], master: tuple[str, int]) -> dict[str, str]:
    """The variables `ugro preflight -- CMD` gives CMD; `master` from `rendezvous`."""
    return {
        "UGRO_HOSTS": ",".join(g.address for g in selected),
        "UGRO_NNODES": str(len(selected)),
        "UGRO_MASTER_ADDR": master[0],
        "UGRO_MASTER_PORT": str(master[1]),
    }


def render(
    usable: Sequence[Gate], fmt: Format, master: tuple[str, int] | None = None
) -> tuple[str, list[str]]:
    """The host list in `fmt` for stdout, and notes for stderr; `usable` must not be empty."""
    notes: list[str] = []
    if fmt == "plain":
        text = "\n".join(g.address for g in usable)
    elif fmt in ("deepspeed", "mpi"):
        # DeepSpeed's hostfile and OpenMPI's share the `host slots=N` line.
        text = "\n".join(f"{g.address} slots={g.gpus}" for g in usable)
    elif fmt == "torchrun":
        counts = {g.gpus for g in usable}
        per_node = min(counts)
        if len(counts) > 1:
            listed = ", ".join(f"{g.name} {g.gpus}" for g in usable)
            notes.append(
                f"GPU counts differ ({listed}); --nproc-per-node={per_node}, the smallest, "
                "so every node runs the same number of processes"
            )
        text = (
            f"--nnodes={len(usable)} --nproc-per-node={per_node} --rdzv-backend=c10d "
            f"--rdzv-endpoint={endpoint(*(master or (usable[0].address, MASTER_PORT)))}"
        )
    else:
        text = json.dumps(
            [
                {
                    "name": g.name,
                    "address": g.address,
                    "gpus": g.gpus,
                    "score": g.score,
                    "status": g.status.value,
                }
                for g in usable
            ],
            indent=2,
            allow_nan=False,
        )
    return text, notes


def endpoint(address: str, port: int = MASTER_PORT) -> str:
    """`host:port`, with an IPv6 address in brackets."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
