"""The `throttle` check: no GPU is slowed down by heat or by its power supply.

nvidia-smi's `clocks_throttle_reasons.active` (called `clocks_event_reasons.active` since
R535, which still accepts the old name) is a bitmask of NVML's
`nvmlClocksThrottleReasons`. Some reasons are how a healthy GPU behaves (idle, the power cap
under full load, an applications-clocks setting); others mean it runs slower than it should.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ugro.checks.gpuquery import GpuHealthCheck, GpuRow
from ugro.model import Evaluation, Status

if TYPE_CHECKING:
    from ugro.config import Worker

FIELD = "clocks_throttle_reasons.active"

# nvml.h, nvmlClocksThrottleReason*: the bits that mean trouble, and what to do.
TROUBLE = {
    0x08: ("HW slowdown", "the GPU is too hot or its power supply asserts a brake"),
    0x20: ("SW thermal slowdown", "the GPU is above its maximum operating temperature"),
    0x40: ("HW thermal slowdown", "the GPU is too hot; check fans and airflow"),
    0x80: ("HW power brake", "the system power supply asserts the brake; check PSUs and cables"),
}
# The bits a healthy GPU shows: named in the message, never a warning.
NORMAL = {
    0x01: "idle",
    0x02: "applications clocks setting",
    0x04: "SW power cap",
    0x10: "sync boost",
    0x100: "display clocks setting",
}


class Throttle(GpuHealthCheck):
    """WARN naming each GPU slowed by heat or a power brake; OK for idle and the power cap."""

    name = "throttle"
    weight = 5
    default_timeout_s = 10

    def judge(self, rows: tuple[GpuRow, ...], node: Worker) -> Evaluation:
        """Decode each GPU's bitmask; the troubling bits make the check warn."""
        del node
        slowed: list[str] = []
        normal: list[str] = []
        unread: list[str] = []
        unsupported = 0
        for row in rows:
            if row.unsupported(FIELD):
                unsupported += 1
                continue
            if row.failed(FIELD) is not None:
                unread.append(f"GPU {row.index} ({row.failed(FIELD)})")
                continue
            mask = row.bits(FIELD) or 0
            bad = [(what, hint) for bit, (what, hint) in TROUBLE.items() if mask & bit]
            if bad:
                reasons = ", ".join(what for what, _ in bad)
                slowed.append(f"{row.label}: {reasons} ({bad[0][1]})")
            normal.extend(what for bit, what in NORMAL.items() if mask & bit)
        if slowed:
            return Evaluation(
                Status.WARN,
                "clocks slowed: " + "; ".join(slowed),
                value=len(slowed),
                unit="gpus",
            )
        if unread:
            return Evaluation(
                Status.UNKNOWN, f"cannot read throttle reasons of {', '.join(unread)}"
            )
        if unsupported == len(rows):
            return Evaluation(Status.OK, "throttle reasons not supported on these GPUs")
        shown = f" (only {', '.join(sorted(set(normal)))})" if normal else ""
        return Evaluation(Status.OK, f"no GPU slowed by heat or power{shown}", value=0, unit="gpus")


CHECK = Throttle()
