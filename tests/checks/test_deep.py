"""The deep probe: its parser fed captured reports, and the probe itself run on the fake torch."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

import python38
from conftest import STUBS, fixture_text
from ugro.checks import deep
from ugro.config import Worker
from ugro.model import CommandResult, Status

if TYPE_CHECKING:
    from pathlib import Path

FAKETORCH = STUBS / "faketorch"
UUID0 = "GPU-5d4ae6b5-1c2b-7f0a-9b3e-3a5e7a1c2d10"
UUID1 = "GPU-a81f09c2-6e4d-4b57-8c1a-0f2e9d7b3c64"


def node(**settings: object) -> Worker:
    """A worker expecting two GPUs, with the deep probe asked for."""
    return Worker.model_validate(
        {"name": "n1", "ip": "127.0.0.1", "gpus": 2, "deep": True, **settings}
    )


def report(name: str, exit_status: int = 0) -> CommandResult:
    """The probe's result with a captured output."""
    return CommandResult(exit_status, fixture_text("deep", name))


@pytest.mark.parametrize(
    ("fixture", "status", "phrase"),
    [
        (
            "healthy-2x4090.txt",
            Status.OK,
            "2 GPUs: fp32 0.0221 ms, bf16 0.0121 ms per 1024×1024 matmul (slowest); verified",
        ),
        ("healthy-8xh100.txt", Status.OK, "8 GPUs: fp32 0.0241 ms, bf16 0.0098 ms"),
        ("conda-banner.txt", Status.OK, "1 GPU: fp32 0.0213 ms, bf16 0.0118 ms per 1024×1024"),
        ("no-bf16-v100.txt", Status.OK, "2 GPUs: fp32 0.0631 ms per 1024×1024 matmul (slowest)"),
        ("no-bf16-v100.txt", Status.OK, "; verified; no bf16 support"),
        (
            "wrong-bf16.txt",
            Status.FAIL,
            (
                "GPU 2: bf16 matmul wrong by 3.1e+02: the GPU computes incorrectly; "
                "drain it and run the vendor's diagnostics"
            ),
        ),
        ("wrong-fp32.txt", Status.FAIL, "GPU 0: fp32 matmul wrong by 4.0e+00"),
        ("nan.txt", Status.FAIL, "GPU 0: fp32 matmul gave nan (not a number)"),
        (
            "cuda-error.txt",
            Status.FAIL,
            "GPU 1: RuntimeError: CUDA error: uncorrectable ECC error encountered: drain the node",
        ),
        ("kernel-error.txt", Status.FAIL, "illegal memory access was encountered (bf16 matmul)"),
        ("some-busy.txt", Status.OK, "1 GPU: fp32 0.0213 ms"),
        ("some-busy.txt", Status.OK, "GPU 1 skipped, busy: pid 48214"),
        ("all-busy.txt", Status.OK, "not run: every GPU is in use (GPU 0 skipped, busy: pid 48213"),
        ("no-uuid-busy.txt", Status.OK, "does not report GPU UUIDs"),
        ("no-cuda.txt", Status.FAIL, "torch cannot use CUDA"),
        ("no-torch.txt", Status.FAIL, "import torch failed: ModuleNotFoundError"),
        ("no-devices.txt", Status.FAIL, "torch sees no CUDA device"),
        ("truncated.txt", Status.UNKNOWN, "no deep probe report (exit 0)"),
        ("garbage.txt", Status.UNKNOWN, "no deep probe report (exit 0): "),
        ("empty.txt", Status.UNKNOWN, "no deep probe report (exit 0)"),
        ("not-an-object.txt", Status.UNKNOWN, "no deep probe report"),
    ],
)
def test_reports_map_to_verdicts(fixture: str, status: Status, phrase: str) -> None:
    """Each captured report gives its status and a message naming the cause and the GPU."""
    result = deep.evaluate(report(fixture), node())
    assert result.status is status, result.message
    assert phrase in result.message


def test_healthy_value_is_the_slowest_fp32_time() -> None:
    """The measured value is the slowest GPU's fp32 matmul time, in ms."""
    result = deep.evaluate(report("healthy-2x4090.txt"), node())
    assert (result.value, result.unit) == (0.022, "ms")


def test_small_bf16_rounding_is_not_a_fault() -> None:
    """bf16 differs from the float64 reference by rounding; within tolerance it passes."""
    result = deep.evaluate(report("healthy-8xh100.txt"), node())
    assert result.status is Status.OK


def test_missing_interpreter_fails() -> None:
    """A python that is not on the node fails and points at `python:`."""
    result = deep.evaluate(CommandResult(127, "", "sh: 1: python3: not found"), node())
    assert result.status is Status.FAIL
    assert "`python:`" in result.message


@pytest.mark.parametrize(
    ("stdout", "exit_status", "expected"),
    [
        ("", 0, ()),
        (
            fixture_text("nvidia-smi", "apps-training.csv"),
            0,
            (
                deep.Busy(UUID0, "48213", "/opt/conda/envs/train/bin/python"),
                deep.Busy(UUID1, "48214", "/opt/conda/envs/train/bin/python"),
            ),
        ),
    ],
)
def test_compute_apps_are_parsed(
    stdout: str, exit_status: int, expected: tuple[deep.Busy, ...]
) -> None:
    """nvidia-smi's compute-apps CSV gives the busy GPUs' UUIDs and processes."""
    assert deep.parse_apps(CommandResult(exit_status, stdout)) == expected


