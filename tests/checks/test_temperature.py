"""The temperature check's verdicts against the node's thresholds."""

from __future__ import annotations

import pytest

from gpuhealth import node, smi
from ugro.checks import temperature
from ugro.model import Status


@pytest.mark.parametrize(
    ("fixture", "status", "phrase", "value"),
    [
        ("health-2x4090.csv", Status.OK, "hottest GPU at 41 °C (warning at 85 °C)", 41),
        ("health-8xh100.csv", Status.OK, "hottest GPU at 64 °C", 64),
        (
            "health-2x4090-hot.csv",
            Status.WARN,
            "GPU 0 (00000000:01:00.0) at 87 °C (warning ≥ 85 °C)",
            87,
        ),
        (
            "health-2x4090-critical.csv",
            Status.FAIL,
            "GPU 0 (00000000:01:00.0) at 94 °C (critical ≥ 92 °C)",
            94,
        ),
        (
            "health-2x4090-temp-na.csv",
            Status.UNKNOWN,
            "no temperature reading from GPU 1 ([N/A])",
            41,
        ),
    ],
)
def test_verdicts(fixture: str, status: Status, phrase: str, value: float) -> None:
    """Below, at warning, at critical, and without a reading."""
    result = temperature.CHECK.evaluate(smi(fixture), node())
    assert result.status is status, result.message
    assert phrase in result.message
    assert (result.value, result.unit) == (value, "celsius")


def test_thresholds_come_from_the_node() -> None:
    """A node with lower thresholds warns and fails earlier."""
    strict = node(gpu_temp_warning_c=35, gpu_temp_critical_c=40)
    result = temperature.CHECK.evaluate(smi("health-2x4090.csv"), strict)
    assert result.status is Status.FAIL
    assert "GPU 0 (00000000:01:00.0) at 41 °C (critical ≥ 40 °C)" in result.message
    warm = temperature.CHECK.evaluate(smi("health-2x4090.csv"), node(gpu_temp_warning_c=40))
    assert warm.status is Status.WARN
