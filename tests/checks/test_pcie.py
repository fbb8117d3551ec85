"""The pcie check: link width always counts, link generation only while the GPU is busy."""

from __future__ import annotations

import pytest

from conftest import fixture_text
from gpuhealth import node, smi
from ugro.checks import pcie
from ugro.model import CommandResult, Status


@pytest.mark.parametrize(
    ("fixture", "status", "phrase", "value"),
    [
        # GPU 1 idles at P8 with its link down at Gen1 of Gen4: power saving, not a fault.
        ("health-2x4090.csv", Status.OK, "2 GPU links at full width (x16 Gen4)", 16),
        ("health-8xh100.csv", Status.OK, "8 GPU links at full width (x16 Gen5)", 16),
        (
            "health-2x1080ti-not-supported.csv",
            Status.OK,
            "2 GPU links at full width (x16 Gen3)",
            16,
        ),
        ("health-2x4090-pcie-x8.csv", Status.WARN, "GPU 1 (00000000:41:00.0) link x8 of x16", 8),
        (
            "health-8xh100-gen3-busy.csv",
            Status.WARN,
            "GPU 2 (00000000:3A:00.0) link Gen3 of Gen5 while busy (97 % busy, P0)",
            16,
        ),
    ],
)
def test_verdicts(fixture: str, status: Status, phrase: str, value: float) -> None:
    """Full links pass, a narrow link warns, a slow link warns only under load."""
    result = pcie.CHECK.evaluate(smi(fixture), node(gpus=8))
    assert result.status is status, result.message
    assert phrase in result.message
    assert (result.value, result.unit) == (value, "lanes")


def test_idle_gpu_in_p0_may_downshift() -> None:
    """An idle GPU (utilisation 0) at a lower generation passes, even in P0."""
    text = fixture_text("nvidia-smi", "health-8xh100-gen3-busy.csv").replace(", 97, ", ", 0, ")
    result = pcie.CHECK.evaluate(CommandResult(0, text), node(gpus=8))
    assert result.status is Status.OK
