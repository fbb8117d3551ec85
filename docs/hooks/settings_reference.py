# ruff: noqa: INP001  (mkdocs loads a hook by its path; docs/hooks is no package)
"""The settings reference of the docs, rendered from ugro's config models when the site is built.

A mkdocs hook (`hooks:` in mkdocs.yml): `on_files` adds the page `reference/settings.md`, which
`render()` makes from the pydantic models of `ugro.config.settings`. Every key's type, default
and limits are read from the models, so the page cannot drift from the code. What a key means
is one line of `DESCRIPTIONS`; tests/docs/test_settings_reference.py fails when a field has no
line, or a line names a field that no longer exists.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from ugro.config import settings

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from mkdocs.config.defaults import MkDocsConfig
    from mkdocs.structure.files import Files
    from pydantic.fields import FieldInfo

# Where the page appears in the site; mkdocs.yml's nav names it.
PAGE = "reference/settings.md"
# This file, named in the messages that ask for a description.
HERE = "docs/hooks/settings_reference.py"


class UndocumentedSettingError(Exception):
    """A setting of the config models that the page cannot describe; it fails the docs build."""


# What each key means, by `Model.field`. The type, default and limits come from the model.
DESCRIPTIONS: dict[str, str] = {
    "NodeSettings.user": "SSH login; unset: `~/.ssh/config`, then the current user",
    "NodeSettings.ssh_port": "SSH port; unset: `~/.ssh/config`, then 22",
    "NodeSettings.gpus": "GPUs the node must have; 0 for a node without GPUs (the GPU health "
    "checks skip it)",
    "NodeSettings.python": "the interpreter, or command prefix (`conda run -n train python`, "
    "`/opt/venv/bin/python`), of the environment with PyTorch; split into words like a shell "
    "would, never interpreted by the remote shell",
    "NodeSettings.disk_paths": "absolute paths that need room",
    "NodeSettings.min_disk_gb": "free space each path needs, GB = 10⁹ bytes",
    "NodeSettings.max_latency_ms": "largest acceptable median TCP round trip to the node's SSH "
    "port",
    "NodeSettings.pass_rate": "share of the enabled core checks that must pass",
    "NodeSettings.degraded_score": "below this score a passing node is `degraded`",
    "NodeSettings.timeouts": "seconds per step; a worker's `timeouts` overrides the top "
    "level's key by key",
    "NodeSettings.host_key_policy": "`strict`: the key must be in known_hosts; `accept-new`: "
    "trust on first use and record it, then verify; `off`: never verify (only on a network you "
    "fully trust)",
    "NodeSettings.identity_file": "private key to offer; unset: `~/.ssh/config` and the usual "
    "keys, and ssh-agent's",
    "NodeSettings.known_hosts": "file the host keys are checked against; unset: "
    "`~/.ssh/known_hosts`",
    "NodeSettings.checks": "checks to run; leave one out to switch it off (a check that does "
    "not apply to a node skips itself)",
    "NodeSettings.deep": "run the deep PyTorch probe on every check of this node "
    "(`ugro check --deep` does it once)",
    "NodeSettings.master": "the training rendezvous each worker checks it can reach (`rendezvous`)",
    "NodeSettings.gpu_temp_warning_c": "a GPU at or above this warns (`temperature`)",
    "NodeSettings.gpu_temp_critical_c": "a GPU at or above this fails; must be above the warning",
    "NodeSettings.xid_lookback_s": "the most kernel log the `xid` check reads (all of it on a "
    "first check)",
    "NodeSettings.xid_hold_s": "the least: a hardware Xid keeps failing `xid` this long, so the "
    "daemon can confirm it; 0 to see each Xid once",
    "ClusterConfig.scheduler": "`slurm`: a cordon is also a Slurm drain; `none`: cordons stay "
    "ugro's own",
    "ClusterConfig.slurm": "how ugro reaches Slurm",
    "ClusterConfig.monitor": "the daemon's schedule, hysteresis and log",
    "ClusterConfig.exporter": "the daemon's Prometheus endpoint",
    "ClusterConfig.history": "the SQLite history behind `ugro history`",
    "ClusterConfig.alerts": "when alerts are raised and where they go",
    "ClusterConfig.recovery": "cordons and remediation the daemon does on its own",
    "ClusterConfig.workers": "the nodes of the cluster",
    "Worker.name": "the node's name: letters, digits, `.`, `_` or `-`, at most 63",
    "Worker.ip": "an IP address or a hostname (which `~/.ssh/config` `Host` entries can match)",
    "Worker.gpu": "expected GPU model: every word must appear in the name nvidia-smi reports "
    "(`RTX 4090` matches `NVIDIA GeForce RTX 4090`); another model warns",
    "Worker.vram_gb": "informational",
    "Worker.transport": "`ssh`, or `local` for the control node itself",
    "Worker.slurm_node": "the node's name in Slurm, when it is not `name`",
    "Timeouts.connect": "the SSH connection and handshake, before any check runs",
    "Master.addr": "torchrun's `MASTER_ADDR`: an IP address or a hostname",
    "Master.port": "torchrun's `MASTER_PORT`",
    "MonitorSettings.interval_s": "a normal node is checked this often",
    "MonitorSettings.confirm_s": "a node whose verdict just changed is re-checked after this",
    "MonitorSettings.fail_after": "bad checks in a row before a node is shown unhealthy or "
    "unreachable",
    "MonitorSettings.recover_after": "good checks in a row before it is shown healthy again",
    "MonitorSettings.backoff_after": "unreachable this many checks in a row: back off",
    "MonitorSettings.max_backoff_s": "the backoff doubles from 2 × `interval_s` up to this",
    "MonitorSettings.log_level": "the least severe record logged",
    "MonitorSettings.log_file": "unset: `$XDG_STATE_HOME/ugro/monitor.log`",
    "MonitorSettings.log_max_bytes": "the log is rotated at this size",
    "MonitorSettings.log_backups": "rotated logs kept",
    "ExporterSettings.enabled": "serve `/metrics` from the daemon",
    "ExporterSettings.address": "address to listen on; `0.0.0.0` lets a remote Prometheus "
    "scrape it",
    "ExporterSettings.port": "port to listen on",
    "ExporterSettings.dashboard": "serve the web dashboard (docs/dashboard.md) at `/`",
    "ExporterSettings.token": "token every dashboard request must carry; without one the dashboard "
    "answers on loopback only",
    "MonitorSettings.max_connects": "SSH connects opened at once, fleet-wide (pdsh's fan-out); "
    "a node's connect timeout starts at its own connect",
    "MonitorSettings.shard": "this monitor's slice of the nodes when several monitors share "
    "a fleet; unset: every node",
    "ShardSettings.index": "which slice this monitor checks, from 0 to `count` − 1",
    "ShardSettings.count": "how many monitors share the fleet",
    "PrometheusSettings.url": "the Prometheus whose metrics `ugro hosts` and `ugro preflight` read "
    "the fleet's verdicts from (`--from-prometheus` on the command line)",
    "PrometheusSettings.timeout_s": "how long one query to it may take",
    "ClusterConfig.prometheus": "where the fleet's verdicts are read from Prometheus",
    "HistorySettings.enabled": "keep the history",
    "HistorySettings.retention_days": "samples older than this are deleted, once an hour",
    "HistorySettings.path": "unset: `$XDG_STATE_HOME/ugro/history.db`",
    "AlertSettings.cluster": "the `cluster` label and the name in messages",
    "AlertSettings.repeat_interval_s": "remind this often while an alert fires",
    "AlertSettings.flap_changes": "status changes within `flap_window_s` that make a node flapping",
    "AlertSettings.flap_window_s": "the window `flap_changes` are counted in",
    "AlertSettings.flap_settle_s": "a flapping node has settled after this long without a change",
    "AlertSettings.group_fraction": "this share of the nodes going down in one sweep is one "
    "`nodes_down` alert",
    "AlertSettings.keep_resolved_s": "how long `ugro alerts` lists resolved alerts",
    "AlertSettings.sinks": "where alerts are delivered",
    "SinkSettings.name": "the sink's name (`ugro alerts test --sink NAME`)",
    "SinkSettings.type": "`apprise` (Slack, Discord, ntfy, email, …), `webhook` (a POST of the "
    "alert as JSON), `alertmanager` (API v2) or `command` (the alert as JSON on stdin)",
    "SinkSettings.min_severity": "the least severe alert delivered",
    "SinkSettings.nodes": "only alerts of these nodes (shell-style patterns); cluster-wide "
    "alerts always pass; unset: every node",
    "SinkSettings.urls": "apprise URLs (`apprise`)",
    "SinkSettings.url": "`http://` or `https://` URL (`webhook`, `alertmanager`)",
    "SinkSettings.headers": "HTTP headers sent with each POST; never shown in messages",
    "SinkSettings.command": "program and arguments, run without a shell (`command`)",
    "SinkSettings.timeout_s": "each delivery's deadline",
    "SlurmSettings.scontrol": "the scontrol program, or a prefix such as `sudo -n scontrol`",
    "SlurmSettings.timeout_s": "each scontrol call's deadline",
    "RecoverySettings.auto_cordon": "cordon nodes confirmed unhealthy or unreachable",
    "RecoverySettings.recover_after": "passing checks in a row before ugro lifts its own cordon",
    "RecoverySettings.max_cordoned_fraction": "never cordon automatically beyond this share of "
    "the nodes (the breaker)",
    "RecoverySettings.dry_run": "actions only log and record what they would run",
    "RecoverySettings.actions": "remediation commands, by failing check",
    "RecoveryAction.name": "the action's name: letters, digits, `.`, `_` or `-`",
    "RecoveryAction.check": "the action runs when this check fails on a node confirmed bad",
    "RecoveryAction.run": "a POSIX shell command, as written",
    "RecoveryAction.where": "`node`: over the node's SSH session; `control`: here, with "
    "`UGRO_NODE` and `UGRO_ADDRESS` in its environment",
    "RecoveryAction.max_attempts": "attempts per `window_s`; then ugro escalates",
    "RecoveryAction.window_s": "the window attempts are counted in",
    "RecoveryAction.cooldown_s": "at least this long between attempts on one node",
    "RecoveryAction.timeout_s": "then the command is stopped",
}


@dataclass(frozen=True)
class Section:
    """One table of the page: the keys of one model, found at `path` in cluster.yaml."""

    # Where the keys are written (`alerts.sinks[]`), or, for those at the top level, a title.
    path: str
    model: type[BaseModel]
    # What the section says before its table (the model's own docstring follows it).
    intro: str = ""
    top_level: bool = False

    @property
    def heading(self) -> str:
        """The section's title."""
        return self.path if self.top_level else f"`{self.path}`"

    @property
    def anchor(self) -> str:
        """The id of the section's heading, for links from the keys that hold it."""
        return self.path.lower().replace("[]", "").replace(".", "-").replace(" ", "-")


