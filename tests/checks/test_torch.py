"""The torch check's command and verdicts, fed captured probe output."""

from __future__ import annotations

import shlex
import subprocess
import sys

import pytest

from conftest import fixture_text
from ugro.checks import torch
from ugro.config import Worker
from ugro.model import CommandResult, Status


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


def test_truncated_report_raises() -> None:
    """A report cut short is a parse error, not a pass."""
    with pytest.raises(ValueError, match=r"Unterminated|Expecting"):
        torch.CHECK.evaluate(probe("truncated.txt"), node())


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
