"""The remap check: remapped rows (Ampere on) and retired pages (before), fed fixtures."""

from __future__ import annotations

import pytest

from gpuhealth import DRIVER_GONE, node, smi
from ugro.checks import remap
from ugro.model import CommandResult, Status


@pytest.mark.parametrize(
    ("rows", "shared", "status", "phrase"),
    [
        ("remap-8xa100.csv", "health-8xa100.csv", Status.OK, "(GPU 6 4 rows remapped)"),
        ("remap-8xh100.csv", "health-8xh100.csv", Status.OK, "no memory repair pending or failed"),
        (
            "remap-8xa100-pending.csv",
            "health-8xa100.csv",
            Status.FAIL,
            "GPU 3 (00000000:4E:00.0): a row remap waits for a GPU reset",
        ),
        (
            "remap-8xa100-failure.csv",
            "health-8xa100.csv",
            Status.FAIL,
            "GPU 3 (00000000:4E:00.0): row remapping failed",
        ),
        (
            "remap-2x4090-na.csv",
            "health-2x4090.csv",
            Status.OK,
            "row remapping and page retirement not supported on NVIDIA GeForce RTX 4090",
        ),
        ("remap-4xv100-na.csv", "health-4xv100.csv", Status.OK, "no memory repair pending"),
        (
            "remap-4xv100-na.csv",
            "health-2x1080ti-not-supported.csv",
            Status.OK,
            "not supported on NVIDIA GeForce GTX 1080 Ti",
        ),
        (
            "remap-4xv100-na.csv",
            "health-4xv100-retire-pending.csv",
            Status.FAIL,
            "GPU 2 (00000000:88:00.0): pages wait for retirement at the next reboot",
        ),
    ],
)
def test_verdicts(rows: str, shared: str, status: Status, phrase: str) -> None:
    """Pending and failed repairs fail naming the GPU; unsupported GPUs pass with a note."""
    result = remap.CHECK.evaluate(smi(rows), smi(shared), node(gpus=8))
    assert result.status is status, result.message
    assert phrase in result.message
    assert result.versions.get("driver")


def test_failure_asks_for_replacement_and_pending_for_a_reset() -> None:
    """What to do differs: a failed remap needs a new GPU, a pending one a reset."""
    failed = remap.CHECK.evaluate(
        smi("remap-8xa100-failure.csv"), smi("health-8xa100.csv"), node(gpus=8)
    )
    assert "replace the GPU" in failed.message
    assert failed.value == 512
    pending = remap.CHECK.evaluate(
        smi("remap-8xa100-pending.csv"), smi("health-8xa100.csv"), node(gpus=8)
    )
    assert "reset the GPU (`nvidia-smi -r`) or reboot" in pending.message


@pytest.mark.parametrize(
    "answer",
    [
        CommandResult(3, "This operation is not supported on GPU 00000000:01:00.0.\n"),
        CommandResult(0, ""),
        CommandResult(0, "Remapped rows query is not supported on this GPU\n"),
    ],
)
def test_unsupported_query_passes(answer: CommandResult) -> None:
    """Exit 3, no line or a 'not supported' line all mean the GPU has no row remapper."""
    result = remap.CHECK.evaluate(answer, smi("health-2x4090.csv"), node())
    assert result.status is Status.OK
    assert "not supported on NVIDIA GeForce RTX 4090" in result.message


def test_broken_driver_is_unknown() -> None:
    """Without a driver the remap state is unknown; the gpu check reports the failure."""
    result = remap.CHECK.evaluate(DRIVER_GONE, DRIVER_GONE, node())
    assert result.status is Status.UNKNOWN
    assert "exit 9" in result.message
    only_rows = remap.CHECK.evaluate(DRIVER_GONE, smi("health-2x4090.csv"), node())
    assert only_rows.status is Status.UNKNOWN
    assert only_rows.message.startswith("cannot read remapped rows")


def test_garbage_raises() -> None:
    """A remapped-rows answer that is not the query's CSV is a parse error."""
    with pytest.raises(ValueError, match="remapped-row fields"):
        remap.CHECK.evaluate(smi("health-2x4090.csv"), smi("health-2x4090.csv"), node())


def test_command_is_constant() -> None:
    """The remapped-rows query takes nothing from the config."""
    assert remap.COMMAND == (
        "nvidia-smi --query-remapped-rows=gpu_uuid,remapped_rows.correctable,"
        "remapped_rows.uncorrectable,remapped_rows.pending,remapped_rows.failure "
        "--format=csv,noheader,nounits"
    )
