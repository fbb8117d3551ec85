"""cluster.yaml → validated, resolved node settings; every problem reported at once, by line.

Defaults are set once at top level and overridden per worker. Validation happens here and
only here: the rest of ugro trusts a `Node`.
"""

from __future__ import annotations

import difflib
import ipaddress
import logging
import re
import shlex
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ugro import paths
from ugro.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

CheckName = Literal[
    "ssh",
    "gpu",
    "torch",
    "disk",
    "latency",
    "ecc",
    "remap",
    "xid",
    "throttle",
    "pcie",
    "processes",
    "temperature",
    "rendezvous",
    "deep",
]
# The five checks of the phase document: the 90 % rule counts these (README, "Verdict").
CORE_CHECKS: tuple[CheckName, ...] = ("ssh", "gpu", "torch", "disk", "latency")
# GPU health signals; they run only on nodes that expect GPUs.
GPU_HEALTH_CHECKS: tuple[CheckName, ...] = (
    "ecc",
    "remap",
    "xid",
    "throttle",
    "pcie",
    "processes",
    "temperature",
)
# `rendezvous` runs only where `master` is set, `deep` only with `deep: true` or --deep.
ALL_CHECKS: tuple[CheckName, ...] = (*CORE_CHECKS, *GPU_HEALTH_CHECKS, "rendezvous", "deep")
# What a node runs when its `checks` list is not given. The GPU health checks skip nodes with
# `gpus: 0`; `rendezvous` runs only where `master` is set, `deep` only with `deep: true`.
DEFAULT_CHECKS: tuple[CheckName, ...] = (*CORE_CHECKS, *GPU_HEALTH_CHECKS, "rendezvous", "deep")
LOCAL_CHECKS: tuple[CheckName, ...] = tuple(c for c in DEFAULT_CHECKS if c != "latency")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)
_DOTTED = re.compile(r"^[0-9.]+$")

Seconds = Annotated[float, Field(gt=0, le=3600)]

log = logging.getLogger(__name__)

# From the exporter range of Prometheus's default port allocations; 9090, 9091, 9093 (the
# Prometheus stack), 9100 (node_exporter), 9115 (blackbox) and 9400 (dcgm-exporter) are taken
# on the machines ugro runs on.
EXPORTER_PORT = 9936


class _Model(BaseModel):
    # strict: YAML's `yes` must not become 1 GPU, nor `port: true` port 1.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _address(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if _DOTTED.match(value) or not _HOSTNAME.match(value):
            raise ValueError(
                f"expected an IPv4/IPv6 address or a hostname, got {value!r}"
            ) from None
    return value


def _unique(names: list[str], what: str) -> None:
    """Raise when two of `names` are the same."""
    if len(set(names)) != len(names):
        raise ValueError(f"{what} names must be unique")


def _command(value: str, if_empty: str) -> str:
    """`value` when it splits like a shell command line into at least one word."""
    try:
        argv = shlex.split(value)
    except ValueError as exc:
        raise ValueError(f"cannot split into a command: {exc}") from None
    if not argv:
        raise ValueError(if_empty)
    return value


class Timeouts(_Model):
    """Seconds each step may take before it counts as failed."""

    connect: Seconds = 5
    ssh: Seconds = 5
    gpu: Seconds = 10
    # Importing torch cold (CUDA libraries from a network filesystem) takes tens of seconds.
    torch: Seconds = 30
    disk: Seconds = 10
    # Per TCP probe; the latency check makes three.
    latency: Seconds = 2
    ecc: Seconds = 10
    remap: Seconds = 10
    xid: Seconds = 10
    throttle: Seconds = 10
    pcie: Seconds = 10
    processes: Seconds = 10
    temperature: Seconds = 10
    rendezvous: Seconds = 10
    # CUDA init and a few matmuls per GPU; cold imports dominate.
    deep: Seconds = 60


class Master(_Model):
    """The training rendezvous (torchrun's MASTER_ADDR and MASTER_PORT) workers must reach."""

    addr: str
    port: int = Field(default=29500, ge=1, le=65535)

    @field_validator("addr")
    @classmethod
    def _valid_address(cls, value: str) -> str:
        return _address(value)


