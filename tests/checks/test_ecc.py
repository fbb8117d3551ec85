"""The ecc check's verdicts, fed captured nvidia-smi health queries."""

from __future__ import annotations

import pytest

from gpuhealth import node, smi
from ugro.checks import ecc
from ugro.model import Status


@pytest.mark.parametrize(
    ("fixture", "status", "phrase", "value"),
    [
        ("health-8xh100.csv", Status.OK, "no uncorrected ECC errors on 8 GPUs", 0),
        ("health-8xa100.csv", Status.OK, "no uncorrected ECC errors on 8 GPUs", 0),
        (
            "health-2x4090.csv",
            Status.OK,
            "ECC not supported or not enabled on NVIDIA GeForce RTX 4090",
            None,
        ),
        (
            "health-2x1080ti-not-supported.csv",
            Status.OK,
            "ECC not supported or not enabled on NVIDIA GeForce GTX 1080 Ti",
            None,
        ),
        (
            "health-8xa100-ecc-volatile.csv",
            Status.FAIL,
            "GPU 3 (00000000:4E:00.0): 2 uncorrected since the driver loaded",
            2,
        ),
        (
            "health-2x4090-ecc-uncorrected.csv",
            Status.FAIL,
            "GPU 1 (00000000:41:00.0): 3 uncorrected since the driver loaded",
            3,
        ),
        (
            "health-8xa100-ecc-aggregate.csv",
            Status.WARN,
            "GPU 5 (00000000:90:00.0): 1 uncorrected in its lifetime",
            0,
        ),
        (
            "health-2x4090-unknown-error.csv",
            Status.UNKNOWN,
            "GPU 0 (00000000:01:00.0): Unknown Error",
            None,
        ),
        (
            "health-4xv100-retire-pending.csv",
            Status.WARN,
            "GPU 2 (00000000:88:00.0): 1 uncorrected",
            0,
        ),
    ],
)
def test_verdicts(fixture: str, status: Status, phrase: str, value: float | None) -> None:
    """Each GPU state gets its status, a message naming the GPU, and the volatile count."""
    result = ecc.CHECK.evaluate(smi(fixture), node(gpus=8))
    assert result.status is status, result.message
    assert phrase in result.message
    assert result.value == value


def test_failure_says_what_to_do() -> None:
    """An uncorrected error tells the operator to drain and reset."""
    result = ecc.CHECK.evaluate(smi("health-8xa100-ecc-volatile.csv"), node(gpus=8))
    assert "drain the node, reset the GPU (`nvidia-smi -r`) or reboot" in result.message


def test_corrected_counts_are_reported() -> None:
    """Corrected errors since the driver loaded are shown, not judged."""
    result = ecc.CHECK.evaluate(smi("health-2x4090-ecc-aggregate.csv"), node())
    assert result.status is Status.WARN
    clean = ecc.CHECK.evaluate(smi("health-8xa100-ecc-aggregate.csv"), node(gpus=8))
    assert "GPU 5 (00000000:90:00.0)" in clean.message
