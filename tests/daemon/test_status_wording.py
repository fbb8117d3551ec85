"""`ugro daemon status` reads right: how the monitor was started before its first sweep, counts."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import psutil
import pytest

from ugro.cli.views.daemon import print_status
from ugro.daemon.service import DETACHED_ENV, started_by_process

if TYPE_CHECKING:
    from collections.abc import Iterator


def report(**changes: Any) -> dict[str, Any]:
    """A status report of a running monitor that swept once, as `service.status_report` makes."""
    base: dict[str, Any] = {
        "running": True,
        "pid": 4242,
        "uptime_s": 12.0,
        "started_by": "systemd",
        "last_sweep_at": datetime.now(UTC).isoformat(),
        "last_sweep_duration_s": 0.25,
        "sweeps": 1,
        "checks": 1,
        "errors": 0,
        "log_errors": 0,
        "nodes": {},
        "alerts_firing": None,
        "delivery": {},
        "log_file": "/var/log/ugro.log",
        "note": None,
    }
    return {**base, **changes}


def test_one_sweep_is_singular(capsys: pytest.CaptureFixture[str]) -> None:
    """`(1 sweep, 1 node check)`, not `(1 sweeps, 1 node checks)`; plurals stay plural."""
    print_status(report())
    assert "(1 sweep, 1 node check)" in capsys.readouterr().out
    print_status(report(sweeps=3, checks=12))
    assert "(3 sweeps, 12 node checks)" in capsys.readouterr().out


def test_started_by_before_the_first_sweep(capsys: pytest.CaptureFixture[str]) -> None:
    """A monitor whose environment cannot be read says so, not `unknown (no sweep yet)`."""
    print_status(report(started_by=None, sweeps=None, last_sweep_at=None))
    out = capsys.readouterr().out
    assert "started by: not known (its environment is hidden)" in out
    assert "no sweep yet" not in out
    assert "last sweep: none yet" in out


@pytest.fixture
def sleeper() -> Iterator[Any]:
    """Start a real process with a given environment; stopped after the test."""
    started: list[subprocess.Popen[bytes]] = []

    def start(**env: str) -> psutil.Process:
        clean = {k: v for k, v in os.environ.items() if k not in {"INVOCATION_ID", DETACHED_ENV}}
        child = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(60)"], env={**clean, **env}
        )
        started.append(child)
        return psutil.Process(child.pid)

    yield start
    for child in started:
        child.kill()
        child.wait()


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({DETACHED_ENV: "1"}, "ugro daemon start"),
        ({"INVOCATION_ID": "abc", "NOTIFY_SOCKET": "/run/systemd/notify"}, "systemd"),
        ({}, "foreground"),
    ],
)
def test_started_by_is_read_from_the_running_process(
    sleeper: Any,
    env: dict[str, str],
    said: str,
) -> None:
    """Before the monitor's first sweep records it, its environment tells how it was started."""
    assert started_by_process(sleeper(**env)) == said


def test_started_by_of_a_gone_process_is_none() -> None:
    """A process that exited has no environment to read: None, never an exception."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    process = psutil.Process(child.pid)
    child.wait()
    assert started_by_process(process) is None
