"""The settings of cluster.yaml as pydantic models: what each key means, its default and limits.

Validation happens here and only here: the rest of ugro trusts a `Worker`. The check names
`checks:` accepts and the keys of `timeouts:` come from the check registry
(`ugro.checks.registry`), so a new check needs no change here.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

from ugro.checks import registry
from ugro.config import validators

_CHECKS = registry()

if TYPE_CHECKING:
    # Any name of the registry; a type checker cannot read the registry, so it sees a str.
    CheckName = str
else:
    # pydantic validates against the registry's names, and lists them when one is wrong.
    CheckName = Literal[tuple(_CHECKS)]

# Every check, in the order they run and are shown.
ALL_CHECKS: tuple[CheckName, ...] = tuple(_CHECKS)
# The five checks of the phase document: the 90 % rule counts these (README, "Verdict").
CORE_CHECKS: tuple[CheckName, ...] = tuple(n for n, c in _CHECKS.items() if c.core)
# GPU health signals; they run only on nodes that expect GPUs.
GPU_HEALTH_CHECKS: tuple[CheckName, ...] = tuple(n for n, c in _CHECKS.items() if c.gpu_health)
# What a node runs when its `checks` list is not given: all of them, since a check that does
# not apply skips itself (the GPU health checks on nodes with `gpus: 0`, `rendezvous` where
# `master` is not set, `deep` without `deep: true`).
DEFAULT_CHECKS: tuple[CheckName, ...] = ALL_CHECKS
# What the embedded default cluster (this machine, no SSH) runs.
LOCAL_CHECKS: tuple[CheckName, ...] = tuple(n for n in DEFAULT_CHECKS if _CHECKS[n].local)

# The types of alert sink; `ugro.alerts.sinks` maps each one to its implementation.
SinkType = Literal["apprise", "webhook", "alertmanager", "command"]
# The setting each type of sink delivers to, without which it cannot work.
SINK_FIELDS: dict[SinkType, Literal["urls", "url", "command"]] = {
    "apprise": "urls",
    "webhook": "url",
    "alertmanager": "url",
    "command": "command",
}

Seconds = Annotated[float, Field(gt=0, le=3600)]

# SSH connects in flight at once, fleet-wide: pdsh's fan-out is 32 and clush's 64; at 32 a
# thousand nodes connect in a few seconds (docs/benchmarks.md, "Fleet scale").
DEFAULT_MAX_CONNECTS = 32

# From the exporter range of Prometheus's default port allocations; 9090, 9091, 9093 (the
# Prometheus stack), 9100 (node_exporter), 9115 (blackbox) and 9400 (dcgm-exporter) are taken
# on the machines ugro runs on.
EXPORTER_PORT = 9936


class _Model(BaseModel):
    # strict: YAML's `yes` must not become 1 GPU, nor `port: true` port 1.
    # No empty strings, and no infinity or NaN: every number has finite bounds.
    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=True, str_min_length=1, allow_inf_nan=False
    )


class _TimeoutsBase(_Model):
    """Seconds each step may take before it counts as failed: connecting, then each check."""

    # The SSH handshake, before any check runs.
    connect: Seconds = 5

    if TYPE_CHECKING:
        # A check's seconds. The fields are made from the registry at run time (`Timeouts`),
        # so a type checker cannot list them.
        def __getattr__(self, check: str) -> float: ...


if TYPE_CHECKING:
    Timeouts = _TimeoutsBase
else:
    # One field per check of the registry, in its order, defaulting to the check's own
    # `default_timeout_s` (where each default is explained).
    Timeouts = create_model(
        "Timeouts",
        __base__=_TimeoutsBase,
        __module__=__name__,
        __doc__=_TimeoutsBase.__doc__,
        **{name: (Seconds, check.default_timeout_s) for name, check in _CHECKS.items()},
    )


class Master(_Model):
    """The training rendezvous (torchrun's MASTER_ADDR and MASTER_PORT) workers must reach."""

    addr: str
    port: int = Field(default=29500, ge=1, le=65535)

    @field_validator("addr")
    @classmethod
    def _valid_address(cls, value: str) -> str:
        return validators.address(value)


class NodeSettings(_Model):
    """Settings a worker inherits from the top level of cluster.yaml and may override."""

    user: str | None = None
    ssh_port: int | None = Field(default=None, ge=1, le=65535)
    gpus: int = Field(default=1, ge=0, le=64)
    python: str = "python3"
    disk_paths: list[str] = Field(default_factory=lambda: ["/"], min_length=1, max_length=64)
    min_disk_gb: float = Field(default=10, ge=0, le=1_000_000)
    max_latency_ms: float = Field(default=100, gt=0, le=60_000)
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

    # Before the type's checks, so an empty value is told what to name, not only "too short".
    @field_validator("python", mode="before")
    @classmethod
    def _python_is_argv(cls, value: object) -> object:
        if not isinstance(value, str):
            return value  # the type check says what is wrong
        return validators.command(
            value, "must name an interpreter, e.g. python3 or /opt/venv/bin/python"
        )

    @field_validator("disk_paths")
    @classmethod
    def _absolute_paths(cls, value: list[str]) -> list[str]:
        return validators.disk_paths(value)

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
    vram_gb: float | None = Field(default=None, gt=0, le=100_000)
    transport: Literal["ssh", "local"] = "ssh"
    # The node's name in Slurm, when it differs from `name` (scheduler: slurm).
    slurm_node: str | None = None

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not validators.valid_name(value):
            raise ValueError(
                "expected letters, digits, '.', '_' or '-' "
                "(at most 63, starting with a letter or digit)"
            )
        return value

    @field_validator("slurm_node")
    @classmethod
    def _valid_slurm_node(cls, value: str | None) -> str | None:
        if value is not None and not validators.valid_name(value):
            raise ValueError(
                "expected a Slurm node name: letters, digits, '.', '_' or '-' "
                "(at most 63, starting with a letter or digit)"
            )
        return value

    @field_validator("ip")
    @classmethod
    def _valid_address(cls, value: str) -> str:
        return validators.address(value)

    def with_deep(self) -> Worker:
        """This node with the deep probe on (`ugro check --deep`), as `deep: true` would."""
        checks = self.checks if "deep" in self.checks else [*self.checks, "deep"]
        return self.model_copy(update={"deep": True, "checks": checks})


class ShardSettings(_Model):
    """This monitor's slice of the nodes when several share a fleet (docs/scaling.md).

    A monitor checks the nodes whose name hashes to `index` modulo `count`
    (`ugro.config.shards`); the other monitors, with the same workers and the other indexes,
    check the rest.
    """

    index: int = Field(ge=0, le=9999)
    count: int = Field(ge=1, le=10000)

    @model_validator(mode="after")
    def _index_below_count(self) -> ShardSettings:
        if self.index >= self.count:
            raise ValueError(f"index must be below count (0 to {self.count - 1}), got {self.index}")
        return self


class MonitorSettings(_Model):
    """How the daemon sweeps: timing, hysteresis, backoff and its log."""

    interval_s: float = Field(default=30, gt=0, le=86400)
    confirm_s: float = Field(default=5, gt=0, le=3600)
    fail_after: int = Field(default=2, ge=1, le=100)
    recover_after: int = Field(default=2, ge=1, le=100)
    backoff_after: int = Field(default=3, ge=1, le=100)
    max_backoff_s: float = Field(default=300, gt=0, le=86400)
    # A bound on the control node's fan-out, not on any one node: each connect goes to a
    # different node's sshd, whose MaxStartups (10:30:100) counts its own clients only.
    max_connects: int = Field(default=DEFAULT_MAX_CONNECTS, ge=1, le=1024)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_file: str | None = None
    log_max_bytes: int = Field(default=10_000_000, ge=10_000, le=10**12)
    log_backups: int = Field(default=5, ge=0, le=100)
    # None: this monitor checks every worker.
    shard: ShardSettings | None = None


class ExporterSettings(_Model):
    """Where the daemon serves Prometheus metrics, and the web dashboard beside them."""

    enabled: bool = True
    address: str = "127.0.0.1"
    port: int = Field(default=EXPORTER_PORT, ge=1, le=65535)
    # The dashboard (docs/dashboard.md) at / on the same address and port.
    dashboard: bool = True
    # Asked of every dashboard request; without one the dashboard is served on loopback only.
    token: str | None = Field(default=None, min_length=16, max_length=256)

    @field_validator("token")
    @classmethod
    def _token_one_line(cls, value: str | None) -> str | None:
        if value is not None:
            validators.no_control(value)
            if " " in value or ";" in value or "," in value:
                raise ValueError("expected a token without spaces, commas or semicolons")
        return value

    @field_validator("address")
    @classmethod
    def _ip_address(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError as exc:
            raise ValueError(
                f"expected an IP address to listen on (127.0.0.1; 0.0.0.0 for all), got {value!r}"
            ) from exc
        return value


class PrometheusSettings(_Model):
    """Where `ugro health`, `hosts` and `preflight` read the fleet's verdicts, when not locally.

    Set where shards (or node-local checks) report to a Prometheus: the whole fleet's
    verdicts are read from its HTTP API (`ugro.fleet.prometheus`) instead of this machine's
    state file.
    """

    url: str | None = None
    timeout_s: float = Field(default=10, gt=0, le=300)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        validators.no_control(value)
        if not value.startswith(("http://", "https://")):
            raise ValueError("expected Prometheus's address, starting with http:// or https://")
        return value


class HistorySettings(_Model):
    """What the daemon keeps in the SQLite history, and for how long."""

    enabled: bool = True
    retention_days: float = Field(default=30, gt=0, le=3650)
    path: str | None = None


class SinkSettings(_Model):
    """One place alerts are delivered to."""

    name: str
    type: SinkType
    min_severity: Literal["warning", "critical"] = "warning"
    nodes: list[str] | None = Field(default=None, max_length=10_000)
    urls: list[str] = Field(default_factory=list, max_length=100)
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict, max_length=100)
    command: list[str] | None = Field(default=None, max_length=1000)
    timeout_s: float = Field(default=10, gt=0, le=300)

    @field_validator("url")
    @classmethod
    def _url_one_line(cls, value: str | None) -> str | None:
        return None if value is None else validators.no_control(value)

    @field_validator("urls")
    @classmethod
    def _urls_one_line(cls, value: list[str]) -> list[str]:
        for url in value:
            validators.no_control(url)
        return value

    @field_validator("headers")
    @classmethod
    def _valid_headers(cls, value: dict[str, str]) -> dict[str, str]:
        return validators.headers(value)

    @model_validator(mode="after")
    def _fields_for_type(self) -> SinkSettings:
        field_name = SINK_FIELDS[self.type]
        if not getattr(self, field_name):
            raise ValueError(f"a {self.type} sink needs `{field_name}`")
        if field_name == "url" and not (self.url or "").startswith(("http://", "https://")):
            raise ValueError("`url` must start with http:// or https://")
        return self


class AlertSettings(_Model):
    """When alerts are raised, repeated and grouped, and where they go."""

    cluster: str = "default"
    repeat_interval_s: float = Field(default=4 * 3600, gt=0, le=30 * 86400)
    flap_changes: int = Field(default=4, ge=2, le=1000)
    flap_window_s: float = Field(default=3600, gt=0, le=30 * 86400)
    # A flapping node has settled after this long without a status change.
    flap_settle_s: float = Field(default=300, gt=0, le=86400)
    group_fraction: float = Field(default=0.5, gt=0, le=1)
    keep_resolved_s: float = Field(default=86400, ge=0, le=365 * 86400)
    sinks: list[SinkSettings] = Field(default_factory=list, max_length=100)

    @field_validator("sinks")
    @classmethod
    def _unique_sink_names(cls, value: list[SinkSettings]) -> list[SinkSettings]:
        validators.unique([sink.name for sink in value], "sink")
        return value


class SlurmSettings(_Model):
    """How ugro reaches Slurm's controller when `scheduler: slurm`."""

    # A program, or a command prefix split like a shell would (`sudo -n scontrol`): draining
    # needs a Slurm operator or root, which the monitor may not be.
    scontrol: str = "scontrol"
    timeout_s: float = Field(default=10, gt=0, le=300)

    # Before the type's checks, so an empty value is told what to name, not only "too short".
    @field_validator("scontrol", mode="before")
    @classmethod
    def _scontrol_is_argv(cls, value: object) -> object:
        if not isinstance(value, str):
            return value  # the type check says what is wrong
        return validators.command(
            value, "must name the scontrol program, e.g. scontrol or /usr/bin/scontrol"
        )


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
        if not validators.valid_name(value):
            raise ValueError("expected letters, digits, '.', '_' or '-' (at most 63)")
        return value

    @model_validator(mode="after")
    def _reachable(self) -> RecoveryAction:
        # A node some checks fail on has no session (ssh): nothing can run on the node itself.
        if self.where == "node" and not _CHECKS[self.check].session_when_failing:
            raise ValueError(
                f"an action for the {self.check} check cannot run on the node (it has no "
                "session); use `where: control`, e.g. a power cycle through the BMC"
            )
        return self


class RecoverySettings(_Model):
    """What the daemon does about bad nodes: cordons, remediation, and their limits."""

    auto_cordon: bool = False
    recover_after: int = Field(default=3, ge=1, le=100)
    max_cordoned_fraction: float = Field(default=0.5, ge=0, le=1)
    dry_run: bool = True
    actions: list[RecoveryAction] = Field(default_factory=list, max_length=1000)

    @field_validator("actions")
    @classmethod
    def _unique_action_names(cls, value: list[RecoveryAction]) -> list[RecoveryAction]:
        validators.unique([action.name for action in value], "action")
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
    prometheus: PrometheusSettings = PrometheusSettings()
    workers: list[Worker] = Field(min_length=1, max_length=100_000)

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
