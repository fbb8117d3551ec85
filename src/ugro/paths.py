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
