"""Prometheus metrics rendered from the state file: the exporter never runs a check.

A custom collector reads the latest state on every scrape, so what Prometheus sees is what
`ugro health` sees: every configured node, one never checked as `unknown` (with only its
`ugro_node_status` series), and a node removed from the cluster disappears with its series.
Names follow Prometheus conventions: base units, `_ratio` for 0–1, `_seconds`, `_bytes`, `_info`.

The state file is untrusted input: a node whose data cannot be read or rendered is left out
and counted in `ugro_exporter_skipped_nodes`, and every other node is served as usual. The
daemon serves the metrics with `serve`, on `ugro.httpserver`'s bounded server.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from ugro.errors import StateError
from ugro.model import NodeStatus, number
from ugro.text import printable

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from prometheus_client.metrics_core import Metric

    from ugro.httpserver import BoundedServer, Page
    from ugro.model import NodeVerdict
    from ugro.store.state import ClusterState
    from ugro.verdict.rows import Row

log = logging.getLogger(__name__)

STATUSES = [s.value for s in NodeStatus]
MIB = 1024 * 1024

NODE, CHECK = ("node",), ("node", "check")
DISK, GPU = ("node", "path", "mountpoint"), ("node", "gpu", "gpu_uuid", "model")
_NA = " Absent when the driver reports N/A."
# Every per-node family: its help and label names, in the order they are served.
FAMILIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "ugro_node_up": ("1 when ugro could open a session to the node at its last check.", NODE),
    "ugro_node_health_ratio": ("The node's health score, 0-1 (the CLI shows it as 0-100).", NODE),
    "ugro_node_status": (
        "The node's status as shown by `ugro health`, one-hot over the statuses.",
        ("node", "status"),
    ),
    "ugro_node_last_check_timestamp_seconds": ("When the node was last checked (Unix time).", NODE),
    "ugro_check_success": (
        "1 when the check passed (ok or warn), 0 when it failed or is unknown.",
        CHECK,
    ),
    "ugro_check_status": (
        "The check's status on the Nagios scale: 0 ok, 1 warn, 2 fail, 3 unknown.",
        CHECK,
    ),
    "ugro_check_duration_seconds": ("How long the check took at the last check.", CHECK),
    "ugro_latency_seconds": (
        "Median TCP connect round trip from the control node to the node's SSH port.",
        NODE,
    ),
    "ugro_disk_free_bytes": ("Free space under each configured path.", DISK),
    "ugro_disk_size_bytes": ("Size of the filesystem under each configured path.", DISK),
    "ugro_node_version_info": (
        "1 for each software version the node reported (driver, cuda, torch, nccl, python).",
        ("node", "component", "version"),
    ),
    "ugro_gpu_temperature_celsius": ("GPU core temperature." + _NA, GPU),
    "ugro_gpu_utilization_ratio": ("GPU utilisation, 0-1." + _NA, GPU),
    "ugro_gpu_memory_used_bytes": ("GPU memory in use." + _NA, GPU),
    "ugro_gpu_memory_total_bytes": ("GPU memory in all." + _NA, GPU),
    "ugro_gpu_power_watts": ("GPU power draw." + _NA, GPU),
    "ugro_gpu_power_limit_watts": ("GPU power limit." + _NA, GPU),
    "ugro_host_load1": ("1-minute load average of the node.", NODE),
    "ugro_host_cpus": ("CPUs online on the node.", NODE),
    "ugro_host_memory_available_bytes": ("Memory available on the node (MemAvailable).", NODE),
    "ugro_host_memory_total_bytes": ("Memory of the node (MemTotal).", NODE),
}
GPU_READINGS = (
    ("ugro_gpu_temperature_celsius", "temperature_c", 1.0),
    ("ugro_gpu_utilization_ratio", "utilization_pct", 0.01),
    ("ugro_gpu_memory_used_bytes", "memory_used_mib", MIB),
    ("ugro_gpu_memory_total_bytes", "memory_total_mib", MIB),
    ("ugro_gpu_power_watts", "power_draw_w", 1.0),
    ("ugro_gpu_power_limit_watts", "power_limit_w", 1.0),
)

_SKIPPED = "ugro_exporter_skipped_nodes"
_SKIPPED_HELP = (
    "Nodes of the state file left out of this scrape because their data could not be read or "
    "rendered (absurd or malformed values); the log names each."
)

Sample = tuple[str, tuple[str, ...], float]


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
            yield _gauge(_SKIPPED, _SKIPPED_HELP, (), [((), 0.0)])
            return
        now = datetime.now(UTC)
        interval = state.daemon.interval_s if state.daemon else None
        if state.daemon and state.daemon.last_sweep_at:
            yield _gauge(
                "ugro_last_sweep_timestamp_seconds",
                "When the daemon settled its last sweep of node checks (Unix time).",
                (),
                [((), state.daemon.last_sweep_at.timestamp())],
            )
            yield _gauge(
                "ugro_sweep_duration_seconds",
                "How long the daemon's last sweep took, from its earliest node check's start.",
                (),
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
        samples, served, skipped = _samples(state, now, interval)
        for name, (doc, labels) in FAMILIES.items():
            yield _gauge(name, doc, labels, samples[name])
        yield _gauge(_SKIPPED, _SKIPPED_HELP, (), [((), float(skipped))])
        yield from _cordon_family(served)


def _samples(
    state: ClusterState, now: datetime, interval: float | None
) -> tuple[dict[str, list[tuple[tuple[str, ...], float]]], list[str], int]:
    """Every node's samples by family, the nodes served, and how many were skipped.

    The nodes are the configured ones (`ugro health`'s): one never checked is `unknown`, and
    one whose entry could not be read is skipped, not shown as never checked.
    """
    from ugro.verdict.rows import cluster_rows

    samples: dict[str, list[tuple[tuple[str, ...], float]]] = {name: [] for name in FAMILIES}
    served, skipped = [], len(state.rejected)
    configured = None if state.configured is None else set(state.configured)
    for row in cluster_rows(
        state.nodes,
        None if configured is None else configured - state.rejected.keys(),
        now,
        stale_after_s=state.stale_after_s,
        interval_s=interval,
    ):
        try:
            rendered = [_checked(sample) for sample in _node_samples(row)]
        except Exception as exc:  # noqa: BLE001 - one node's data must not cost the others theirs
            skipped += 1
            log.warning(
                "exporter left out node %r: cannot render its data (%r)", row.verdict.name, exc
            )
            continue
        served.append(row.verdict.name)
        for name, labels, value in rendered:
            samples[name].append((labels, value))
    return samples, served, skipped


def _checked(sample: tuple[str, tuple[object, ...], object]) -> Sample:
    """A sample whose labels are printable strings and whose value is finite, or ValueError.

    Labels are shown by people too (`curl /metrics`, Grafana legends): a GPU name's escape
    sequences must not reach their terminals (DESIGN §10).
    """
    name, labels, value = sample
    if not all(isinstance(label, str) for label in labels):
        raise ValueError(f"{name}: a label is not a string: {labels!r:.80}")
    return name, tuple(printable(str(label)) for label in labels), number(value)


def _node_samples(row: Row) -> Iterator[tuple[str, tuple[object, ...], object]]:
    """Every sample of one node, as (family, label values, value), unchecked."""
    v = row.verdict
    n = v.name
    for s in STATUSES:
        yield "ugro_node_status", (n, s), float(row.status.value == s)
    if not row.checked:
        # Configured, never checked: its status (unknown) is all there is to say.
        return
    yield "ugro_node_up", (n,), float(v.status is not NodeStatus.UNREACHABLE)
    yield "ugro_node_health_ratio", (n,), v.health_score / 100
    yield "ugro_node_last_check_timestamp_seconds", (n,), v.last_check.timestamp()
    yield from _check_samples(v)
    for d in v.disks:
        yield "ugro_disk_free_bytes", (n, d.path, d.mount), d.free_bytes
        yield "ugro_disk_size_bytes", (n, d.path, d.mount), d.total_bytes
    for component, version in v.versions.items():
        yield "ugro_node_version_info", (n, component, version), 1.0
    for g in v.gpus:
        key = (n, str(g.index), g.uuid, g.name)
        for name, field, scale in GPU_READINGS:
            reading = getattr(g, field)
            if reading is not None:
                yield name, key, reading * scale
    if v.host is not None:
        yield "ugro_host_load1", (n,), v.host.load_1m
        yield "ugro_host_cpus", (n,), v.host.cpus
        yield "ugro_host_memory_available_bytes", (n,), v.host.memory_available_bytes
        yield "ugro_host_memory_total_bytes", (n,), v.host.memory_total_bytes


def _check_samples(v: NodeVerdict) -> Iterator[tuple[str, tuple[object, ...], object]]:
    """The samples of a node's checks, unchecked."""
    n = v.name
    for c in v.checks:
        yield "ugro_check_success", (n, c.name), float(c.status.passed)
        yield "ugro_check_status", (n, c.name), float(c.status)
        yield "ugro_check_duration_seconds", (n, c.name), c.duration_ms / 1000
        if c.name == "latency" and c.value is not None:
            yield "ugro_latency_seconds", (n,), c.value / 1000


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
        NODE,
        [((n,), float(n in cordons)) for n in nodes],
    )


