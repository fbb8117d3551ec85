"""The `pcie` check: every GPU's PCIe link runs at the width and speed its slot allows.

A link narrower than its maximum (x8 of x16) means a bad riser, a dirty or half-seated card
or a wrong slot, and halves host-to-GPU bandwidth: always worth a warning. A lower
generation is normal while the GPU idles: NVIDIA documents that the current link
generation "may be reduced when the GPU is not in use" (nvidia-smi --help-query-gpu), so
the generation only counts while the GPU is busy: utilisation above zero. The performance
state is no guide (data-center GPUs often idle in P0).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ugro.checks.gpuquery import GpuHealthCheck, GpuRow
from ugro.model import Evaluation, Status

if TYPE_CHECKING:
    from ugro.config import Worker

GEN, GEN_MAX = "pcie.link.gen.current", "pcie.link.gen.max"
WIDTH, WIDTH_MAX = "pcie.link.width.current", "pcie.link.width.max"


def _busy(row: GpuRow) -> bool:
    """Whether the GPU is working now, so its link should be at full speed."""
    return bool(row.number("utilization.gpu"))


class Pcie(GpuHealthCheck):
    """WARN on a link narrower than its maximum, or slower than its maximum while busy."""

    name = "pcie"
    weight = 5
    default_timeout_s = 10

    def judge(self, rows: tuple[GpuRow, ...], node: Worker) -> Evaluation:
        """Compare each GPU's current link with its maximum; value = the narrowest link."""
        del node
        degraded, unread, widths, links = [], [], [], set()
        for row in rows:
            values = {f: row.number(f) for f in (GEN, GEN_MAX, WIDTH, WIDTH_MAX)}
            if all(row.unsupported(f) for f in values):
                continue
            if any(v is None for v in values.values()):
                unread.append(f"GPU {row.index}")
                continue
            gen, gen_max = values[GEN] or 0, values[GEN_MAX] or 0
            width, width_max = values[WIDTH] or 0, values[WIDTH_MAX] or 0
            widths.append(width)
            links.add(f"x{width:g} Gen{gen_max:g}")
            if width < width_max:
                degraded.append(
                    f"{row.label} link x{width:g} of x{width_max:g}: reseat the card, check "
                    "the riser and the slot"
                )
            elif gen < gen_max and _busy(row):
                load = f"{row.number('utilization.gpu'):g} % busy, {row.text('pstate')}"
                degraded.append(
                    f"{row.label} link Gen{gen:g} of Gen{gen_max:g} while busy ({load}): check "
                    "the riser, the slot and the BIOS PCIe settings"
                )
        narrowest = min(widths) if widths else None
        if degraded:
            return Evaluation(Status.WARN, "; ".join(degraded), value=narrowest, unit="lanes")
        if unread:
            return Evaluation(
                Status.UNKNOWN, f"no PCIe link reading from {', '.join(unread)}", unit="lanes"
            )
        if not widths:
            return Evaluation(Status.OK, "PCIe link state not reported by these GPUs")
        count = f"{len(widths)} GPU link{'s' if len(widths) != 1 else ''}"
        return Evaluation(
            Status.OK,
            f"{count} at full width ({', '.join(sorted(links))})",
            value=narrowest,
            unit="lanes",
        )


CHECK = Pcie()
