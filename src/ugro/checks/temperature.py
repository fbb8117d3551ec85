"""The `temperature` check: every GPU is below the node's warning and critical temperatures.

Thresholds are `gpu_temp_warning_c` (WARN) and `gpu_temp_critical_c` (FAIL). A GPU near its
slowdown temperature throttles, and one at the critical line risks a thermal shutdown in the
middle of a run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ugro.checks.gpuquery import GpuHealthCheck, GpuRow
from ugro.model import Evaluation, Status

if TYPE_CHECKING:
    from ugro.config import Worker

FIELD = "temperature.gpu"


class Temperature(GpuHealthCheck):
    """WARN at `gpu_temp_warning_c`, FAIL at `gpu_temp_critical_c`; value = the hottest GPU."""

    name = "temperature"
    weight = 5
    default_timeout_s = 10

    def judge(self, rows: tuple[GpuRow, ...], node: Worker) -> Evaluation:
        """Compare each GPU with the node's thresholds; name every GPU over a line."""
        warning, critical = node.gpu_temp_warning_c, node.gpu_temp_critical_c
        hot, warm, unread = [], [], []
        readings = []
        for row in rows:
            celsius = row.number(FIELD)
            if celsius is None:
                unread.append(f"GPU {row.index} ({row.failed(FIELD) or row.text(FIELD)})")
                continue
            readings.append(celsius)
            if celsius >= critical:
                hot.append(f"{row.label} at {celsius:g} °C")
            elif celsius >= warning:
                warm.append(f"{row.label} at {celsius:g} °C")
        hottest = max(readings) if readings else None
        if hot:
            return Evaluation(
                Status.FAIL,
                f"{', '.join(hot)} (critical ≥ {critical:g} °C): the GPU will slow down or shut "
                "off; check fans, airflow and the room, and drain the node until it cools",
                value=hottest,
                unit="celsius",
            )
        if unread:
            return Evaluation(
                Status.UNKNOWN,
                f"no temperature reading from {', '.join(unread)}",
                value=hottest,
                unit="celsius",
            )
        if warm:
            return Evaluation(
                Status.WARN,
                f"{', '.join(warm)} (warning ≥ {warning:g} °C): check fans and airflow",
                value=hottest,
                unit="celsius",
            )
        return Evaluation(
            Status.OK,
            f"hottest GPU at {hottest:g} °C (warning at {warning:g} °C)",
            value=hottest,
            unit="celsius",
        )


CHECK = Temperature()
