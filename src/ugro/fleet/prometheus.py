"""The fleet's verdicts read from Prometheus's HTTP API, as the state file would give them.

Several monitors (shards) or node_exporter textfiles (node-local mode) each export part of
the fleet; Prometheus scrapes them all, so it alone knows every node. `read` asks its
`/api/v1/query` for the exporter's node families in one instant query and rebuilds a
`NodeVerdict` per node, which the CLI shows as it shows the state file's.

What the metrics cannot carry is said, not invented: a check's message is its status and
the monitor (`instance`) that has the details; the node's address is not exported. A node
that two monitors report (shards being resized) is taken from the newer check.

Prometheus's answer is untrusted input like a node's: read up to MAX_RESPONSE_BYTES, every
label a bounded string, every value finite and in range; a series that is not is left out
and counted. Every failure to get an answer is a PrometheusError naming Prometheus's
address (without any credentials in it) and what to do.
"""

from __future__ import annotations

import base64
import functools
import json
import math
import time
import urllib.parse
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ugro.errors import PrometheusError
from ugro.model import Alert, CheckResult, NodeStatus, NodeVerdict, Status

if TYPE_CHECKING:
    from collections.abc import Iterable
    from http.client import HTTPResponse

    from ugro.store.cordons import Cordon

# A 10,000-node fleet with twenty checks a node answers in about 35 MB.
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
# Longer label values are not ugro's: node and check names are at most 63 characters.
MAX_LABEL_CHARS = 256
# The families a verdict is rebuilt from (ugro.exporter.FAMILIES names them all).
FAMILIES = (
    "ugro_node_status",
    "ugro_node_health_ratio",
    "ugro_node_last_check_timestamp_seconds",
    "ugro_check_status",
    "ugro_node_version_info",
    "ugro_node_cordoned",
)
# Only the status that is set (one series of six), and the rest whole. `or` keeps a right-hand
# series unless one on the left has its labels: none does, the left's all have `status`.
QUERY = (
    'ugro_node_status == 1 or {__name__=~"'
    + "|".join(f for f in FAMILIES if f != "ugro_node_status")
    + '"}'
)
# Monitors scraped in the last hour that are not scraped now: their nodes are missing.
GONE_QUERY = (
    "group by (instance, job) (last_over_time(ugro_build_info[1h])) "
    "unless on (instance, job) group by (instance, job) (ugro_build_info)"
)
# A verdict read from Prometheus older than this is stale, whatever its monitor said: three
# of a node-local HealthCheckInterval of 300 s, a usual one. (A monitor's own staleness,
# after three of its intervals, already arrives as the exported status.)
STALE_AFTER_S = 900.0
# Unix times a verdict may carry: from 2000 to 2100.
_EARLIEST, _LATEST = 946_684_800.0, 4_102_444_800.0


@dataclass(frozen=True, slots=True)
class Sample:
    """One series of an instant vector: its labels and its finite value."""

    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class Fleet:
    """What Prometheus knows about the fleet now."""

    verdicts: dict[str, NodeVerdict]
    cordons: dict[str, Cordon]
    # For people: monitors that stopped reporting, series that were refused.
    notes: list[str] = field(default_factory=list)
    # Monitors scraped in the last hour and not now: part of the fleet has no verdict.
    missing_monitors: list[str] = field(default_factory=list)