def sections() -> list[Section]:
    """Every part of cluster.yaml, in the order the page shows them."""
    return [
        Section(
            "Every node",
            settings.NodeSettings,
            "Set once at the top level of cluster.yaml, and overridden per worker.",
            top_level=True,
        ),
        Section("workers[]", settings.Worker, "Besides the settings above, each worker has:"),
        Section("timeouts", settings.Timeouts, "One key per check, from the check registry."),
        Section("master", settings.Master),
        Section("Top level only", settings.ClusterConfig, top_level=True),
        Section("monitor", settings.MonitorSettings),
        Section("monitor.shard", settings.ShardSettings),
        Section("exporter", settings.ExporterSettings),
        Section("history", settings.HistorySettings),
        Section("alerts", settings.AlertSettings),
        Section("alerts.sinks[]", settings.SinkSettings),
        Section("prometheus", settings.PrometheusSettings),
        Section("slurm", settings.SlurmSettings),
        Section("recovery", settings.RecoverySettings),
        Section("recovery.actions[]", settings.RecoveryAction),
    ]


def own_fields(model: type[BaseModel]) -> dict[str, FieldInfo]:
    """The fields a section lists: a worker's and the whole file's inherit the node settings'."""
    inherited = (
        settings.NodeSettings.model_fields
        if model is not settings.NodeSettings and issubclass(model, settings.NodeSettings)
        else {}
    )
    return {name: info for name, info in model.model_fields.items() if name not in inherited}


