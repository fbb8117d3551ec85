"""The throttle check: the reasons bitmask decoded per GPU."""

from __future__ import annotations

import pytest

from gpuhealth import node, smi
from ugro.checks import throttle
from ugro.model import Status


@pytest.mark.parametrize(
    ("fixture", "status", "phrase"),
    [
        ("health-2x4090.csv", Status.OK, "no GPU slowed by heat or power (only idle)"),
        ("health-8xh100.csv", Status.OK, "(only SW power cap)"),
        (
            "health-2x4090-throttle-thermal.csv",
            Status.WARN,
            "GPU 0 (00000000:01:00.0): SW thermal slowdown, HW thermal slowdown",
        ),
        (
            "health-8xh100-power-brake.csv",
            Status.WARN,
            "GPU 6 (00000000:BA:00.0): HW slowdown, HW power brake",
        ),
        ("health-2x4090-critical.csv", Status.WARN, "HW thermal slowdown"),
        ("health-2x4090-unknown-error.csv", Status.UNKNOWN, "GPU 0 (Unknown Error)"),
    ],
)
def test_verdicts(fixture: str, status: Status, phrase: str) -> None:
    """Healthy reasons pass; heat and power brakes warn naming the GPU and reason."""
    result = throttle.CHECK.evaluate(smi(fixture), node(gpus=8))
    assert result.status is status, result.message
    assert phrase in result.message


def test_bits_follow_nvml() -> None:
    """The troubling bits are NVML's HW slowdown, SW/HW thermal and HW power brake."""
    assert set(throttle.TROUBLE) == {0x08, 0x20, 0x40, 0x80}
    assert throttle.NORMAL[0x01] == "idle"
    assert throttle.NORMAL[0x04] == "SW power cap"