class NodeSettings(_Model):
    """Settings a worker inherits from the top level of cluster.yaml and may override."""

    user: str | None = None
    ssh_port: int | None = Field(default=None, ge=1, le=65535)
    gpus: int = Field(default=1, ge=0, le=64)
    python: str = "python3"
    disk_paths: list[str] = Field(default_factory=lambda: ["/"], min_length=1)
    min_disk_gb: float = Field(default=10, ge=0)
    max_latency_ms: float = Field(default=100, gt=0)
    pass_rate: float = Field(default=0.9, gt=0, le=1)
    degraded_score: float = Field(default=80, ge=0, le=100)
    timeouts: Timeouts = Timeouts()
    host_key_policy: Literal["strict", "accept-new", "off"] = "strict"
    identity_file: str | None = None
    known_hosts: str | None = None
    checks: list[CheckName] = Field(default_factory=lambda: list(DEFAULT_CHECKS), min_length=1)
    deep: bool = False
    master: Master | None = None
    gpu_temp_warning_c: float = Field(default=85, gt=0, le=150)
    gpu_temp_critical_c: float = Field(default=92, gt=0, le=150)
    # A first check (no earlier one to count from) reads this much of the kernel log for Xids.
    xid_lookback_s: float = Field(default=3600, gt=0, le=30 * 86400)
    # A hardware Xid keeps failing the xid check this long, so the daemon can confirm it.
    xid_hold_s: float = Field(default=600, ge=0, le=30 * 86400)

    @field_validator("host_key_policy", mode="before")
    @classmethod
    def _unquoted_off(cls, value: object) -> object:
        # YAML 1.1 reads a bare `off` as false; the operator meant the policy.
        return "off" if value is False else value

    @field_validator("python")
    @classmethod
    def _python_is_argv(cls, value: str) -> str:
        return _command(value, "must name an interpreter, e.g. python3 or /opt/venv/bin/python")

    @field_validator("disk_paths")
    @classmethod
    def _absolute_paths(cls, value: list[str]) -> list[str]:
        for path in value:
            if not path.startswith("/"):
                raise ValueError(f"expected absolute paths, got {path!r}")
        return value

    @field_validator("checks")
    @classmethod
    def _unique_checks(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("lists a check twice")
        return value


class Worker(NodeSettings):
    """One node of the cluster as written in cluster.yaml."""

    name: str
    ip: str
    gpu: str | None = None
    vram_gb: float | None = Field(default=None, gt=0)
    transport: Literal["ssh", "local"] = "ssh"
    # The node's name in Slurm, when it differs from `name` (scheduler: slurm).
    slurm_node: str | None = None

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                "expected letters, digits, '.', '_' or '-' "
                "(at most 63, starting with a letter or digit)"
            )
        return value

    @field_validator("slurm_node")
    @classmethod
    def _valid_slurm_node(cls, value: str | None) -> str | None:
        if value is not None and not _NAME.match(value):
            raise ValueError(
                "expected a Slurm node name: letters, digits, '.', '_' or '-' "
                "(at most 63, starting with a letter or digit)"
            )
        return value

    @field_validator("ip")
    @classmethod
    def _valid_address(cls, value: str) -> str:
        return _address(value)


class MonitorSettings(_Model):
    """How the daemon sweeps: timing, hysteresis, backoff and its log."""

    interval_s: float = Field(default=30, gt=0, le=86400)
    confirm_s: float = Field(default=5, gt=0, le=3600)
    fail_after: int = Field(default=2, ge=1, le=100)
    recover_after: int = Field(default=2, ge=1, le=100)
    backoff_after: int = Field(default=3, ge=1, le=100)
    max_backoff_s: float = Field(default=300, gt=0, le=86400)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_file: str | None = None
    log_max_bytes: int = Field(default=10_000_000, ge=10_000)
    log_backups: int = Field(default=5, ge=0, le=100)