def description(model: type[BaseModel], name: str) -> str:
    """What a key means: its line of DESCRIPTIONS; a check's timeout says which check."""
    if model is settings.Timeouts and name in settings.ALL_CHECKS:
        return f"the `{name}` check ([checks](../checks.md))"
    key = f"{model.__name__}.{name}"
    if key not in DESCRIPTIONS:
        # The build stops here: a key nobody described is a gap in the reference.
        raise UndocumentedSettingError(f"{key}: no description; add one to DESCRIPTIONS in {HERE}")
    return DESCRIPTIONS[key]


def _choice(values: tuple[object, ...], *, plural: bool) -> str:
    """A field that takes one of a few values: a check name, or one of those listed."""
    if set(values) == set(settings.ALL_CHECKS):
        return "check names" if plural else "a check name"
    return "one of " + ", ".join(f"`{value}`" for value in values)


# The plain types of cluster.yaml in words: one value, and several (the items of a list).
_PLAIN: dict[object, tuple[str, str]] = {
    int: ("integer", "integers"),
    float: ("number", "numbers"),
    str: ("text", "texts"),
    bool: ("true or false", "true or false"),
}


def type_name(annotation: object, *, plural: bool = False) -> str:
    """A field's type in words, linking a nested part of the file to its section."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(arg) for arg in args if arg is not type(None)) + " or unset"
    if origin is typing.Literal:
        return _choice(args, plural=plural)
    if origin is list:
        return f"list of {type_name(args[0], plural=True)}"
    if origin is dict:
        return f"map of {type_name(args[0])} to {type_name(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        section = next((s for s in sections() if s.model is annotation), None)
        if section is None:
            raise UndocumentedSettingError(
                f"{annotation.__name__}: a part of cluster.yaml with no section; add it to "
                f"sections() in {HERE}"
            )
        return f"[{section.heading}](#{section.anchor})"
    return _PLAIN[annotation][plural]


def yaml_value(value: object) -> str:
    """A default as it would be written in cluster.yaml."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return "[" + ", ".join(yaml_value(item) for item in value) + "]"
    return str(value)


