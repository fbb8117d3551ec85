"""Prometheus's HTTP API, read as untrusted input: one instant query at a time.

An answer is read up to MAX_RESPONSE_BYTES before a deadline, every label a bounded string,
every value finite; a series that is not is left out and counted. Every failure to get an
answer is a PrometheusError naming Prometheus's address (without any credentials in it) and
what to do. `ugro.fleet.prometheus` turns the answers into verdicts.
"""

from __future__ import annotations

import base64
import json
import math
import time
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ugro.errors import PrometheusError

if TYPE_CHECKING:
    from http.client import HTTPResponse

# A 10,000-node fleet with twenty checks a node answers in about 35 MB.
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
# Longer label values are not ugro's: node and check names are at most 63 characters.
MAX_LABEL_CHARS = 256


@dataclass(frozen=True, slots=True)
class Sample:
    """One series of an instant vector: its labels and its finite value."""

    labels: dict[str, str]
    value: float


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