def _gauge(
    name: str, doc: str, labels: tuple[str, ...], samples: list[tuple[tuple[str, ...], float]]
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=list(labels))
    for values, value in samples:
        family.add_metric(list(values), value)
    return family


def registry(state_path: Path) -> CollectorRegistry:
    """A registry with only ugro's collector (no process or platform metrics of our own)."""
    from ugro import __version__

    reg = CollectorRegistry(auto_describe=False)
    reg.register(StateCollector(state_path, __version__))
    return reg


def pages(state_path: Path) -> dict[str, Page]:
    """The exporter's pages: /metrics, and an index at / that points there."""
    from prometheus_client.exposition import choose_encoder

    from ugro import httpserver

    metrics = registry(state_path)

    def exposition(accept: str) -> tuple[bytes, str]:
        encoder, content_type = choose_encoder(accept)
        return encoder(metrics), content_type

    def index(_accept: str) -> tuple[bytes, str]:
        return b"ugro exporter: the metrics are at /metrics\n", httpserver.TEXT

    return {"/metrics": exposition, "/": index}


def serve(state_path: Path, address: str, port: int) -> BoundedServer:
    """Serve the state's metrics at http://address:port/metrics from background threads.

    Raises OSError when the port cannot be bound; the caller stops the server with
    `shutdown()` and then `server_close()`.
    """
    from ugro import httpserver

    return httpserver.serve(address, port, pages(state_path))
