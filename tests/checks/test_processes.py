"""The processes check: GPU memory holders against the node's process table."""

from __future__ import annotations

import pytest

from conftest import fixture_text
from gpuhealth import DRIVER_GONE, node, smi
from ugro.checks import gpuquery, processes
from ugro.model import CommandResult, Status


def ps(name: str) -> CommandResult:
    """`ps -e -o pid=,stat=,etimes=,comm=` with a captured output."""
    return CommandResult(0, fixture_text("ps", name))


def test_live_holders_are_summarised() -> None:
    """Two live training processes pass with who holds how much."""
    result = processes.CHECK.evaluate(smi("apps-training.csv"), ps("training.txt"), node())
    assert result.status is Status.OK
    assert result.message == (
        "2 processes hold 41.6 GiB: python (pid 48213, 20.8 GiB), python (pid 48214, 20.8 GiB)"
    )
    assert (result.value, result.unit) == (42634, "MiB")


@pytest.mark.parametrize(
    ("table", "phrase"),
    [
        (
            "zombie.txt",
            "python (pid 48214, 20.8 GiB) on GPU-a81f09c2-6e4d-4b57-8c1a-0f2e9d7b3c64 is a zombie",
        ),
        (
            "gone.txt",
            "(pid 48213, 20.8 GiB) on GPU-5d4ae6b5-1c2b-7f0a-9b3e-3a5e7a1c2d10 is not in the node",
        ),
    ],
)
def test_dead_holders_warn(table: str, phrase: str) -> None:
    """Memory held by a zombie or by a pid the node lacks warns, naming pid and GPU."""
    result = processes.CHECK.evaluate(smi("apps-training.csv"), ps(table), node())
    assert result.status is Status.WARN
    assert phrase in result.message
    assert "nvidia-smi -r" in result.message


def test_gpus_are_named_by_index_when_the_shared_query_answered() -> None:
    """With the shared query's rows, a holder's GPU is 'GPU 1', not its UUID."""
    gpus = gpuquery.parse(fixture_text("nvidia-smi", "health-2x4090.csv"))
    result = processes.CHECK.evaluate(smi("apps-training.csv"), ps("zombie.txt"), node(), gpus=gpus)
    assert result.status is Status.WARN
    assert result.message.startswith("python (pid 48214, 20.8 GiB) on GPU 1 is a zombie")


def test_uninterruptible_sleep_is_noted_not_warned() -> None:
    """One sample in D state may be a checkpoint write: shown, not a warning."""
    result = processes.CHECK.evaluate(smi("apps-training.csv"), ps("dstate.txt"), node())
    assert result.status is Status.OK
    assert "pid 48213 in uninterruptible sleep (D)" in result.message


def test_no_holders_pass() -> None:
    """No compute process: nothing held."""
    result = processes.CHECK.evaluate(CommandResult(0, ""), ps("training.txt"), node())
    assert result.status is Status.OK
    assert result.message == "no process holds GPU memory"


def test_not_available_memory_is_not_a_number() -> None:
    """[N/A] memory (containers, MIG) counts the holder without a size."""
    apps = CommandResult(0, "GPU-5d4ae6b5-1c2b-7f0a-9b3e-3a5e7a1c2d10, 48213, python, [N/A]\n")
    result = processes.CHECK.evaluate(apps, ps("training.txt"), node())
    assert result.status is Status.OK
    assert "python (pid 48213)" in result.message


def test_failures_are_unknown() -> None:
    """A broken driver or a failing ps leaves the check UNKNOWN, saying why."""
    broken = processes.CHECK.evaluate(DRIVER_GONE, ps("training.txt"), node())
    assert broken.status is Status.UNKNOWN
    assert "exit 9" in broken.message
    no_ps = processes.CHECK.evaluate(
        smi("apps-training.csv"), CommandResult(127, "", "sh: 1: ps: not found"), node()
    )
    assert no_ps.status is Status.UNKNOWN
    assert "ps: not found" in no_ps.message


@pytest.mark.parametrize("text", ["garbage", "GPU-1, x, python, 3\n", "a,b\n"])
def test_garbage_raises(text: str) -> None:
    """An answer that is not the compute-apps CSV is a parse error."""
    with pytest.raises(ValueError, match="gpu_uuid, pid"):
        processes.CHECK.evaluate(CommandResult(0, text), ps("training.txt"), node())


def test_command_is_the_shared_string() -> None:
    """Byte for byte the deep probe's query, so one node check runs it once."""
    assert processes.COMMAND == (
        "nvidia-smi --query-compute-apps=gpu_uuid,pid,process_name,used_memory "
        "--format=csv,noheader,nounits"
    )