def shown_url(url: str) -> str:
    """`url` without credentials or query, fit for a message."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "(not a URL)"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return urllib.parse.urlunsplit((parts.scheme, host + port, parts.path, "", ""))


def read(url: str, *, timeout_s: float, now: datetime | None = None) -> Fleet:
    """The fleet's verdicts from the Prometheus at `url`; PrometheusError when unreadable."""
    now = now or datetime.now(UTC)
    samples, unusable = query(url, QUERY, timeout_s=timeout_s)
    gone, _ = query(url, GONE_QUERY, timeout_s=timeout_s)
    fleet = rebuild(samples, now)
    if unusable:
        fleet.notes.append(
            f"{unusable} series from Prometheus left out: not labels and a finite value"
        )
    where = shown_url(url)
    if not fleet.verdicts and not gone:
        raise PrometheusError(
            f"Prometheus at {where} has no ugro verdicts: is it scraping the monitors' "
            "exporters (or node_exporter's textfiles)? See docs/scaling.md"
        )
    for sample in gone:
        monitor = _monitor(sample.labels)
        fleet.missing_monitors.append(monitor)
        fleet.notes.append(
            f"the monitor {monitor} reported within the last hour but not now: "
            "its nodes are missing here (is it running, and is Prometheus scraping it?)"
        )
    return fleet


def query(url: str, expr: str, *, timeout_s: float) -> tuple[list[Sample], int]:
    """The instant vector `expr` evaluates to at `url`, and how many series were unusable."""
    import urllib.error
    import urllib.request

    parts = _checked_url(url)
    where = shown_url(url)
    headers = {"Accept": "application/json"}
    if parts.username is not None:
        # urllib would take user:password@ for part of the host name; HTTP wants a header.
        login = (
            f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        )
        headers["Authorization"] = "Basic " + base64.b64encode(login.encode()).decode()
        parts = parts._replace(netloc=parts.netloc.rpartition("@")[2])
    base = urllib.parse.urlunsplit(parts._replace(query="", fragment="")).rstrip("/")
    target = base + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    request = urllib.request.Request(target, headers=headers)  # noqa: S310 - the operator's http(s) URL
    # The socket's timeout bounds each wait; the deadline bounds the whole answer, which a
    # server could otherwise drip out a byte at a time.
    deadline = time.monotonic() + timeout_s
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - same
            body = _read_bounded(response, deadline, where, timeout_s)
    except urllib.error.HTTPError as exc:
        raise PrometheusError(
            f"Prometheus at {where} answered HTTP {exc.code}{_api_error(exc)}"
        ) from exc
    except urllib.error.URLError as exc:
        reason = exc.reason
        why = getattr(reason, "strerror", None) or str(reason)
        raise PrometheusError(
            f"cannot reach Prometheus at {where}: {why}; is it running, and is the URL right?"
        ) from exc
    except TimeoutError as exc:
        raise PrometheusError(
            f"Prometheus at {where} did not answer within {timeout_s:g} s"
        ) from exc
    except OSError as exc:
        raise PrometheusError(
            f"cannot read from Prometheus at {where}: {exc.strerror or exc}"
        ) from exc
    return parse(body, where)