@pytest.mark.parametrize(
    ("result", "phrase"),
    [
        (
            CommandResult(
                9, "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
            ),
            "--query-compute-apps failed (exit 9): NVIDIA-SMI has failed",
        ),
        (CommandResult(0, "garbage without commas\n"), "unreadably: 'garbage without commas'"),
        (CommandResult(None, ""), "failed (exit None)"),
    ],
)
def test_unknown_busy_gpus_mean_no_probe(result: CommandResult, phrase: str) -> None:
    """When it is unknown which GPUs a job uses, the probe does not run: the reason says why."""
    why = deep.parse_apps(result)
    assert isinstance(why, str)
    assert why.startswith("not run: ")
    assert phrase in why


def test_command_quotes_every_word() -> None:
    """The python prefix keeps its words; the busy list is one quoted argument."""
    busy = (deep.Busy(UUID0, "1", "python; rm -rf /"),)
    command = deep.CHECK.command(node(python="conda run -n train python"), busy)
    argv = shlex.split(command)
    assert argv[:5] == ["conda", "run", "-n", "train", "python"]
    assert argv[5:7] == ["-c", deep.PROBE]
    assert json.loads(argv[7]) == [[UUID0, "1", "python; rm -rf /"]]


def test_applies_only_when_asked_for() -> None:
    """The deep probe runs only on nodes with `deep: true` (or `ugro check --deep`)."""
    assert deep.CHECK.applies(node())
    assert not deep.CHECK.applies(node(deep=False))


def test_probe_is_python_38() -> None:
    """Node pythons are old: the probe uses no grammar, builtin or method newer than 3.8."""
    assert python38.problems(deep.PROBE) == []


def run_probe(tmp_path: Path, mode: str, busy: list[list[str]] | None = None) -> CommandResult:
    """Run the real probe under the fake torch in `mode`, as the python3 stub would."""
    (tmp_path / "torch_mode").write_text(mode, encoding="utf-8")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(FAKETORCH),
        "UGRO_STUB_DIR": str(tmp_path),
    }
    argv = [sys.executable, "-S", "-c", deep.PROBE, json.dumps(busy or [])]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False, timeout=60)
    return CommandResult(done.returncode, done.stdout, done.stderr)


@pytest.mark.parametrize(
    ("mode", "busy", "status", "phrase"),
    [
        ("healthy", None, Status.OK, "2 GPUs: fp32 "),
        ("no-bf16", None, Status.OK, "verified; no bf16 support"),
        ("wrong-result", None, Status.FAIL, "GPU 1: bf16 matmul wrong by 3.1e+02"),
        ("cuda-error", None, Status.FAIL, "GPU 1: RuntimeError: CUDA error: uncorrectable ECC"),
        ("nocuda", None, Status.FAIL, "torch cannot use CUDA"),
        ("broken", None, Status.FAIL, "import torch failed: OSError: libcudart.so.12"),
        ("healthy", [[UUID1, "48214", "python"]], Status.OK, "GPU 1 skipped, busy: pid 48214"),
        (
            "healthy",
            [[UUID0, "48213", "python"], [UUID1, "48214", "python"]],
            Status.OK,
            "not run: every GPU is in use",
        ),
        ("no-uuid", [[UUID1, "48214", "python"]], Status.OK, "does not report GPU UUIDs"),
        ("no-uuid", None, Status.OK, "2 GPUs: fp32 "),
        ("healthy", [["MIG-1b2c", "7", "python"]], Status.OK, "MIG instance"),
    ],
)
def test_probe_on_fake_torch(
    tmp_path: Path, mode: str, busy: list[list[str]] | None, status: Status, phrase: str
) -> None:
    """The probe itself, on a fake GPU that is fine, lacks bf16, computes wrong or fails."""
    result = run_probe(tmp_path, mode, busy)
    assert result.exit_status == 0, result.stderr
    evaluation = deep.evaluate(result, node())
    assert evaluation.status is status, evaluation.message
    assert phrase in evaluation.message


def test_probe_skips_busy_gpus_before_touching_them(tmp_path: Path) -> None:
    """A busy GPU gets no matmul: the report has its skip reason and no timings."""
    result = run_probe(tmp_path, "wrong-result", [[UUID1, "48214", "python"]])
    line = result.stdout.strip().removeprefix(deep.MARKER)
    gpus = json.loads(line)["gpus"]
    assert gpus[1] == {
        "index": 1,
        "name": "NVIDIA GeForce RTX 4090",
        "uuid": UUID1,
        "skipped": "busy: pid 48214 (python)",
    }
    assert deep.evaluate(result, node()).status is Status.OK


def test_probe_never_raises_on_a_bad_argument(tmp_path: Path) -> None:
    """Even a mangled busy list gives a report, not a traceback."""
    (tmp_path / "torch_mode").write_text("healthy", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-S", "-c", deep.PROBE, "{not json"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(FAKETORCH), "UGRO_STUB_DIR": str(tmp_path)},
        check=True,
    )
    assert done.stdout.startswith(deep.MARKER)
    assert "bad argument" in deep.evaluate(CommandResult(0, done.stdout), node()).message
