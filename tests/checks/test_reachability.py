"""The ssh check's verdicts and the host metrics read by the same command."""

from __future__ import annotations

import subprocess

from conftest import fixture_text
from ugro.checks import reachability
from ugro.config import Worker
from ugro.model import CommandResult, Status

NODE = Worker(name="n1", ip="127.0.0.1")


def test_marker_means_ok_and_host_metrics_parse() -> None:
    """The marker passes the check, and load, CPUs and memory are read."""
    result = reachability.CHECK.evaluate(
        CommandResult(0, fixture_text("proc", "healthy.txt")), NODE
    )
    assert result.status is Status.OK
    assert result.host is not None
    assert (result.host.load_1m, result.host.cpus) == (0.52, 32)
    assert result.host.memory_available_bytes == 241093316 * 1024


def test_login_noise_before_the_marker_is_ignored() -> None:
    """A banner printed by the login shell does not break the check."""
    result = reachability.CHECK.evaluate(
        CommandResult(0, fixture_text("proc", "motd-noise.txt")), NODE
    )
    assert result.status is Status.OK
    assert result.host is not None
    assert result.host.cpus == 8


def test_missing_proc_passes_without_metrics() -> None:
    """A node without /proc is reachable; its host metrics are missing, not zero."""
    result = reachability.CHECK.evaluate(
        CommandResult(0, fixture_text("proc", "no-proc.txt")), NODE
    )
    assert result.status is Status.OK
    assert result.host is None


def test_shell_that_runs_nothing_fails() -> None:
    """A restricted shell that never ran the command fails, with what it said."""
    result = reachability.CHECK.evaluate(
        CommandResult(1, "", "This account is currently not available."), NODE
    )
    assert result.status is Status.FAIL
    assert "This account is currently not available." in result.message


def test_command_reads_this_machine() -> None:
    """The real command, run by /bin/sh here, yields this machine's metrics."""
    done = subprocess.run(
        ["/bin/sh", "-c", reachability.COMMAND], capture_output=True, text=True, check=True
    )
    result = reachability.CHECK.evaluate(CommandResult(done.returncode, done.stdout), NODE)
    assert result.status is Status.OK
    assert result.host is not None
    assert result.host.cpus >= 1