class ExporterSettings(_Model):
    """Where the daemon serves Prometheus metrics."""

    enabled: bool = True
    address: str = "127.0.0.1"
    port: int = Field(default=EXPORTER_PORT, ge=1, le=65535)

    @field_validator("address")
    @classmethod
    def _ip_address(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(
                f"expected an IP address to listen on (127.0.0.1; 0.0.0.0 for all), got {value!r}"
            ) from None
        return value


class HistorySettings(_Model):
    """What the daemon keeps in the SQLite history, and for how long."""

    enabled: bool = True
    retention_days: float = Field(default=30, gt=0, le=3650)
    path: str | None = None


class SinkSettings(_Model):
    """One place alerts are delivered to."""

    name: str
    type: Literal["apprise", "webhook", "alertmanager", "command"]
    min_severity: Literal["warning", "critical"] = "warning"
    nodes: list[str] | None = None
    urls: list[str] = Field(default_factory=list)
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    command: list[str] | None = None
    timeout_s: float = Field(default=10, gt=0, le=300)

    @model_validator(mode="after")
    def _fields_for_type(self) -> SinkSettings:
        needed = {"apprise": "urls", "webhook": "url", "alertmanager": "url", "command": "command"}
        field_name = needed[self.type]
        if not getattr(self, field_name):
            raise ValueError(f"a {self.type} sink needs `{field_name}`")
        for url in [self.url] if self.type in ("webhook", "alertmanager") else []:
            if not (url or "").startswith(("http://", "https://")):
                raise ValueError("`url` must start with http:// or https://")
        return self


class AlertSettings(_Model):
    """When alerts are raised, repeated and grouped, and where they go."""

    cluster: str = "default"
    repeat_interval_s: float = Field(default=4 * 3600, gt=0)
    flap_changes: int = Field(default=4, ge=2)
    flap_window_s: float = Field(default=3600, gt=0)
    group_fraction: float = Field(default=0.5, gt=0, le=1)
    keep_resolved_s: float = Field(default=86400, ge=0)
    sinks: list[SinkSettings] = Field(default_factory=list)

    @field_validator("sinks")
    @classmethod
    def _unique_sink_names(cls, value: list[SinkSettings]) -> list[SinkSettings]:
        _unique([sink.name for sink in value], "sink")
        return value


class SlurmSettings(_Model):
    """How ugro reaches Slurm's controller when `scheduler: slurm`."""

    # A program, or a command prefix split like a shell would (`sudo -n scontrol`): draining
    # needs a Slurm operator or root, which the monitor may not be.
    scontrol: str = "scontrol"
    timeout_s: float = Field(default=10, gt=0, le=300)

    @field_validator("scontrol")
    @classmethod
    def _scontrol_is_argv(cls, value: str) -> str:
        return _command(value, "must name the scontrol program, e.g. scontrol or /usr/bin/scontrol")


class RecoveryAction(_Model):
    """A command that may fix a failing check, and how often it may be tried."""

    name: str
    check: CheckName
    run: str = Field(min_length=1)
    where: Literal["node", "control"] = "node"
    max_attempts: int = Field(default=3, ge=1, le=100)
    window_s: float = Field(default=3600, gt=0, le=30 * 86400)
    cooldown_s: float = Field(default=600, ge=0, le=86400)
    timeout_s: float = Field(default=60, gt=0, le=3600)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("expected letters, digits, '.', '_' or '-' (at most 63)")
        return value

    @model_validator(mode="after")
    def _reachable(self) -> RecoveryAction:
        # A failing ssh check means no session: nothing can run on the node itself.
        if self.check == "ssh" and self.where == "node":
            raise ValueError(
                "an action for the ssh check cannot run on the node (it has no session); "
                "use `where: control`, e.g. a power cycle through the BMC"
            )
        return self


class RecoverySettings(_Model):
    """What the daemon does about bad nodes: cordons, remediation, and their limits."""

    auto_cordon: bool = False
    recover_after: int = Field(default=3, ge=1, le=100)
    max_cordoned_fraction: float = Field(default=0.5, ge=0, le=1)
    dry_run: bool = True
    actions: list[RecoveryAction] = Field(default_factory=list)

    @field_validator("actions")
    @classmethod
    def _unique_action_names(cls, value: list[RecoveryAction]) -> list[RecoveryAction]:
        _unique([action.name for action in value], "action")
        return value


class ClusterConfig(NodeSettings):
    """The whole file: top-level defaults, the daemon's settings and the workers."""

    scheduler: Literal["none", "slurm"] = "none"
    slurm: SlurmSettings = SlurmSettings()
    monitor: MonitorSettings = MonitorSettings()
    exporter: ExporterSettings = ExporterSettings()
    history: HistorySettings = HistorySettings()
    alerts: AlertSettings = AlertSettings()
    recovery: RecoverySettings = RecoverySettings()
    workers: list[Worker] = Field(min_length=1)

    def nodes(self) -> list[Worker]:
        """Workers with every unset setting taken from the top level."""
        inherited = set(NodeSettings.model_fields) - {"timeouts"}
        resolved = []
        for worker in self.workers:
            update: dict[str, Any] = {
                name: getattr(self, name) for name in inherited - worker.model_fields_set
            }
            update["timeouts"] = self.timeouts.model_copy(
                update={k: getattr(worker.timeouts, k) for k in worker.timeouts.model_fields_set}
            )
            resolved.append(worker.model_copy(update=update))
        return resolved


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


def local_default() -> Config:
    """The embedded default cluster: this machine alone, checked without SSH."""
    name = socket.gethostname().split(".")[0] or "localhost"
    if not _NAME.match(name):
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
    )


def parse_file(path: Path) -> ClusterConfig:
    """Read and validate one file; raise ConfigError listing every problem found."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file (create one with `ugro init`)") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, expected a YAML file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return parse_text(text, str(path))


def parse_text(text: str, origin: str) -> ClusterConfig:
    """Validate YAML text; `origin` names it in messages."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{origin}:{mark.line + 1}:{mark.column + 1}" if mark else origin
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"{where}: YAML syntax error: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin}: YAML syntax error: {exc}") from None
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
    """Problems only a worker's resolved settings show: warning not below critical."""
    problems = []
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
        if name is None:
            continue
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
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
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
    message = str(error["msg"])
    if message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    elif "input" in error and not isinstance(error["input"], dict | list):
        message = f"{message}, got {error['input']!r}"
    return message


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
}
