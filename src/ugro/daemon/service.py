"""Controlling the daemon: `ugro daemon start|stop|status|install`.

systemd's user manager is used when the unit is installed and the manager answers;
otherwise the daemon runs detached, and is found again through its pid file and psutil
(never `pgrep`/`pkill`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from ugro import paths
from ugro.daemon.pidfile import read_pid, remove_if_stale
from ugro.errors import StateError, UgroError
from ugro.store import atomicfile
from ugro.text import printable

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from datetime import datetime

    from ugro.store.state import DaemonInfo

SYSTEMCTL_TIMEOUT_S = 15
START_WAIT_S = 15.0
STOP_WAIT_S = 10.0
# Set for the daemon `start` detaches, so that it can say how it was started.
DETACHED_ENV = "UGRO_DAEMON_DETACHED"


def started_by(environ: Mapping[str, str] = os.environ) -> str:
    """How the process with `environ` (this one by default) was started, for `daemon status`."""
    if environ.get("INVOCATION_ID") and environ.get("NOTIFY_SOCKET"):
        return "systemd"
    if environ.get(DETACHED_ENV):
        return "ugro daemon start"
    return "foreground"


def started_by_process(process: psutil.Process) -> str | None:
    """How a running daemon was started, read from its environment; None when not readable.

    The daemon records it with its first sweep; until then (a first sweep over hung nodes
    takes a while) its environment says the same. Another user's process hides it.
    """
    try:
        return started_by(process.environ())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def _say(text: str) -> None:
    # It may quote the daemon's log or systemctl: printable, line by line.
    print(printable(text, multiline=True))  # noqa: T201 - these functions are the command's output


@dataclass(frozen=True)
class Running:
    """A running daemon process."""

    pid: int
    process: psutil.Process


def is_daemon(process: psutil.Process) -> bool:
    """Whether `process` is a `ugro daemon run` (and not a program that reused its pid)."""
    try:
        argv = process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
    for i, arg in enumerate(argv[:-1]):
        if arg == "daemon" and argv[i + 1] == "run":
            return any(Path(a).name in ("ugro", "ugro.__main__") or a == "ugro" for a in argv[:i])
    return False


def find_daemon(*, clean: bool = True) -> tuple[Running | None, str | None]:
    """The running daemon, and a note when a stale pid file was found (and removed)."""
    path = paths.pid_file()
    pid = read_pid(path)
    if pid is None:
        return None, None
    try:
        process = psutil.Process(pid)
        alive = process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        process, alive = None, False
    if process is not None and alive and is_daemon(process):
        return Running(pid, process), None
    why = "its process is gone" if not alive else f"pid {pid} now belongs to another program"
    removed = clean and remove_if_stale(path)
    return None, f"stale pid file {path} ({why})" + ("; removed it" if removed else "")


def _systemctl(*args: str) -> subprocess.CompletedProcess[str] | None:
    """`systemctl --user ARGS`, or None when there is no systemctl or no user manager."""
    done = _tool("systemctl", "--user", *args)
    if done is None:
        return None
    # 1 is "failed"/"inactive" for is-active and friends; worse means no user manager.
    if "Failed to connect to bus" in done.stderr or done.returncode > 4:
        return None
    return done


def systemd_manages() -> bool:
    """Whether the unit is installed and the user manager answers."""
    if not paths.unit_file().exists():
        return False
    done = _systemctl("show-environment")
    return done is not None and done.returncode == 0


def start(config_path: Path | None) -> int:
    """Start the daemon (systemd or detached) and wait until it runs or has failed."""
    running, note = find_daemon()
    if note:
        _say(note)
    if running:
        _say(f"the monitor is already running (pid {running.pid})")
        return 0
    if systemd_manages():
        done = _systemctl("start", paths.UNIT_NAME)
        if done is None or done.returncode != 0:
            why = done.stderr.strip() if done else "no answer"
            _say(f"systemctl --user start {paths.UNIT_NAME} failed: {why}")
            _say(f"see `journalctl --user -u {paths.UNIT_NAME}`")
            return 1
        _say(f"started {paths.UNIT_NAME} (systemd user unit)")
        return 0
    return _start_detached(config_path)


def _start_detached(config_path: Path | None) -> int:
    log = paths.log_file()
    log.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "ugro"]
    if config_path is not None:
        argv += ["--config", str(config_path.resolve())]
    argv += ["daemon", "run", "--no-stderr", "--log-file", str(log)]
    offset = log.stat().st_size if log.exists() else 0
    with log.open("ab") as output:
        child = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            env={**os.environ, DETACHED_ENV: "1"},
        )
    deadline = time.monotonic() + START_WAIT_S
    while time.monotonic() < deadline:
        if child.poll() is not None:
            _say(f"the monitor failed to start (exit {child.returncode}); the end of {log}:")
            _say(_tail(log, offset))
            return 1
        if read_pid(paths.pid_file()) == child.pid:
            _say(f"the monitor is running (pid {child.pid}); log: {log}")
            # The child runs on in its own session; this process is not its keeper.
            child.returncode = 0
            return 0
        time.sleep(0.05)
    _say(f"the monitor did not report running within {START_WAIT_S:g} s; see {log}")
    child.returncode = 0
    return 1


def _tail(log: Path, offset: int, lines: int = 20) -> str:
    try:
        with log.open("rb") as handle:
            handle.seek(offset)
            text = handle.read().decode(errors="replace")
    except OSError as exc:
        return f"(cannot read {log}: {exc.strerror})"
    return "\n".join(text.splitlines()[-lines:]) or "(nothing was logged)"


def stop() -> int:
    """Stop the daemon: through systemd, or SIGTERM, then SIGKILL after 10 s."""
    if systemd_manages():
        active = _systemctl("is-active", paths.UNIT_NAME)
        if active is not None and active.stdout.strip() in ("active", "activating", "reloading"):
            done = _systemctl("stop", paths.UNIT_NAME)
            if done is None or done.returncode != 0:
                _say(f"systemctl --user stop failed: {done.stderr.strip() if done else ''}")
                return 1
            _say(f"stopped {paths.UNIT_NAME}")
            return 0
    running, note = find_daemon()
    if note:
        _say(note)
    if running is None:
        _say("the monitor is not running")
        return 0
    try:
        running.process.terminate()
        _, alive = psutil.wait_procs([running.process], timeout=STOP_WAIT_S)
        if alive:
            _say(f"pid {running.pid} did not stop within {STOP_WAIT_S:g} s; killing it")
            running.process.kill()
            psutil.wait_procs([running.process], timeout=5)
    except psutil.NoSuchProcess:
        pass
    except psutil.AccessDenied:
        _say(f"not allowed to signal pid {running.pid}")
        return 1
    remove_if_stale(paths.pid_file())
    _say(f"stopped the monitor (pid {running.pid})")
    return 0


def status_report() -> dict[str, Any]:
    """What `ugro daemon status` shows, as data."""
    from ugro.store.state import StateStore

    running, note = find_daemon()
    report: dict[str, Any] = {
        "running": running is not None,
        "pid": running.pid if running else None,
        "uptime_s": None,
        "started_by": None,
        "last_sweep_at": None,
        "last_sweep_duration_s": None,
        "sweeps": None,
        "checks": None,
        "errors": None,
        "log_errors": None,
        "nodes": {},
        "alerts_firing": None,
        "delivery": {},
        "pid_file": str(paths.pid_file()),
        "log_file": str(paths.log_file()),
        "unit_file": str(paths.unit_file()) if paths.unit_file().exists() else None,
        "note": note,
    }
    if running:
        report["uptime_s"] = round(time.time() - running.process.create_time(), 1)
    try:
        state = StateStore(paths.state_file()).read()
    except StateError as exc:
        report["note"] = str(exc)
        state = None
    if state is not None:
        counts: dict[str, int] = {}
        for verdict in state.nodes.values():
            counts[verdict.status.value] = counts.get(verdict.status.value, 0) + 1
        report["nodes"] = counts
        if state.alerts:
            report["alerts_firing"] = len(state.alerts.get("firing", []))
            report["delivery"] = state.alerts.get("delivery", {})
        info = state.daemon
        if info is not None and running and info.pid == running.pid:
            report["started_by"] = info.started_by
            report["sweeps"] = info.sweeps
            report["checks"] = info.checks
            report["errors"] = info.errors
            report["log_errors"] = info.log_errors
            report["last_sweep_duration_s"] = info.last_sweep_duration_s
            if info.last_sweep_at:
                report["last_sweep_at"] = info.last_sweep_at.isoformat()
    if running and report["started_by"] is None:
        report["started_by"] = started_by_process(running.process)
    return report


def stale_note(info: DaemonInfo | None, now: datetime) -> str:
    """Why verdicts are stale, from what the monitor last wrote about itself (`info`).

    No monitor ever wrote the state, one stopped, one died without saying so (its pid is
    gone), or one runs but is behind. For `ugro health`, when any verdict is stale.
    """
    start = "start it with `ugro daemon start`"
    if info is None:
        return f"verdicts are stale: no monitor keeps them fresh; {start}"
    if not info.running:
        stopped = info.last_sweep_at or info.started_at
        return (
            f"verdicts are stale: the monitor stopped after {stopped:%Y-%m-%d %H:%M:%S}Z; {start}"
        )
    try:
        os.kill(info.pid, 0)
    except ProcessLookupError:
        return f"verdicts are stale: the monitor (pid {info.pid}) died without stopping; {start}"
    except PermissionError:
        # The pid is another user's process: it exists, and signal 0 can tell no more.
        pass
    last = info.last_sweep_at or info.started_at
    behind = (now - last).total_seconds()
    return (
        f"verdicts are stale: the monitor (pid {info.pid}) is behind, last sweep {behind:.0f} s "
        f"ago with a {info.interval_s:g} s interval; see its log"
    )


# A word systemd reads as itself, unquoted: no quote, escape, specifier (%) or variable ($).
_BARE_WORD = re.compile(r"[A-Za-z0-9_+=:,./-]+")


def systemd_word(word: str) -> str:
    """`word` as one argument of a unit's command line, by systemd's rules, not a shell's.

    systemd.service(5), "Command lines": double quotes with C escapes, `%%` for a literal
    `%` (specifiers) and `$$` for a literal `$` (variables), also inside quotes. UgroError
    for what a unit cannot carry: control characters (a newline would end the line) and a
    lone `;` (which separates commands).
    """
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in word) or word == ";":
        raise UgroError(
            f"cannot write {word!r} into a systemd unit (control characters and a lone ';' "
            "cannot be quoted there): move ugro or the config to a plainer path"
        )
    if _BARE_WORD.fullmatch(word):
        return word
    escaped = word.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("%", "%%").replace("$", "$$") + '"'


def render_unit(exec_start: list[str]) -> str:
    """The systemd user unit, running `exec_start` (its program an absolute path)."""
    if not exec_start[0].startswith("/"):
        raise UgroError(f"the unit's program must be an absolute path, not {exec_start[0]!r}")
    template = files("ugro").joinpath("data/ugro-monitor.service").read_text(encoding="utf-8")
    return template.replace("{exec_start}", " ".join(systemd_word(w) for w in exec_start))


def install(config_path: Path | None, *, linger: Callable[[], bool | None] | None = None) -> int:
    """Write the user unit for this installation; enable it when the user manager answers."""
    exec_start = [sys.executable, "-m", "ugro"]
    if config_path is not None:
        exec_start += ["--config", str(config_path.resolve())]
    exec_start += ["daemon", "run"]
    path = paths.unit_file()
    try:
        atomicfile.write(path, render_unit(exec_start).encode())
    except OSError as exc:
        raise UgroError(f"{path}: cannot write: {exc.strerror}") from exc
    _say(f"wrote {path}")
    reload = _systemctl("daemon-reload")
    if reload is not None and reload.returncode == 0:
        enable = _systemctl("enable", paths.UNIT_NAME)
        if enable is None or enable.returncode != 0:
            _say(f"systemctl --user enable failed: {enable.stderr.strip() if enable else ''}")
            return 1
        _say(f"enabled {paths.UNIT_NAME}; start it with `ugro daemon start`")
    else:
        _say(
            "the systemd user manager is not reachable from here; in a login session run:\n"
            f"  systemctl --user daemon-reload && systemctl --user enable --now {paths.UNIT_NAME}"
        )
    lingering = (linger or _lingering)()
    if not lingering:
        user = os.environ.get("USER") or "$USER"
        state = "is off" if lingering is False else "could not be checked"
        _say(
            f"lingering {state} for this user: without it the monitor stops at logout and does "
            f"not start on a headless boot. Turn it on with `sudo loginctl enable-linger {user}`"
        )
    return 0


def _lingering() -> bool | None:
    """Whether systemd keeps this user's manager running without a login (None: unknown)."""
    user = os.environ.get("USER")
    done = _tool("loginctl", "show-user", user, "--property=Linger") if user else None
    if done is None or done.returncode != 0:
        return None
    return done.stdout.strip() == "Linger=yes"


def _tool(name: str, *args: str) -> subprocess.CompletedProcess[str] | None:
    """Run a systemd tool with a timeout; None when it is missing or does not answer."""
    path = shutil.which(name)
    if path is None:
        return None
    try:
        return subprocess.run(
            [path, *args], capture_output=True, text=True, timeout=SYSTEMCTL_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
