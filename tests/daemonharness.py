"""Running `ugro daemon run` as its own process, for every suite that needs a live daemon.

A daemon is judged by what an operator sees: the state file, the log, its stderr and exit code.
Used by the daemon, alert delivery, recovery and fault tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psutil
import pytest

from conftest import PATIENCE_S, require_integration, wait_for

if TYPE_CHECKING:
    import signal
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from sshcluster import TestCluster, TestHost

#: The state file, as JSON.
State = dict[str, Any]

#: Per-check deadlines: short, yet long enough for the first sweep of five hosts, whose
#: 25 concurrent checks (each a process on the host) share this machine's two cores.
FAST_TIMEOUTS: dict[str, float] = {
    "connect": 2,
    "ssh": 2,
    "gpu": 3,
    "torch": 5,
    "disk": 2,
    "latency": 2,
}
#: Check sets for tests that need no more (see `write_config`).
SSH_ONLY = ["ssh"]
SSH_GPU = ["ssh", "gpu"]
#: What a node shows while its checks pass (this busy machine's load alone may degrade it).
GOOD = frozenset({"healthy", "degraded"})
#: Variables by which the daemon tells how it was started (and whether to speak sd_notify).
SERVICE_ENV = frozenset(
    {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "INVOCATION_ID", "UGRO_DAEMON_DETACHED"}
)


def read_state(home: Path) -> State | None:
    """The daemon's state file as JSON; None while it has not been written yet."""
    try:
        raw = (home / "cluster_state.json").read_bytes()
    except FileNotFoundError:
        return None
    document: State = json.loads(raw)
    return document


def when(text: str) -> datetime:
    """A timestamp from the state file."""
    return datetime.fromisoformat(text)


def monitor(**overrides: object) -> dict[str, object]:
    """The `monitor:` section for a fast daemon, with `overrides`."""
    return {"interval_s": 1, "confirm_s": 0.3, **overrides}


def write_config(
    cluster: TestCluster,
    path: Path,
    hosts: list[TestHost] | None = None,
    *,
    checks: list[str] | None = None,
    timeouts: dict[str, float] | None = None,
    **settings: object,
) -> Path:
    """A cluster.yaml for `hosts`: short timeouts, `monitor:` `settings`, no metrics port.

    `checks` limits what runs on every node: most tests need only the ssh check, and a sweep
    of it takes milliseconds where all five checks take a second on this machine.
    """
    top: dict[str, object] = {
        "timeouts": timeouts or FAST_TIMEOUTS,
        "monitor": monitor(**settings),
        # A fixed port would tie every daemon here to every other ugro on this machine.
        "exporter": {"enabled": False},
    }
    if checks is not None:
        top["checks"] = checks
    return cluster.write_config(path, hosts, None, **top)


@dataclass
class DaemonProcess:
    """One `ugro daemon run` process, its output files and its $UGRO_HOME."""

    process: subprocess.Popen[bytes]
    home: Path
    stdout: Path
    stderr: Path

    @property
    def pid(self) -> int:
        """The daemon's pid."""
        return self.process.pid

    def state(self) -> State | None:
        """The state file now (None before the first write)."""
        return read_state(self.home)

    def log(self) -> str:
        """The monitor log written so far."""
        try:
            return (self.home / "monitor.log").read_text(encoding="utf-8")
        except FileNotFoundError:
            return ""

    def err(self) -> str:
        """What the process wrote to stderr so far."""
        return self.stderr.read_text(encoding="utf-8", errors="replace")

    def wait_state(
        self, predicate: Callable[[State], bool], timeout: float = PATIENCE_S, what: str = ""
    ) -> State:
        """Wait until the state file satisfies `predicate`; fail early if the daemon died."""

        def check() -> State | None:
            if self.process.poll() is not None:
                pytest.fail(
                    f"the daemon exited ({self.process.returncode}) while waiting for "
                    f"{what or predicate}; stderr:\n{self.err()}"
                )
            state = self.state()
            return state if state is not None and predicate(state) else None

        return wait_for(check, what, timeout)

    def wait_sweeps(self, count: int, timeout: float = PATIENCE_S) -> State:
        """Wait until the daemon has persisted at least `count` sweeps."""
        return self.wait_state(
            lambda s: s["daemon"] is not None and s["daemon"]["sweeps"] >= count,
            timeout,
            f"{count} sweeps",
        )

    def sweeps(self) -> int:
        """How many sweeps the state file counts now."""
        state = self.state()
        return int(state["daemon"]["sweeps"]) if state and state["daemon"] else 0

    def wait_log(self, text: str, timeout: float = PATIENCE_S, count: int = 1) -> str:
        """Wait until the log contains `text` (`count` times); return the whole log."""

        def check() -> str:
            log = self.log()
            return log if log.count(text) >= count else ""

        return wait_for(check, f"{text!r} logged {count} times", timeout)

    def send(self, sig: signal.Signals) -> None:
        """Send `sig` to the daemon."""
        self.process.send_signal(sig)

    def wait(self, timeout: float) -> int:
        """Wait for the daemon to exit; its exit code."""
        return self.process.wait(timeout=timeout)

    def close(self) -> None:
        """Make sure the process is gone and reaped, whatever the test did."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)


def spawn(
    config: Path,
    home: Path,
    directory: Path,
    env: dict[str, str] | None = None,
    argv: list[str] | None = None,
) -> DaemonProcess:
    """Start `ugro daemon run` on `config` (or `argv`), output in files in `directory`."""
    require_integration("starts a daemon process")
    # Whatever runs pytest must not make the daemon believe systemd or `daemon start` ran it.
    base_env = {k: v for k, v in os.environ.items() if k not in SERVICE_ENV}
    n = len(list(directory.glob("daemon*.out")))
    stdout, stderr = directory / f"daemon{n}.out", directory / f"daemon{n}.err"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            argv or [sys.executable, "-m", "ugro", "--config", str(config), "daemon", "run"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env={**base_env, **(env or {})},
        )
    return DaemonProcess(process, home, stdout, stderr)


@contextlib.contextmanager
def daemon_starter(
    home: Path, directory: Path, argv: Callable[[Path], list[str]] | None = None
) -> Iterator[Callable[..., DaemonProcess]]:
    """Start daemons with `spawn`; at the end reap them all and fail on noise in their stderr.

    `argv` makes the command line from the config, for a daemon run some other way.
    """
    started: list[DaemonProcess] = []

    def start(config: Path, env: dict[str, str] | None = None) -> DaemonProcess:
        handle = spawn(config, home, directory, env, argv(config) if argv else None)
        started.append(handle)
        return handle

    try:
        yield start
    finally:
        for handle in started:
            handle.close()
    for handle in started:
        err = handle.err()
        for noise in ("Traceback", "Task was destroyed", "Exception ignored", "never awaited"):
            assert noise not in err, err


def daemon_processes(home: Path) -> list[psutil.Process]:
    """`ugro daemon run` processes that use `home` (started detached, so no Popen owns them)."""
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            argv = process.cmdline()
            if (
                "daemon" in argv
                and "run" in argv
                and process.environ().get("UGRO_HOME") == str(home)
            ):
                found.append(process)
    return found


def tool(name: str) -> str:
    """The absolute path of a system program."""
    found = shutil.which(name)
    assert found, f"{name} is not installed"
    return found


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    process = subprocess.Popen([tool("true")])
    process.wait(timeout=10)
    return process.pid