def _read_bounded(response: HTTPResponse, deadline: float, where: str, timeout_s: float) -> bytes:
    """The answer's body, at most MAX_RESPONSE_BYTES, by `deadline`; else PrometheusError."""
    chunks: list[bytes] = []
    size = 0
    # read1: what has arrived, so the deadline is looked at between the drips.
    while chunk := response.read1(1024 * 1024):
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise PrometheusError(
                f"Prometheus at {where} answered more than {MAX_RESPONSE_BYTES} bytes: "
                "not an answer ugro asked for"
            )
        if time.monotonic() > deadline:
            raise PrometheusError(
                f"Prometheus at {where} did not finish answering within {timeout_s:g} s"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _checked_url(url: str) -> urllib.parse.SplitResult:
    """`url` split, when it is an http(s) URL with a host; PrometheusError when not.

    Only http and https: urllib would also open file:// and ftp:// URLs.
    """
    problem = None
    try:
        parts = urllib.parse.urlsplit(url)
        _ = parts.port  # raises ValueError for a port out of range
    except ValueError as exc:
        problem = str(exc)
    else:
        if parts.scheme not in {"http", "https"}:
            problem = "it does not start with http:// or https://"
        elif not parts.hostname:
            problem = "it names no host"
        elif any(ord(c) < 32 or ord(c) == 127 for c in url):
            problem = "it holds a control character"
    if problem is not None:
        raise PrometheusError(
            f"the Prometheus URL {shown_url(url)!r} is not Prometheus's address ({problem}); "
            "expected e.g. http://prometheus:9090"
        )
    return parts


def _api_error(exc: Any) -> str:  # noqa: ANN401 - an HTTPError, whose body may be anything
    """`: <Prometheus's error>` from an error answer's JSON, or ""."""
    try:
        document = json.loads(exc.read(64 * 1024))
        return f": {str(document['error'])[:200]}"
    except (OSError, ValueError, LookupError, TypeError, RecursionError):
        # Any body at all: the status code is the message then.
        return ""


def parse(body: bytes, where: str) -> tuple[list[Sample], int]:
    """The samples of an `/api/v1/query` answer, and how many series were unusable.

    PrometheusError when it is not such an answer. A series with a label that is not a
    short string, or a value that is not a finite number, is left out and counted: what it
    would say cannot be trusted.
    """
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise PrometheusError(_not_the_api(where, f"not JSON: {exc}")) from exc
    if not isinstance(document, dict):
        raise PrometheusError(_not_the_api(where, "not a JSON object"))
    if document.get("status") == "error":
        raise PrometheusError(
            f"Prometheus at {where} refused the query: {str(document.get('error'))[:200]}"
        )
    data = document.get("data")
    if (
        document.get("status") != "success"
        or not isinstance(data, dict)
        or data.get("resultType") != "vector"
        or not isinstance(data.get("result"), list)
    ):
        raise PrometheusError(_not_the_api(where, "no vector of results in it"))
    samples = []
    for series in data["result"]:
        sample = _sample(series)
        if sample is not None:
            samples.append(sample)
    return samples, len(data["result"]) - len(samples)


def _not_the_api(where: str, why: str) -> str:
    return (
        f"Prometheus at {where} did not answer as its query API does ({why[:100]}); "
        "is that URL Prometheus's?"
    )


def _sample(series: object) -> Sample | None:
    """One series of a vector result; None when its labels or value are not usable."""
    if not isinstance(series, dict):
        return None
    labels, pair = series.get("metric"), series.get("value")
    if not isinstance(labels, dict) or not isinstance(pair, list) or len(pair) != 2:
        return None
    if not all(
        isinstance(k, str) and isinstance(v, str) and len(v) <= MAX_LABEL_CHARS
        for k, v in labels.items()
    ):
        return None
    value = _finite(pair[1])
    return None if value is None else Sample(labels, value)


def _finite(text: object) -> float | None:
    """A sample's value (Prometheus sends it as a string) when it is a finite number."""
    if not isinstance(text, str) or len(text) > 64:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


@dataclass
class _Partial:
    """What one monitor says about one node, gathered from its series."""

    node: str
    monitor: str
    status: NodeStatus | None = None
    ratio: float | None = None
    last_check: float | None = None
    checks: dict[str, Status] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    cordoned: bool = False
    refused: bool = False


def rebuild(samples: Iterable[Sample], now: datetime) -> Fleet:
    """Node verdicts from the exporter's series; the newer check where monitors disagree."""
    partials: dict[tuple[str, str], _Partial] = {}
    for s in samples:
        node = s.labels.get("node")
        name = s.labels.get("__name__")
        if not node or name not in _TAKERS:
            continue
        monitor = _monitor(s.labels)
        part = partials.setdefault((node, monitor), _Partial(node, monitor))
        if not _take(part, name, s):
            part.refused = True
    newest: dict[str, _Partial] = {}
    refused: set[str] = set()
    for part in partials.values():
        if part.refused or part.status is None or part.last_check is None or part.ratio is None:
            refused.add(part.node)
            continue
        held = newest.get(part.node)
        if held is None or (held.last_check or 0) < part.last_check:
            newest[part.node] = part
    fleet = Fleet(
        verdicts={
            n: _verdict(p, p.status, p.ratio, p.last_check)
            for n, p in sorted(newest.items())
            if p.status is not None and p.ratio is not None and p.last_check is not None
        },
        cordons={n: _cordon(p, now) for n, p in sorted(newest.items()) if p.cordoned},
    )
    refused -= set(newest)
    if refused:
        names = ", ".join(sorted(refused)[:10]) + (", ..." if len(refused) > 10 else "")
        fleet.notes.append(
            f"left out {len(refused)} node(s) whose series are incomplete or hold values "
            f"ugro's exporter does not write: {names}"
        )
    return fleet


def _take(part: _Partial, name: str, s: Sample) -> bool:
    """Fold one sample into `part`; False when its value or labels are out of range."""
    return _TAKERS[name](part, s.labels, s.value)


def _status(part: _Partial, labels: dict[str, str], value: float) -> bool:
    # One-hot: the series that is 1 names the status.
    try:
        status = NodeStatus(labels.get("status", ""))
    except ValueError:
        return False
    if value == 1:
        part.status = status
    return True


def _ratio(part: _Partial, _labels: dict[str, str], value: float) -> bool:
    part.ratio = value
    return 0 <= value <= 1


def _last_check(part: _Partial, _labels: dict[str, str], value: float) -> bool:
    part.last_check = value
    return _EARLIEST <= value <= _LATEST


def _check(part: _Partial, labels: dict[str, str], value: float) -> bool:
    check = labels.get("check")
    if not check or value not in (0, 1, 2, 3):
        return False
    part.checks[check] = Status(int(value))
    return True


def _version(part: _Partial, labels: dict[str, str], _value: float) -> bool:
    component, version = labels.get("component"), labels.get("version")
    if not component or version is None:
        return False
    part.versions[component] = version
    return True


def _cordoned(part: _Partial, _labels: dict[str, str], value: float) -> bool:
    part.cordoned = value == 1
    return value in (0, 1)


_TAKERS = {
    "ugro_node_status": _status,
    "ugro_node_health_ratio": _ratio,
    "ugro_node_last_check_timestamp_seconds": _last_check,
    "ugro_check_status": _check,
    "ugro_node_version_info": _version,
    "ugro_node_cordoned": _cordoned,
}


def _monitor(labels: dict[str, str]) -> str:
    """Which exporter a series came from, as Prometheus's target labels name it."""
    instance, job = labels.get("instance", "?"), labels.get("job")
    return f"{instance} (job {job})" if job else instance


def _verdict(part: _Partial, status: NodeStatus, ratio: float, last_check: float) -> NodeVerdict:
    """The node's verdict as its monitor exported it: `part` with its status, score and time."""
    core = [s for name, s in part.checks.items() if name in _core_checks()]
    passed = sum(s.passed for s in core)
    where = f"details on the monitor {part.monitor}"
    checks = tuple(
        CheckResult(name, result, f"{result.label} ({where})")
        for name, result in sorted(part.checks.items())
    )
    alerts = tuple(
        Alert("warning" if c.status is Status.WARN else "critical", f"{c.name}: {c.message}")
        for c in checks
        if c.status is not Status.OK
    )
    return NodeVerdict(
        name=part.node,
        # Not exported: the monitors know it.
        address="",
        status=status,
        health_score=round(ratio * 100, 1),
        pass_rate=passed / len(core) if core else 0.0,
        last_check=datetime.fromtimestamp(last_check, UTC),
        checks=checks,
        alerts=alerts,
        versions=dict(sorted(part.versions.items())),
    )


@functools.cache
def _core_checks() -> frozenset[str]:
    """The names of the five core checks the pass rate counts."""
    from ugro.checks import registry

    return frozenset(name for name, check in registry().items() if check.core)


def _cordon(part: _Partial, now: datetime) -> Cordon:
    """A cordon as far as Prometheus knows it: who placed it and why are on the monitor."""
    from ugro.store.cordons import Cordon

    return Cordon(
        node=part.node,
        by="ugro",
        reason=f"reported by the monitor {part.monitor} (`ugro cordon` there says why)",
        since=now,
    )
