"""The `remap` check: no GPU waits for a reset to repair its memory, or has run out of repairs.

Ampere and newer data-center GPUs repair memory by remapping rows (NVIDIA, "A100 GPU Memory
Error Management"): a row marked for remapping takes effect at the next GPU reset
(`pending`), and a row that could not be remapped (`failure`) means the GPU needs
replacement. Older GPUs retire pages instead (`retired_pages.pending` in the shared query):
pages pending retirement are retired at the next reboot.

GeForce cards and GPUs older than Ampere have no row remapper: nvidia-smi prints [N/A] (or
nothing, or exits 3 "not supported") for the query, which passes as "not supported".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ugro.checks import Answering, cut_short
from ugro.checks.gpu import UUID_CHARS, cause, failure
from ugro.checks.gpuquery import COMMAND as SHARED_QUERY
from ugro.checks.gpuquery import (
    GpuHealth,
    GpuRow,
    driver_versions,
    flag,
    hung,
    models,
    parse,
    unread,
)
from ugro.checks.readings import COUNT, MAX_GPUS, name, whole
from ugro.errors import InvalidOutput
from ugro.model import CommandResult, Evaluation, Status

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ugro.checks import Context
    from ugro.config import Worker

REMAP_FIELDS = (
    "gpu_uuid",
    "remapped_rows.correctable",
    "remapped_rows.uncorrectable",
    "remapped_rows.pending",
    "remapped_rows.failure",
)
COMMAND = f"nvidia-smi --query-remapped-rows={','.join(REMAP_FIELDS)} --format=csv,noheader,nounits"
# nvidia-smi's exit code for "not supported on this GPU".
NOT_SUPPORTED_EXIT = 3


def parse_remapped(stdout: str) -> dict[str, tuple[str, ...]] | None:
    """Remapped-row fields by GPU UUID; None when nvidia-smi says the GPUs have no remapper."""
    rows: dict[str, tuple[str, ...]] = {}
    for line in stdout.splitlines():
        if not line.strip():
            continue
        if "not supported" in line.lower():
            return None
        values = tuple(v.strip() for v in line.split(","))
        if len(values) != len(REMAP_FIELDS):
            raise ValueError(
                f"expected {len(REMAP_FIELDS)} comma-separated remapped-row fields, got "
                f"{line.strip()[:120]!r}"
            )
        if len(rows) == MAX_GPUS:
            raise InvalidOutput(f"nvidia-smi lists more than {MAX_GPUS} GPUs, more than any node")
        rows[name(values[0], "gpu_uuid", UUID_CHARS)] = values
    flags = []
    for values in rows.values():
        # Every field is read, whatever the verdict will need: a nan count is no GPU to believe.
        _rows_remapped(values)
        flags.append(_flags(values))
    if all(pending is None and failure is None for pending, failure in flags):
        return None
    return rows


def _rows_remapped(values: tuple[str, ...]) -> float | None:
    """How many rows a GPU's remapper used (correctable and uncorrectable); None if not said."""
    counts = [
        whole(c, f"{field} of {values[0]}", COUNT)
        for field, c in zip(REMAP_FIELDS[1:3], values[1:3], strict=True)
        if not unread(c)
    ]
    return float(sum(counts)) if counts else None


def _flags(values: tuple[str, ...]) -> tuple[bool | None, bool | None]:
    """A GPU's remapped_rows.pending and remapped_rows.failure."""
    return flag(values[3], "remapped_rows.pending"), flag(values[4], "remapped_rows.failure")


class Remap(GpuHealth, Answering):
    """FAIL when a row remap or page retirement is pending, or a remap failed."""

    name = "remap"
    weight = 5
    default_timeout_s = 10

    def asks(self, node: Worker, context: Context) -> tuple[str, ...]:  # noqa: ARG002
        """The remapped rows, and the shared query (retired pages)."""
        return (COMMAND, SHARED_QUERY)

    def answer(
        self,
        results: Sequence[CommandResult | None],
        node: Worker,
        context: Context,  # noqa: ARG002 - its commands need no context
    ) -> Evaluation:
        """Evaluate both answers; a hung nvidia-smi is UNKNOWN here (see `hung`)."""
        remapped, shared = results
        if remapped is None or shared is None:
            return hung(self.timeout(node))
        return self.evaluate(remapped, shared, node)

    def evaluate(self, remapped: CommandResult, shared: CommandResult, node: Worker) -> Evaluation:
        """Judge both answers; pure, so tests feed it captured output."""
        del node
        short = cut_short(shared, "nvidia-smi") or cut_short(remapped, "nvidia-smi")
        if short is not None:
            return short
        if shared.exit_status != 0:
            return Evaluation(
                Status.UNKNOWN,
                f"not read: {cause(shared)} (see the gpu check)",
            )
        gpus = parse(shared.stdout)
        if not gpus:
            return Evaluation(Status.UNKNOWN, "cannot read memory repair state: no GPU listed")
        versions = driver_versions(gpus)
        if remapped.exit_status == NOT_SUPPORTED_EXIT:
            remap_rows = None
        elif remapped.exit_status != 0:
            return Evaluation(
                Status.UNKNOWN, f"cannot read remapped rows: {failure(remapped)}", versions=versions
            )
        else:
            remap_rows = parse_remapped(remapped.stdout)
        return _judge(gpus, remap_rows, versions)


def _judge(  # noqa: C901 - one pass over the GPUs collects every finding
    gpus: tuple[GpuRow, ...],
    remap_rows: dict[str, tuple[str, ...]] | None,
    versions: dict[str, str],
) -> Evaluation:
    failed, pending, notes = [], [], []
    remapped_total = 0.0
    retirement = False
    labels = {g.uuid: (g.label, f"GPU {g.index}") for g in gpus}
    for uuid, row in (remap_rows or {}).items():
        label, short = labels.get(uuid, (uuid, uuid))
        is_pending, is_failure = _flags(row)
        if is_failure:
            failed.append(f"{label}: row remapping failed")
        if is_pending:
            pending.append(f"{label}: a row remap waits for a GPU reset")
        count = _rows_remapped(row) or 0
        remapped_total += count
        if count:
            notes.append(f"{short} {count:g} rows remapped")
    for gpu in gpus:
        if not gpu.unsupported("retired_pages.pending"):
            retirement = True
            if gpu.flag("retired_pages.pending"):
                pending.append(f"{gpu.label}: pages wait for retirement at the next reboot")
            dbe = gpu.number("retired_pages.dbe")
            if dbe:
                notes.append(f"GPU {gpu.index} {dbe:g} pages retired (double-bit)")
    if failed:
        return Evaluation(
            Status.FAIL,
            "; ".join(failed + pending)
            + ": the GPU has no spare rows left; drain the node and replace the GPU",
            value=remapped_total,
            unit="rows",
            versions=versions,
        )
    if pending:
        return Evaluation(
            Status.FAIL,
            "; ".join(pending)
            + ": drain the node, then reset the GPU (`nvidia-smi -r`) or reboot to apply it",
            value=remapped_total,
            unit="rows",
            versions=versions,
        )
    if remap_rows is None and not retirement:
        return Evaluation(
            Status.OK,
            f"row remapping and page retirement not supported on {models(gpus)}",
            versions=versions,
        )
    message = "no memory repair pending or failed"
    if notes:
        message += f" ({', '.join(notes)})"
    return Evaluation(Status.OK, message, value=remapped_total, unit="rows", versions=versions)


CHECK = Remap()
