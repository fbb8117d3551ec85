"""A reader that closes ugro's stdout (`ugro ... | head -1`) ends ugro quietly, as git."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from conftest import require_integration
from ugro.cli.app import READER_GONE

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.integration
def test_a_closed_pipe_ends_ugro_quietly(tmp_path: Path) -> None:
    """Output into a pipe whose reader is gone: no traceback, no error line, exit 141."""
    require_integration("runs `ugro` as a process")
    config = tmp_path / "cluster.yaml"
    workers = ", ".join(f"{{name: n{i}, ip: 10.0.{i // 250}.{i % 250 + 1}}}" for i in range(3))
    config.write_text(f"workers: [{workers}]\n")
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before ugro writes a byte: every write fails
    try:
        done = subprocess.run(
            [sys.executable, "-m", "ugro", "config", "validate", str(config)],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert done.stderr == ""
    assert done.returncode == READER_GONE
