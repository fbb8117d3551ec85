"""Finding, reading and checking cluster.yaml; every problem reported at once, by line.

`load` locates the file (or falls back to the embedded default: this machine alone);
`parse_text` reads the YAML, validates it against `ugro.config.settings`, and turns what
PyYAML and pydantic say into `ConfigError` lines of the form `file:line: field.path: what was
expected`.
"""

from __future__ import annotations

import difflib
import logging
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ValidationError

from ugro import paths
from ugro.config import document, validators
from ugro.config.settings import (
    ALL_CHECKS,
    LOCAL_CHECKS,
    AlertSettings,
    ClusterConfig,
    ExporterSettings,
    HistorySettings,
    Master,
    MonitorSettings,
    PrometheusSettings,
    RecoveryAction,
    RecoverySettings,
    ShardSettings,
    SinkSettings,
    SlurmSettings,
    Timeouts,
    Worker,
)
from ugro.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

# The package's name, as when config was one module: log lines keep the origin operators know.
log = logging.getLogger("ugro.config")


@dataclass(frozen=True)
class Config:
    """The nodes to check and where they came from (None: the embedded default)."""

    nodes: list[Worker]
    source: Path | None
    monitor: MonitorSettings = field(default_factory=MonitorSettings)
    exporter: ExporterSettings = field(default_factory=ExporterSettings)
    history: HistorySettings = field(default_factory=HistorySettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    scheduler: Literal["none", "slurm"] = "none"
    slurm: SlurmSettings = field(default_factory=SlurmSettings)
    recovery: RecoverySettings = field(default_factory=RecoverySettings)
    prometheus: PrometheusSettings = field(default_factory=PrometheusSettings)


def local_default() -> Config:
    """The embedded default cluster: this machine alone, checked without SSH."""
    name = socket.gethostname().split(".")[0] or "localhost"
    if not validators.valid_name(name):
        name = "localhost"
    node = Worker(name=name, ip="localhost", transport="local", checks=list(LOCAL_CHECKS))
    return Config(nodes=[node], source=None)


def load(explicit: str | Path | None = None) -> Config:
    """Locate and load the config (flag, then $UGRO_CONFIG, then the XDG path).

    No file at the default location means the embedded default; a named file that is
    missing is an error.
    """
    path, named = paths.resolve_config(explicit)
    if not named and not path.exists():
        return local_default()
    parsed = parse_file(path)
    return Config(
        nodes=parsed.nodes(),
        source=path,
        monitor=parsed.monitor,
        exporter=parsed.exporter,
        history=parsed.history,
        alerts=parsed.alerts,
        scheduler=parsed.scheduler,
        slurm=parsed.slurm,
        recovery=parsed.recovery,
        prometheus=parsed.prometheus,
    )


def parse_file(path: Path) -> ClusterConfig:
    """Read and validate one file; raise ConfigError listing every problem found."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such file (create one with `ugro init`)") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"{path}: is a directory, expected a YAML file") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    return parse_text(text, str(path))


def parse_text(text: str, origin: str) -> ClusterConfig:
    """Validate YAML text; `origin` names it in messages."""
    root, data = document.read(text, origin)
    if root is None:
        raise ConfigError(f"{origin}: the file is empty; expected a mapping with a 'workers' list")
    lines: dict[tuple[str | int, ...], int] = {}
    duplicates: list[str] = []
    _index(root, (), lines, duplicates)
    if duplicates:
        raise ConfigError("\n".join(f"{origin}:{d}" for d in duplicates))
    if not isinstance(data, dict):
        kind = type(data).__name__ if data is not None else "null"
        raise ConfigError(
            f"{origin}:1: expected a mapping with a 'workers' list at the top level, got {kind}"
        )
    _moved_keys(data, origin, lines)
    problems = _duplicate_names(data, origin, lines)
    try:
        parsed = ClusterConfig.model_validate(data)
    except ValidationError as exc:
        problems.extend(_describe(exc, origin, lines))
    else:
        problems.extend(_resolved_problems(parsed, origin, lines))
    if problems:
        raise ConfigError("\n".join(problems))
    return parsed


def _resolved_problems(
    parsed: ClusterConfig, origin: str, lines: dict[tuple[str | int, ...], int]
) -> list[str]:
    """Problems only resolved settings show: warning not below critical, one address twice."""
    problems = _duplicate_addresses(parsed, origin, lines)
    for i, (worker, node) in enumerate(zip(parsed.workers, parsed.nodes(), strict=True)):
        if node.gpu_temp_warning_c < node.gpu_temp_critical_c:
            continue
        key = next(
            (
                k
                for k in ("gpu_temp_warning_c", "gpu_temp_critical_c")
                if k in worker.model_fields_set
            ),
            None,
        )
        loc: tuple[str | int, ...] = ("workers", i, key) if key else ("gpu_temp_warning_c",)
        line = lines.get(loc) or lines.get(("workers", i), 1)
        problems.append(
            f"{origin}:{line}: {_dotted(loc)}: gpu_temp_warning_c "
            f"({node.gpu_temp_warning_c:g}) must be below gpu_temp_critical_c "
            f"({node.gpu_temp_critical_c:g}) for worker {node.name!r}"
        )
    return problems


def _duplicate_addresses(
    parsed: ClusterConfig, origin: str, lines: dict[tuple[str | int, ...], int]
) -> list[str]:
    """A problem for each worker whose address and SSH port an earlier worker already has.

    Two entries for one machine would check it twice and count it twice in every fraction.
    Workers with `transport: local` are left out: their address is never dialled.
    """
    seen: dict[tuple[str, int | None], str] = {}
    problems = []
    for i, node in enumerate(parsed.nodes()):
        if node.transport == "local":
            continue
        key = (validators.address_key(node.ip), node.ssh_port)
        if key in seen:
            loc = ("workers", i, "ip")
            port = f" port {node.ssh_port}" if node.ssh_port is not None else ""
            problems.append(
                f"{origin}:{lines.get(loc, 1)}: {_dotted(loc)}: {node.ip}{port} is also worker "
                f"{seen[key]!r}; each worker must be a different address (or SSH port)"
            )
        else:
            seen[key] = node.name
    return problems


# Keys of earlier releases that now live elsewhere: (section, key) → the top-level key.
_MOVED = {
    ("alerts", "gpu_temp_warning_c"): "gpu_temp_warning_c",
    ("alerts", "gpu_temp_critical_c"): "gpu_temp_critical_c",
}


def _moved_keys(data: dict[str, Any], origin: str, lines: dict[tuple[str | int, ...], int]) -> None:
    """Read a key of an earlier release where it lives now, and say so once in the log.

    A file that loaded before must load after an upgrade; the top-level value wins when both
    are given.
    """
    for (section, key), target in _MOVED.items():
        part = data.get(section)
        if not isinstance(part, dict) or key not in part:
            continue
        value = part.pop(key)
        data.setdefault(target, value)
        log.warning(
            "%s:%s: %s.%s is now the node setting `%s` (top level or per worker); "
            "read as that, please move it",
            origin,
            lines.get((section, key), 1),
            section,
            key,
            target,
        )


def _duplicate_names(
    data: dict[str, Any], origin: str, lines: dict[tuple[str | int, ...], int]
) -> list[str]:
    """A problem for each worker whose name an earlier worker already has."""
    workers = data.get("workers")
    if not isinstance(workers, list):
        return []
    seen: set[object] = set()
    problems = []
    for i, worker in enumerate(workers):
        name = worker.get("name") if isinstance(worker, dict) else None
        if not isinstance(name, str):
            continue  # missing or of the wrong type: validation says so
        if name in seen:
            loc = ("workers", i, "name")
            where = f"{origin}:{lines.get(loc, 1)}: {_dotted(loc)}"
            problems.append(f"{where}: worker name {name!r} is used twice; names must be unique")
        seen.add(name)
    return problems


def _index(
    node: yaml.Node,
    path: tuple[str | int, ...],
    lines: dict[tuple[str | int, ...], int],
    duplicates: list[str],
) -> None:
    """Record the line of every key and item; note keys given twice (PyYAML keeps the last)."""
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = str(key.value)
            child = (*path, name)
            if name in seen:
                duplicates.append(f"{key.start_mark.line + 1}: {_dotted(child)}: key given twice")
            seen.add(name)
            _index(value, child, lines, duplicates)
            # A problem with a value is reported on its key's line.
            lines[child] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, (*path, i), lines, duplicates)


def _dotted(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not part.isprintable():
            # A key with a line break would split the message; quoted, it stays on one line.
            out += f"[{part!r}]"
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


def _describe(
    exc: ValidationError, origin: str, lines: dict[tuple[str | int, ...], int]
) -> list[str]:
    messages = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        line = next((lines[loc[:n]] for n in range(len(loc), -1, -1) if loc[:n] in lines), None)
        where = f"{origin}:{line}" if line else origin
        messages.append(f"{where}: {_dotted(loc)}: {_explain(error, loc)}")
    return messages


def _explain(error: Any, loc: tuple[str | int, ...]) -> str:  # noqa: ANN401 - pydantic's ErrorDetails
    kind = error["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        allowed = _allowed_keys(loc[:-1])
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = (
            f"; did you mean {close[0]!r}?"
            if close
            else f"; expected one of: {', '.join(sorted(allowed))}"
        )
        return f"unknown key{hint}"
    if kind == "missing":
        return "required, but missing"
    if kind == "literal_error" and len(loc) >= 2 and loc[-2] == "checks":
        return _unknown_check(error.get("input"))
    message = str(error["msg"])
    if message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    elif (
        "input" in error
        and not isinstance(error["input"], dict | list)
        and not _SECRET_KEYS.intersection(p for p in loc if isinstance(p, str))
    ):
        message = f"{message}, got {error['input']!r}"
    return message


def _unknown_check(given: object) -> str:
    """A `checks:` entry that names no check: the closest name, or every name."""
    close = difflib.get_close_matches(given, ALL_CHECKS, n=1) if isinstance(given, str) else []
    hint = f"did you mean {close[0]!r}?" if close else f"checks are: {', '.join(ALL_CHECKS)}"
    return f"no check is named {given!r}; {hint}"


# Settings that hold credentials (tokens in URLs, Authorization headers, a command's
# arguments): a message about them never repeats their value, which would reach terminals and
# the daemon's log.
_SECRET_KEYS = frozenset({"urls", "url", "headers", "command", "password", "token", "secret"})


def _allowed_keys(parent: tuple[str | int, ...]) -> list[str]:
    """The keys the mapping at `parent` may have, for a misspelt key's hint."""
    model: type[BaseModel] = _SECTIONS.get(parent, ClusterConfig)
    if parent and parent[-1] == "timeouts":
        model = Timeouts
    elif len(parent) == 3 and parent[:2] == ("alerts", "sinks"):
        model = SinkSettings
    elif parent and parent[-1] == "master":
        model = Master
    elif len(parent) == 3 and parent[:2] == ("recovery", "actions"):
        model = RecoveryAction
    elif len(parent) >= 2 and parent[0] == "workers":
        model = Worker
    return list(model.model_fields)


_SECTIONS: dict[tuple[str | int, ...], type[BaseModel]] = {
    ("monitor",): MonitorSettings,
    ("exporter",): ExporterSettings,
    ("history",): HistorySettings,
    ("alerts",): AlertSettings,
    ("slurm",): SlurmSettings,
    ("recovery",): RecoverySettings,
    ("prometheus",): PrometheusSettings,
    ("monitor", "shard"): ShardSettings,
}
