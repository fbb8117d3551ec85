"""Spans of time as operators type them: `--max-age 5m`, `--since 24h`."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import click

_SPAN = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d|w)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def span_seconds(text: str) -> float:
    """'30s', '5m', '1h', '7d', '2w' or plain seconds ('90') as seconds; ValueError otherwise."""
    match = _SPAN.match(text.strip())
    if match:
        return float(match[1]) * _UNITS[match[2]]
    try:
        seconds = float(text)
    except ValueError:
        # Not chained: float()'s complaint repeats the text, which this message quotes.
        raise ValueError(
            f"expected a span like 30s, 5m, 1h or plain seconds; got {text!r}"
        ) from None
    if not 0 <= seconds < float("inf"):
        raise ValueError(f"expected a span of zero or more seconds; got {text!r}")
    return seconds


def parse_since(text: str, now: datetime) -> datetime:
    """'24h', '30m', '7d', '2w' before now, or an ISO 8601 time; ValueError otherwise."""
    match = _SPAN.match(text.strip())
    if match:
        return now - timedelta(seconds=span_seconds(text))
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        # Not chained: fromisoformat()'s complaint repeats the text, which this message quotes.
        raise ValueError(
            f"expected a span like 24h, 30m, 7d, or an ISO 8601 time; got {text!r}"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def span_option(_ctx: click.Context, param: click.Parameter, value: str) -> float:
    """Click callback: an option's span of time (30s, 5m, 1h, or plain seconds) in seconds."""
    try:
        return span_seconds(value)
    except ValueError as exc:
        name = param.opts[0] if param.opts else param.name
        raise click.BadParameter(f"{name}: {exc}", param=param) from exc
