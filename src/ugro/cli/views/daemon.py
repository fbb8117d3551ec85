"""What `ugro daemon status` shows a person."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from ugro.text import printable


def _say(line: str) -> None:
    """One line of the report: it quotes node names, paths and sinks' errors, so printable."""
    click.echo(printable(line))


def print_status(report: dict[str, Any]) -> None:
    """`ugro daemon status` for a person: the report of `service.status_report`."""
    if report["note"]:
        _say(report["note"])
    if not report["running"]:
        _say("the monitor is not running; start it with `ugro daemon start`")
    else:
        _say(f"the monitor is running: pid {report['pid']}, up {_duration(report['uptime_s'])}")
        _say(f"started by: {report['started_by'] or 'not known (its environment is hidden)'}")
        if report["last_sweep_at"]:
            last = datetime.fromisoformat(report["last_sweep_at"])
            age = (datetime.now(UTC) - last).total_seconds()
            _say(
                f"last sweep: {_duration(age)} ago, took {report['last_sweep_duration_s']:.2f} s "
                f"({_count(report['sweeps'], 'sweep')}, {_count(report['checks'], 'node check')})"
            )
        else:
            _say("last sweep: none yet")
        if report["errors"] or report["log_errors"]:
            _say(
                f"errors: {report['errors']} contained, {report['log_errors']} log records "
                "not written (see the log)"
            )
    if report["nodes"]:
        _say(
            "nodes: " + ", ".join(f"{n} {status}" for status, n in sorted(report["nodes"].items()))
        )
    if report["alerts_firing"] is not None:
        _say(f"alerts firing: {report['alerts_firing']} (`ugro alerts` lists them)")
    for name, stats in report["delivery"].items():
        error = f", last error: {stats['last_error']}" if stats.get("last_error") else ""
        _say(
            f"sink {name}: {stats.get('sent', 0)} sent, {stats.get('retries', 0)} retries, "
            f"{stats.get('failed', 0)} failed{error}"
        )
    _say(f"log: {report['log_file']}")


def _count(n: int, what: str) -> str:
    """`1 sweep`, `2 sweeps`."""
    return f"{n} {what}{'' if n == 1 else 's'}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"
