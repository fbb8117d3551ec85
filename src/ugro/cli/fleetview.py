"""`--from-prometheus`: `ugro health`, `hosts` and `preflight` over the whole fleet.

Where shards or node-local checks report to a Prometheus, it alone holds every node's
verdict; these helpers read them (`ugro.fleet.prometheus`) in place of the state file and
hand the commands the same verdicts and cordons the state file would. docs/scaling.md.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from ugro.config import Config
    from ugro.model import NodeVerdict
    from ugro.store.cordons import Cordon

F = TypeVar("F", bound="Callable[..., Any]")

# How long `ugro health` waits for Prometheus: it does not read cluster.yaml, where
# `prometheus.timeout_s` is (it would cost pydantic and YAML, and the instant start).
HEALTH_TIMEOUT_S = 10.0
ENVVAR = "UGRO_PROMETHEUS_URL"


def from_prometheus_option(command: F) -> F:
    """The `--from-prometheus URL` option (also $UGRO_PROMETHEUS_URL), as `prometheus_url`."""
    option = click.option(
        "--from-prometheus",
        "prometheus_url",
        metavar="URL",
        envvar=ENVVAR,
        help="Read the whole fleet's verdicts from the Prometheus at URL (which scrapes every "
        f"monitor) instead of this machine's state file [default: ${ENVVAR}].",
    )
    return option(command)


@dataclass(frozen=True)
class Known:
    """The verdicts and cordons a command judges, from Prometheus or the state file."""

    verdicts: Mapping[str, NodeVerdict]
    cordons: Mapping[str, Cordon]
    stale_after_s: float
    interval_s: float | None
    # Said to people: where the verdicts came from, what is missing.
    notes: list[str]
    # False when part of the fleet has no verdict (a monitor stopped reporting).
    complete: bool = True


def url_of(cfg: Config, option: str | None) -> str | None:
    """The Prometheus to read: the option's (or $UGRO_PROMETHEUS_URL), else `prometheus.url`."""
    return option or cfg.prometheus.url


def read(url: str, timeout_s: float) -> Known:
    """The fleet's verdicts from the Prometheus at `url`; PrometheusError when unreadable."""
    from ugro.fleet import promapi, prometheus

    fleet = prometheus.read(url, timeout_s=timeout_s)
    notes = [f"read from Prometheus at {promapi.shown_url(url)}", *fleet.notes]
    return Known(
        verdicts=fleet.verdicts,
        cordons=fleet.cordons,
        stale_after_s=prometheus.STALE_AFTER_S,
        interval_s=None,
        notes=notes,
        complete=not fleet.missing_monitors,
    )


def health(url: str, *, output: str) -> NoReturn:
    """`ugro health --from-prometheus URL`: the fleet's table or JSON, and its exit code."""
    from ugro.cli.views import print_json
    from ugro.cli.views import verdicts as view
    from ugro.model import worst_exit_code
    from ugro.verdict import report
    from ugro.verdict.rows import Row, exit_code, findings

    known = read(url, HEALTH_TIMEOUT_S)
    now = datetime.now(UTC)
    rows = [
        Row.of(v, now, known.stale_after_s, cordons=known.cordons) for v in known.verdicts.values()
    ]
    found = findings(rows)
    # A monitor that stopped reporting leaves nodes without a verdict: unknown, at least.
    code = exit_code(rows) if known.complete else worst_exit_code([exit_code(rows), 3])
    if output == "json":
        document = report.document(
            rows, source="prometheus", now=now, notes=known.notes, found=found
        )
        print_json({**document, "exit_code": code})
    else:
        # The notes name the Prometheus read; no files were.
        view.show(
            rows,
            output=output,
            source="prometheus",
            now=now,
            notes=known.notes,
            found=found,
            sources="",
        )
    sys.exit(code)
