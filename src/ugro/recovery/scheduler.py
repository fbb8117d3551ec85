"""The workload manager that ugro tells when it cordons or uncordons a node.

With `scheduler: none` (the default) a cordon lives only in ugro's cordons file, and launch
gating (`ugro hosts`, `ugro preflight`) is what keeps jobs off the node. With
`scheduler: slurm` a cordon is also a Slurm drain (`ugro.slurm`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ugro.config import Config


class Scheduler(Protocol):
    """Keeps new jobs off a node and lets them back; both may raise SchedulerError."""

    name: str

    def drain(self, node: str, reason: str) -> None:
        """Stop new jobs landing on `node`; `reason` is shown to the scheduler's users."""

    def resume(self, node: str) -> bool:
        """Undo a drain that ugro placed; False (and nothing done) when the drain is not ugro's."""


class NoScheduler:
    """No workload manager: cordons are ugro's alone."""

    name = "none"

    def drain(self, node: str, reason: str) -> None:
        """Nothing to tell."""

    def resume(self, node: str) -> bool:  # noqa: ARG002 - the protocol's signature
        """Nothing to undo."""
        return True


def for_config(cfg: Config) -> Scheduler:
    """The scheduler cluster.yaml names: `NoScheduler`, or `Slurm` with its settings.

    Slurm gets `slurm.scontrol`, `slurm.timeout_s` and each worker's `slurm_node` (its
    `name` when unset).
    """
    if cfg.scheduler == "slurm":
        from ugro.recovery.slurm import Slurm

        return Slurm(
            scontrol=cfg.slurm.scontrol,
            timeout_s=cfg.slurm.timeout_s,
            node_names={n.name: n.slurm_node or n.name for n in cfg.nodes},
        )
    return NoScheduler()