def default(info: FieldInfo) -> str:
    """A field's default as a table cell; a nested part's defaults are in its own section."""
    if info.default_factory is not None:
        value = typing.cast("Callable[[], object]", info.default_factory)()
    elif info.default is PydanticUndefined:
        return "required"
    else:
        value = info.default
    if value is None:
        return "unset"
    if isinstance(value, BaseModel):
        return "see its section"
    if value in ([], {}):
        return "none"
    return f"`{yaml_value(value)}`"


# The bounds pydantic keeps in a field's metadata (annotated-types' Gt, Ge, ..., one attribute
# each), as the page says them.
_BOUNDS = {
    "gt": "> {}",
    "ge": "≥ {}",
    "lt": "< {}",
    "le": "≤ {}",
    "min_length": "at least {} item(s)",
    "max_length": "at most {} items",
}


def limits(info: FieldInfo) -> str:
    """The bounds validation holds a value to, as a table cell."""
    found = []
    for constraint in info.metadata:
        for attribute, text in _BOUNDS.items():
            bound = getattr(constraint, attribute, None)
            if bound is not None:
                found.append(text.format(yaml_value(bound)))
    return ", ".join(found)


def rows(section: Section) -> Iterator[str]:
    """The lines of one section's table."""
    yield "| key | type | default | limits | meaning |"
    yield "|---|---|---|---|---|"
    for name, info in own_fields(section.model).items():
        cells = [
            f"`{name}`",
            type_name(info.annotation),
            default(info),
            limits(info),
            description(section.model, name),
        ]
        yield "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def render() -> str:
    """The whole page, as Markdown."""
    lines = [
        "# Settings reference",
        "",
        "Every key of cluster.yaml. This page is generated from ugro's config models when the",
        "docs are built, so each type, default and limit is the code's own.",
        "[Configuration](../configuration.md) says how the file is found and validated.",
    ]
    for section in sections():
        lines += ["", f"## {section.heading} {{ #{section.anchor} }}", ""]
        if section.intro:
            lines += [section.intro, ""]
        lines += [(section.model.__doc__ or "").strip(), "", *rows(section)]
    return "\n".join(lines) + "\n"


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add the settings reference to the pages mkdocs builds (mkdocs' `on_files` event)."""
    from mkdocs.structure.files import File

    files.append(File.generated(config, PAGE, content=render()))
    return files
