"""The torch check's command and verdicts, fed captured probe output."""

from __future__ import annotations

import shlex
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

import python38
from conftest import STUBS, fixture_text
from ugro.checks import torch
from ugro.config import Worker
from ugro.model import CommandResult, Status

if TYPE_CHECKING:
    from pathlib import Path

FAKETORCH = STUBS / "faketorch"


def node(**settings: object) -> Worker:
    """A worker expecting two GPUs."""
    return Worker.model_validate({"name": "n1", "ip": "127.0.0.1", "gpus": 2, **settings})


def probe(name: str, exit_status: int = 0) -> CommandResult:
    """The probe's result with a captured output."""
    return CommandResult(exit_status, fixture_text("torch", name))


@pytest.mark.parametrize(
    ("fixture", "status", "phrase"),
    [
        ("healthy.txt", Status.OK, "torch 2.5.1+cu124, CUDA 12.4, 2 devices"),
        ("conda-banner.txt", Status.OK, "torch 2.4.0+cu121, CUDA 12.1, 8 devices"),
        ("cpu-build.txt", Status.FAIL, "CPU-only build"),
        ("driver-too-old.txt", Status.FAIL, "cannot use CUDA"),
        ("missing.txt", Status.FAIL, "torch is not installed for python3"),
        ("broken-libs.txt", Status.FAIL, "libcudart.so.12"),
        ("one-device.txt", Status.FAIL, "torch sees 1 CUDA device, expected 2"),
    ],
)
def test_reports_map_to_verdicts(fixture: str, status: Status, phrase: str) -> None:
    """Each captured probe report gives its status and a message naming the cause."""
    result = torch.CHECK.evaluate(probe(fixture), node())
    assert result.status is status
    assert phrase in result.message


def test_missing_interpreter_names_the_setting() -> None:
    """A python that is not on the node fails and points at `python:`."""
    result = torch.CHECK.evaluate(CommandResult(127, "", "sh: 1: python3: not found"), node())
    assert result.status is Status.FAIL
    assert "`python:`" in result.message


def test_no_report_is_unknown() -> None:
    """An interpreter that printed no report leaves the status unknown, with what it said."""
    result = torch.CHECK.evaluate(CommandResult(1, "", "Segmentation fault"), node())
    assert result.status is Status.UNKNOWN
    assert "Segmentation fault" in result.message


def test_truncated_report_is_unknown() -> None:
    """A report cut short is no report: unknown, never a pass."""
    result = torch.CHECK.evaluate(probe("truncated.txt"), node())
    assert result.status is Status.UNKNOWN
    assert "gave no torch report" in result.message


def test_prefix_words_are_quoted_each() -> None:
    """A command prefix keeps its words, and shell metacharacters stay data."""
    command = torch.CHECK.command(node(python="conda run -n train python"))
    assert command.startswith("conda run -n train python -c ")
    hostile = torch.CHECK.command(node(python="python3;touch /tmp/pwned"))
    assert shlex.split(hostile)[:3] == ["python3;touch", "/tmp/pwned", "-c"]
    assert hostile.startswith("'python3;touch' /tmp/pwned -c ")


def test_probe_runs_without_torch() -> None:
    """The real probe, run by a Python without torch, reports the import error as JSON."""
    done = subprocess.run(
        [sys.executable, "-S", "-c", torch.PROBE], capture_output=True, text=True, check=True
    )
    result = torch.CHECK.evaluate(CommandResult(done.returncode, done.stdout, done.stderr), node())
    assert result.status is Status.FAIL
    assert "torch is not installed" in result.message


@pytest.mark.parametrize(
    ("fixture", "versions"),
    [
        (
            "healthy.txt",
            {
                "python": "3.11.10",
                "torch": "2.5.1+cu124",
                "cuda": "12.4",
                "nccl": "2.21.5",
                "cuda_driver": "12.4",
            },
        ),
        ("cpu-build.txt", {"python": "3.10.12", "torch": "2.5.1+cpu"}),
        ("missing.txt", {"python": "3.8.10"}),
        ("old-report.txt", {"torch": "2.5.1+cu124", "cuda": "12.4"}),
        ("driver-too-old.txt", {"cuda_driver": "11.4", "nccl": "2.21.5"}),
    ],
)
def test_versions_travel_with_any_verdict(fixture: str, versions: dict[str, str]) -> None:
    """What the probe saw is reported, whatever the verdict; what it did not see is left out."""
    seen = torch.CHECK.evaluate(probe(fixture), node()).versions
    assert seen.items() >= versions.items()
    assert None not in seen.values()
    if fixture == "cpu-build.txt":
        assert "cuda" not in seen


@pytest.mark.parametrize("fixture", ["empty.txt", "garbage.txt"])
def test_no_report_means_no_versions(fixture: str) -> None:
    """Output without a report is unknown and claims no versions."""
    result = torch.CHECK.evaluate(probe(fixture, exit_status=139), node())
    assert result.status is Status.UNKNOWN
    assert result.versions == {}


@pytest.mark.parametrize(
    ("mode", "versions"),
    [
        ("healthy", {"torch": "2.5.1+cu124", "cuda": "12.4", "nccl": "2.21.5"}),
        ("old-torch", {"torch": "2.4.1+cu124", "cuda": "12.4", "nccl": "2.20.5"}),
        ("nocuda", {"torch": "2.5.1+cpu"}),
    ],
)
def test_probe_reads_versions_from_fake_torch(
    tmp_path: Path, mode: str, versions: dict[str, str]
) -> None:
    """The real probe, on the fake torch, reports torch, CUDA, NCCL and Python versions."""
    (tmp_path / "torch_mode").write_text(mode, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-S", "-c", torch.PROBE],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(FAKETORCH), "UGRO_STUB_DIR": str(tmp_path)},
        check=True,
    )
    seen = torch.CHECK.evaluate(CommandResult(0, done.stdout), node()).versions
    python = ".".join(map(str, sys.version_info[:3]))
    assert seen == {**versions, "python": python} | (
        {"cuda_driver": seen["cuda_driver"]} if "cuda_driver" in seen else {}
    )


def test_probe_is_python_38() -> None:
    """Node pythons are old: the probe uses no grammar, builtin or method newer than 3.8."""
    assert python38.problems(torch.PROBE) == []
