"""The gpu check's parser and verdicts, fed captured nvidia-smi output."""

from __future__ import annotations

import pytest

from conftest import fixture_text
from ugro.checks import gpu
from ugro.config import Worker
from ugro.model import CommandResult, Status


def node(**settings: object) -> Worker:
    """A worker expecting two RTX 4090s unless told otherwise."""
    return Worker.model_validate(
        {"name": "n1", "ip": "127.0.0.1", "gpus": 2, "gpu": "RTX 4090", **settings}
    )


def smi(name: str, exit_status: int = 0) -> CommandResult:
    """nvidia-smi's result with a captured output."""
    return CommandResult(exit_status, fixture_text("nvidia-smi", name))


def test_healthy_pair_is_ok_with_metrics() -> None:
    """Two 4090s on a node that expects two are ok, with every reading parsed."""
    result = gpu.CHECK.evaluate(smi("healthy-2x4090.csv"), node())
    assert result.status is Status.OK
    assert result.message == "2 × NVIDIA GeForce RTX 4090"
    assert (result.value, result.unit) == (2, "gpus")
    first = result.gpus[0]
    assert first.uuid == "GPU-5d4ae6b5-1c2b-7f0a-9b3e-3a5e7a1c2d10"
    assert (
        first.temperature_c,
        first.memory_used_mib,
        first.memory_total_mib,
        first.power_limit_w,
    ) == (
        41,
        1024,
        24564,
        450,
    )


def test_missing_gpu_fails_naming_the_count() -> None:
    """One GPU where two are expected fails and says how many were found."""
    result = gpu.CHECK.evaluate(smi("one-gpu-4090.csv"), node())
    assert result.status is Status.FAIL
    assert result.message.startswith("found 1 GPU (NVIDIA GeForce RTX 4090), expected 2")


def test_other_model_warns() -> None:
    """A model other than the configured one passes with a warning."""
    result = gpu.CHECK.evaluate(smi("other-model-2xA6000.csv"), node())
    assert result.status is Status.WARN
    assert "'RTX 4090'" in result.message
    assert "NVIDIA RTX A6000" in result.message


def test_unconfigured_model_is_not_compared() -> None:
    """Without `gpu:` in the config any model is fine."""
    result = gpu.CHECK.evaluate(smi("other-model-2xA6000.csv"), node(gpu=None))
    assert result.status is Status.OK


def test_not_available_readings_are_none() -> None:
    """`[N/A]` power readings become None, not zero and not a parse error."""
    result = gpu.CHECK.evaluate(smi("na-power-2x4090.csv"), node())
    assert result.status is Status.OK
    assert result.gpus[0].power_draw_w is None
    assert result.gpus[0].temperature_c == 41


@pytest.mark.parametrize(
    ("exit_status", "phrase"),
    [
        (9, "driver is not loaded (exit 9)"),
        (12, "NVML library is missing (exit 12)"),
        (15, "fallen off the bus (exit 15)"),
        (18, "version mismatch (exit 18)"),
        (127, "nvidia-smi not found"),
        (42, "nvidia-smi failed (exit 42)"),
    ],
)
def test_exit_codes_map_to_causes(exit_status: int, phrase: str) -> None:
    """Each documented exit code fails with its cause and what nvidia-smi said."""
    said = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
    result = gpu.CHECK.evaluate(CommandResult(exit_status, said), node())
    assert result.status is Status.FAIL
    assert phrase in result.message
    if exit_status != 127:
        assert said in result.message


def test_killed_by_signal_fails() -> None:
    """An nvidia-smi killed by a signal fails and names the signal."""
    result = gpu.CHECK.evaluate(CommandResult(None, exit_signal="KILL"), node())
    assert result.status is Status.FAIL
    assert "signal KILL" in result.message


def test_garbage_raises_so_the_monitor_reports_unknown() -> None:
    """Output that is not the query's CSV raises instead of passing silently."""
    with pytest.raises(ValueError, match="comma-separated"):
        gpu.CHECK.evaluate(smi("garbage.txt"), node())


def test_truncated_line_raises() -> None:
    """A CSV line cut short is a parse error, not a GPU with missing fields."""
    text = fixture_text("nvidia-smi", "healthy-2x4090.csv")[:150]
    with pytest.raises(ValueError, match="comma-separated"):
        gpu.CHECK.evaluate(CommandResult(0, text), node())


def test_empty_output_counts_zero_gpus() -> None:
    """nvidia-smi answering with no GPU lines fails the count."""
    result = gpu.CHECK.evaluate(CommandResult(0, ""), node())
    assert result.status is Status.FAIL
    assert result.message.startswith("found 0 GPUs, expected 2")


def test_command_is_one_csv_query() -> None:
    """The check runs exactly one nvidia-smi CSV query without units or header."""
    assert gpu.CHECK.command(node()) == (
        "nvidia-smi --query-gpu=index,uuid,name,temperature.gpu,utilization.gpu,"
        "memory.used,memory.total,power.draw,power.limit --format=csv,noheader,nounits"
    )
