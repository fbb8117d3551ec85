"""The latency check's verdict from handshake samples, and its probe against a real socket."""

from __future__ import annotations

import asyncio
import socket

from ugro.checks import Context, latency
from ugro.config import Worker
from ugro.model import Status

NODE = Worker(name="n1", ip="127.0.0.1", max_latency_ms=100)


def test_median_within_limit_is_ok() -> None:
    """The median, not the worst probe, decides."""
    result = latency.evaluate([3.0, 250.0, 4.0], NODE)
    assert result.status is Status.OK
    assert result.value == 4.0
    assert result.unit == "ms"


def test_median_over_limit_fails() -> None:
    """A median above max_latency_ms fails and names both numbers."""
    result = latency.evaluate([150.0, 140.0, 160.0], NODE)
    assert result.status is Status.FAIL
    assert "150 ms exceeds 100 ms" in result.message


def test_some_probes_lost_warns() -> None:
    """Lost probes with a good median warn about packet loss."""
    result = latency.evaluate([3.0, "TCP connect to x:22 took over 0.67 s"], NODE)
    assert result.status is Status.WARN
    assert "1 of 2 probes failed" in result.message


def test_all_probes_lost_fails() -> None:
    """No successful probe fails with the error."""
    result = latency.evaluate(["refused", "refused", "refused"], NODE)
    assert result.status is Status.FAIL
    assert "refused" in result.message


class _Peer:
    def __init__(self, peer: tuple[str, int]) -> None:
        self.peer = peer


def test_probe_measures_a_real_listener() -> None:
    """Against a real loopback listener the probe is ok and sub-100 ms."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        peer = server.getsockname()
        result = asyncio.run(latency.CHECK.run(NODE, _Peer(peer), Context()))  # type: ignore[arg-type]
    assert result.status is Status.OK
    assert result.value is not None
    assert result.value < 100
