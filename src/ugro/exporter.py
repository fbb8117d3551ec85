"""Prometheus metrics rendered from the state file: the exporter never runs a check.

A custom collector reads the latest state on every scrape, so what Prometheus sees is what
`ugro health` sees; a node removed from the cluster disappears with its series. Names follow
Prometheus conventions: base units, `_ratio` for 0–1, `_seconds`, `_bytes`, `_info`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from ugro.errors import StateError
from ugro.model import NodeStatus

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from pathlib import Path
    from wsgiref.simple_server import WSGIServer

    from prometheus_client.metrics_core import Metric

    from ugro.model import NodeVerdict

log = logging.getLogger(__name__)

STATUSES = [s.value for s in NodeStatus]
MIB = 1024 * 1024


class StateCollector(Collector):
    """Renders the state file at `path` as metric families, afresh on every scrape."""

    def __init__(self, path: Path, version: str) -> None:
        """Read the state at `path`; report `version` in ugro_build_info."""
        self.path = path
        self.version = version

    def collect(self) -> Iterator[Metric]:
        """Every metric family, read from the state file now."""
        from ugro.store.state import StateStore

        info = InfoMetricFamily("ugro_build", "The ugro version serving these metrics.")
        info.add_metric([], {"version": self.version})
        yield info
        readable = GaugeMetricFamily(
            "ugro_state_readable", "1 when the state file could be read, 0 when not."
        )
        try:
            state = StateStore(self.path).read()
        except StateError as exc:
            log.warning("exporter cannot read the state: %s", exc)
            readable.add_metric([], 0)
            yield readable
            return
        readable.add_metric([], 1)
        yield readable
        if state is None:
            return
        now = datetime.now(UTC)
        interval = state.daemon.interval_s if state.daemon else None
        if state.daemon and state.daemon.last_sweep_at:
            yield _gauge(
                "ugro_last_sweep_timestamp_seconds",
                "When the daemon settled its last sweep of node checks (Unix time).",
                [],
                [((), state.daemon.last_sweep_at.timestamp())],
            )
            yield _gauge(
                "ugro_sweep_duration_seconds",
                "How long the daemon's last sweep took, from its earliest node check's start.",
                [],
                [((), state.daemon.last_sweep_duration_s or 0.0)],
            )
        if state.daemon:
            errors = CounterMetricFamily(
                "ugro_daemon_errors",
                "Failures the daemon survived: contained (logged with a traceback) or a log "
                "record it could not write.",
                labels=["kind"],
            )
            errors.add_metric(["contained"], state.daemon.errors)
            errors.add_metric(["logging"], state.daemon.log_errors)
            yield errors
        yield from _node_families(list(state.nodes.values()), now, state.stale_after_s, interval)
        yield from _cordon_family(list(state.nodes))


def _cordon_family(nodes: list[str]) -> Iterator[Metric]:
    """ugro_node_cordoned from the cordons file; left out when that cannot be read."""
    from ugro.store.cordons import CordonStore

    try:
        cordons = CordonStore().read()
    except StateError as exc:
        log.warning("exporter cannot read the cordons: %s", exc)
        return
    yield _gauge(
        "ugro_node_cordoned",
        "1 when the node is cordoned (kept out of launches), by a person or by ugro.",
        ["node"],
        [((n,), float(n in cordons)) for n in nodes],
    )


def _gauge(
    name: str, doc: str, labels: list[str], samples: Sequence[tuple[tuple[str, ...], float]]
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for values, value in samples:
        family.add_metric(list(values), value)
    return family


def _node_families(
    verdicts: list[NodeVerdict], now: datetime, stale_after_s: float, interval_s: float | None
) -> Iterator[Metric]:
    from ugro.verdict.rows import Row

    rows = [Row.of(v, now, stale_after_s, interval_s) for v in verdicts]
    node = ["node"]
    yield _gauge(
        "ugro_node_up",
        "1 when ugro could open a session to the node at its last check.",
        node,
        [((v.name,), float(v.status is not NodeStatus.UNREACHABLE)) for v in verdicts],
    )
    yield _gauge(
        "ugro_node_health_ratio",
        "The node's health score, 0-1 (the CLI shows it as 0-100).",
        node,
        [((v.name,), v.health_score / 100) for v in verdicts],
    )
    yield _gauge(
        "ugro_node_status",
        "The node's status as shown by `ugro health`, one-hot over the statuses.",
        ["node", "status"],
        [((r.verdict.name, s), float(r.status.value == s)) for r in rows for s in STATUSES],
    )
    yield _gauge(
        "ugro_node_last_check_timestamp_seconds",
        "When the node was last checked (Unix time).",
        node,
        [((v.name,), v.last_check.timestamp()) for v in verdicts],
    )
    checks = [(v.name, c) for v in verdicts for c in v.checks]
    yield _gauge(
        "ugro_check_success",
        "1 when the check passed (ok or warn), 0 when it failed or is unknown.",
        ["node", "check"],
        [((n, c.name), float(c.status.passed)) for n, c in checks],
    )
    yield _gauge(
        "ugro_check_status",
        "The check's status on the Nagios scale: 0 ok, 1 warn, 2 fail, 3 unknown.",
        ["node", "check"],
        [((n, c.name), float(c.status)) for n, c in checks],
    )
    yield _gauge(
        "ugro_check_duration_seconds",
        "How long the check took at the last check.",
        ["node", "check"],
        [((n, c.name), c.duration_ms / 1000) for n, c in checks],
    )
    yield _gauge(
        "ugro_latency_seconds",
        "Median TCP connect round trip from the control node to the node's SSH port.",
        node,
        [((n,), c.value / 1000) for n, c in checks if c.name == "latency" and c.value is not None],
    )
    yield _gauge(
        "ugro_disk_free_bytes",
        "Free space under each configured path.",
        ["node", "path", "mountpoint"],
        [((v.name, d.path, d.mount), float(d.free_bytes)) for v in verdicts for d in v.disks],
    )
    yield _gauge(
        "ugro_disk_size_bytes",
        "Size of the filesystem under each configured path.",
        ["node", "path", "mountpoint"],
        [((v.name, d.path, d.mount), float(d.total_bytes)) for v in verdicts for d in v.disks],
    )
    yield _gauge(
        "ugro_node_version_info",
        "1 for each software version the node reported (driver, cuda, torch, nccl, python).",
        ["node", "component", "version"],
        [((v.name, k, version), 1.0) for v in verdicts for k, version in v.versions.items()],
    )
    yield from _gpu_families(verdicts)
    yield from _host_families(verdicts)


def _gpu_families(verdicts: list[NodeVerdict]) -> Iterator[Metric]:
    labels = ["node", "gpu", "gpu_uuid", "model"]
    gpus = [((v.name, str(g.index), g.uuid, g.name), g) for v in verdicts for g in v.gpus]
    readings = (
        ("ugro_gpu_temperature_celsius", "GPU core temperature.", "temperature_c", 1.0),
        ("ugro_gpu_utilization_ratio", "GPU utilisation, 0-1.", "utilization_pct", 0.01),
        ("ugro_gpu_memory_used_bytes", "GPU memory in use.", "memory_used_mib", MIB),
        ("ugro_gpu_memory_total_bytes", "GPU memory in all.", "memory_total_mib", MIB),
        ("ugro_gpu_power_watts", "GPU power draw.", "power_draw_w", 1.0),
        ("ugro_gpu_power_limit_watts", "GPU power limit.", "power_limit_w", 1.0),
    )
    for name, doc, field, scale in readings:
        samples = [
            (key, float(getattr(g, field)) * scale)
            for key, g in gpus
            if getattr(g, field) is not None
        ]
        yield _gauge(name, doc + " Absent when the driver reports N/A.", labels, samples)


def _host_families(verdicts: list[NodeVerdict]) -> Iterator[Metric]:
    hosts = [(v.name, v.host) for v in verdicts if v.host is not None]
    yield _gauge(
        "ugro_host_load1",
        "1-minute load average of the node.",
        ["node"],
        [((n,), h.load_1m) for n, h in hosts],
    )
    yield _gauge(
        "ugro_host_cpus",
        "CPUs online on the node.",
        ["node"],
        [((n,), float(h.cpus)) for n, h in hosts],
    )
    yield _gauge(
        "ugro_host_memory_available_bytes",
        "Memory available on the node (MemAvailable).",
        ["node"],
        [((n,), float(h.memory_available_bytes)) for n, h in hosts],
    )
    yield _gauge(
        "ugro_host_memory_total_bytes",
        "Memory of the node (MemTotal).",
        ["node"],
        [((n,), float(h.memory_total_bytes)) for n, h in hosts],
    )


def registry(state_path: Path) -> CollectorRegistry:
    """A registry with only ugro's collector (no process or platform metrics of our own)."""
    from ugro import __version__

    reg = CollectorRegistry(auto_describe=False)
    reg.register(StateCollector(state_path, __version__))
    return reg


def serve(state_path: Path, address: str, port: int) -> WSGIServer:
    """Serve /metrics on address:port in a background thread; the caller shuts it down."""
    from prometheus_client import start_http_server

    server, _ = start_http_server(port, addr=address, registry=registry(state_path))
    return server
