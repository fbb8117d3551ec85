"""The `ecc` check: no GPU has uncorrected ECC errors in its memory.

Volatile counts cover the time since the driver loaded; aggregate ones the GPU's lifetime
(kept in its infoROM). An uncorrected error since the driver loaded means data on that GPU
may be corrupt now: the node cannot train until the GPU is reset. Aggregate errors alone are
history, worth a warning. GPUs without ECC (GeForce cards) pass with a note.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ugro.checks.gpuquery import GpuHealthCheck, GpuRow, models
from ugro.model import Evaluation, Status

if TYPE_CHECKING:
    from ugro.config import Worker

VOLATILE = "ecc.errors.uncorrected.volatile.total"
AGGREGATE = "ecc.errors.uncorrected.aggregate.total"
CORRECTED = "ecc.errors.corrected.volatile.total"


class Ecc(GpuHealthCheck):
    """FAIL on uncorrected ECC errors since the driver loaded; WARN on lifetime ones."""

    name = "ecc"
    weight = 5
    default_timeout_s = 10

    def judge(  # noqa: C901 - one pass sorts every GPU into its verdict
        self, rows: tuple[GpuRow, ...], node: Worker
    ) -> Evaluation:
        """Sort the GPUs by what their ECC counters say; the worst decides."""
        del node
        failing, history, unreadable, without, corrected = [], [], [], [], []
        volatile_total = 0.0
        for row in rows:
            mode = row.text("ecc.mode.current")
            if row.unsupported("ecc.mode.current") or mode == "Disabled":
                without.append(row)
                continue
            volatile, aggregate = row.number(VOLATILE), row.number(AGGREGATE)
            if volatile is None:
                why = row.failed(VOLATILE) or "not reported"
                unreadable.append(f"{row.label}: {why}")
                continue
            volatile_total += volatile
            if volatile > 0:
                failing.append(f"{row.label}: {volatile:g} uncorrected since the driver loaded")
            elif aggregate:
                history.append(f"{row.label}: {aggregate:g} uncorrected in its lifetime")
            fixed = row.number(CORRECTED)
            if fixed:
                corrected.append(f"GPU {row.index} {fixed:g}")
        if failing:
            return Evaluation(
                Status.FAIL,
                "uncorrected ECC errors: "
                + "; ".join(failing)
                + ". Data on that GPU may be corrupt: drain the node, reset the GPU "
                "(`nvidia-smi -r`) or reboot, then watch the counts; if they return, "
                "replace the GPU",
                value=volatile_total,
                unit="errors",
            )
        if unreadable:
            return Evaluation(Status.UNKNOWN, "cannot read ECC counts: " + "; ".join(unreadable))
        if history:
            return Evaluation(
                Status.WARN,
                "; ".join(history)
                + " (none since the driver loaded): the GPU has a history of memory errors; "
                "watch `nvidia-smi -q -d ECC,ROW_REMAPPER`",
                value=0,
                unit="errors",
            )
        if len(without) == len(rows):
            return Evaluation(
                Status.OK,
                f"ECC not supported or not enabled on {models(rows)}: nothing to check",
            )
        checked = len(rows) - len(without)
        message = f"no uncorrected ECC errors on {checked} GPU{'s' if checked != 1 else ''}"
        if corrected:
            message += f"; corrected since the driver loaded: {', '.join(corrected)}"
        if without:
            message += f"; ECC off on GPU {', '.join(str(r.index) for r in without)}"
        return Evaluation(Status.OK, message, value=0, unit="errors")


CHECK = Ecc()
