"""Node-local mode (`ugro check --local`): the machine checks itself, as Slurm's health check.

For fleets past what one control node's SSH fan-out carries, every node runs ugro itself,
started by slurmd as its `HealthCheckProgram` (the role LBNL NHC plays): the checks run
through the local transport, the verdict is recorded in the node's own state file, and

- an unhealthy node is drained through `scontrol` with a Reason starting ``ugro:``; a node
  a person drained keeps that person's Reason (`ugro.recovery.slurm.Slurm.drain`);
- a node that passes again is resumed only when the drain is ugro's own (`Slurm.resume`);
- the verdict is written as node_exporter's textfile (`ugro.prom`, atomically), so the
  fleet's Prometheus has every node and `ugro health --from-prometheus` shows them all.

Slurm is told only when it started the program (SLURMD_NODENAME is set) or the config says
`scheduler: slurm`: by hand on a machine without Slurm, the check just checks.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ugro.checks import registry
from ugro.config import validators
from ugro.errors import ConfigError, SchedulerError, StateError
from ugro.model import BAD_STATUSES, GOOD_STATUSES, Status, worst_exit_code

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime
    from pathlib import Path

    from ugro.config import Config, Worker
    from ugro.model import NodeVerdict
    from ugro.store.state import StateStore

# What slurmd sets in its health check program's environment: the node's name in Slurm.
NODENAME_VAR = "SLURMD_NODENAME"


@dataclass
class Outcome:
    """What a node-local check found, did and could not do."""

    verdict: NodeVerdict
    # What was done with Slurm, for people ("drained: ...", "resumed ugro's drain").
    actions: list[str] = field(default_factory=list)
    # What went wrong besides the checks (the state or textfile not written, scontrol).
    warnings: list[str] = field(default_factory=list)
    # Whether Slurm could not be told what the verdict asks for.
    scheduler_failed: bool = False

    @property
    def exit_code(self) -> int:
        """For slurmd, which takes any code but 0 as a failed health check and logs it.

        0 when the node may take jobs (healthy or degraded), 2 when it is unhealthy, 3 when
        no verdict could be reached or Slurm could not be told.
        """
        status = self.verdict.status
        code = 0 if status in GOOD_STATUSES else status.exit_code
        return worst_exit_code([code, 3]) if self.scheduler_failed else code


def this_node(cfg: Config, environ: Mapping[str, str]) -> tuple[Worker, str]:
    """This machine as a worker checked through the local transport, and its Slurm name.

    Its name is $SLURMD_NODENAME, else the short hostname. With a cluster.yaml, the worker
    of that name (or `slurm_node`) gives its settings; without one, the embedded default's.
    Checks that only mean something from afar (latency) are left out.
    """
    name = environ.get(NODENAME_VAR) or socket.gethostname().split(".")[0]
    if not validators.valid_name(name):
        raise ConfigError(
            f"this node's name {name!r} (${NODENAME_VAR}, else the hostname) is not a "
            "node name: letters, digits, '.', '_' or '-'"
        )
    if cfg.source is None:
        worker = cfg.nodes[0].model_copy(update={"name": name})
    else:
        found = [n for n in cfg.nodes if name in (n.name, n.slurm_node)]
        if not found:
            raise ConfigError(
                f"{cfg.source}: no worker named {name!r} (or with `slurm_node: {name}`): "
                "node-local mode checks this machine as the worker of its name"
            )
        worker = found[0]
    checks = registry()
    local = [c for c in worker.checks if checks[c].local]
    return worker.model_copy(update={"transport": "local", "checks": local}), name


def check(
    cfg: Config,
    node: Worker,
    slurm_name: str,
    *,
    tell_slurm: bool,
    textfile: Path | None,
) -> Outcome:
    """Check `node` here, record it, drain or resume it, and write the textfile."""
    from ugro import paths, sweep
    from ugro.store.state import StateStore
    from ugro.verdict import hysteresis

    store = StateStore(paths.state_file())
    previous = _stored_check(store, node.name)
    [checked] = sweep.run_checks([node], previous)
    outcome = Outcome(checked)
    saved = True
    try:
        state = store.update([checked], keep=[node.name], fold=hysteresis.recorder(cfg.monitor))
        outcome.verdict = state.nodes.get(node.name, checked)
    except StateError as exc:
        saved = False
        outcome.warnings.append(f"the verdict was not saved: {exc}")
    if tell_slurm:
        _tell_slurm(cfg, outcome, node.name, slurm_name)
    if textfile is not None:
        if saved:
            _write_textfile(outcome, paths.state_file(), textfile)
        else:
            outcome.warnings.append(f"{textfile} not rewritten: it would show the old verdict")
    return outcome


def _stored_check(store: StateStore, name: str) -> dict[str, datetime]:
    """The node's last check time, for checks that read what happened since (Xids)."""
    try:
        state = store.read()
    except StateError:
        return {}
    verdict = state.nodes.get(name) if state else None
    return {name: verdict.last_check} if verdict else {}


def reason(verdict: NodeVerdict) -> str:
    """Why the node is drained: its failing checks' messages, for `sinfo -R`."""
    failing = [c for c in verdict.checks if c.status is Status.FAIL] or list(verdict.failing())
    return "; ".join(f"{c.name}: {c.message}" for c in failing) or verdict.status.value


def _tell_slurm(cfg: Config, outcome: Outcome, node: str, slurm_name: str) -> None:
    """Drain a bad node, resume a good one that ugro drained; a refusal is a warning."""
    from ugro.recovery.slurm import Slurm

    slurm = Slurm(
        scontrol=cfg.slurm.scontrol,
        timeout_s=cfg.slurm.timeout_s,
        node_names={node: slurm_name},
    )
    status = outcome.verdict.status
    try:
        if status in BAD_STATUSES:
            why = reason(outcome.verdict)
            before = slurm.show(node)
            slurm.drain(node, why)
            if before.drained and not before.by_ugro:
                outcome.actions.append(
                    f"left {slurm_name} drained by its Reason {before.reason!r} (not ugro's)"
                )
            else:
                outcome.actions.append(f"drained {slurm_name}: {why}")
        elif status in GOOD_STATUSES:
            before = slurm.show(node)
            if before.by_ugro:
                slurm.resume(node)
                outcome.actions.append(f"resumed {slurm_name} (ugro had drained it)")
            elif before.drained:
                outcome.actions.append(
                    f"left {slurm_name} drained: its Reason {before.reason!r} is not ugro's"
                )
        else:
            outcome.actions.append(f"left {slurm_name} as Slurm has it: no verdict")
    except SchedulerError as exc:
        outcome.scheduler_failed = True
        outcome.warnings.append(f"Slurm not told: {exc}")


def _write_textfile(outcome: Outcome, state_path: Path, target: Path) -> None:
    """The node's metrics at `target`, replaced atomically (a temp file, then a rename)."""
    from prometheus_client import write_to_textfile

    from ugro import exporter

    try:
        write_to_textfile(str(target), exporter.registry(state_path))
    except OSError as exc:
        outcome.warnings.append(f"{target}: cannot write: {exc.strerror or exc}")
