"""Where ugro's files live: XDG directories, all moved under `$UGRO_HOME` when it is set."""

from __future__ import annotations

import os
from pathlib import Path

APP = "ugro"


def _home() -> Path | None:
    home = os.environ.get("UGRO_HOME")
    return Path(home).expanduser() if home else None


def _xdg(variable: str, fallback: str) -> Path:
    value = os.environ.get(variable)
    base = Path(value) if value and Path(value).is_absolute() else Path.home() / fallback
    return base / APP


def config_file() -> Path:
    """The default cluster.yaml, used when neither --config nor $UGRO_CONFIG is given."""
    return (_home() or _xdg("XDG_CONFIG_HOME", ".config")) / "cluster.yaml"


def state_file() -> Path:
    """The persisted verdicts that `ugro health` reads."""
    return (_home() or _xdg("XDG_CACHE_HOME", ".cache")) / "cluster_state.json"


def log_file() -> Path:
    """The daemon's log (never a fixed name in /tmp: that invites symlink attacks)."""
    return (_home() or _xdg("XDG_STATE_HOME", ".local/state")) / "monitor.log"


def history_file() -> Path:
    """The SQLite history of verdicts."""
    return (_home() or _xdg("XDG_STATE_HOME", ".local/state")) / "history.db"


def cordons_file() -> Path:
    """Which nodes are cordoned, by whom and why: operator intent, so not in the cache."""
    return (_home() or _xdg("XDG_STATE_HOME", ".local/state")) / "cordons.json"


def remediation_file() -> Path:
    """Remediation attempts and escalations per node, kept across daemon restarts."""
    return cordons_file().with_name("remediation.json")


def pid_file() -> Path:
    """The running daemon's pid, held with a lock for as long as it runs."""
    home = _home()
    if home:
        return home / "daemon.pid"
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_absolute():
        return Path(runtime) / APP / "daemon.pid"
    return _xdg("XDG_STATE_HOME", ".local/state") / "daemon.pid"


def unit_file() -> Path:
    """Where `ugro daemon install` writes the systemd user unit."""
    return _xdg("XDG_CONFIG_HOME", ".config").parent / "systemd" / "user" / UNIT_NAME


UNIT_NAME = "ugro-monitor.service"


def resolve_config(explicit: str | os.PathLike[str] | None) -> tuple[Path, bool]:
    """The config path to use and whether the operator named it (flag or $UGRO_CONFIG).

    A named file must exist; the default location may be absent (then the embedded
    default cluster applies).
    """
    if explicit:
        return Path(explicit).expanduser(), True
    env = os.environ.get("UGRO_CONFIG")
    if env:
        return Path(env).expanduser(), True
    return config_file(), False
