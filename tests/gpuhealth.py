"""Helpers shared by the GPU health check tests: nodes and captured nvidia-smi answers."""

from __future__ import annotations

from conftest import fixture_text
from ugro.config import Worker
from ugro.model import CommandResult


def node(**settings: object) -> Worker:
    """A worker expecting two GPUs unless told otherwise."""
    return Worker.model_validate({"name": "n1", "ip": "127.0.0.1", "gpus": 2, **settings})


def smi(name: str, exit_status: int = 0) -> CommandResult:
    """nvidia-smi's result with a captured output from tests/fixtures/nvidia-smi."""
    return CommandResult(exit_status, fixture_text("nvidia-smi", name))


DRIVER_GONE = CommandResult(
    9, "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
)
