"""The kernel's round-trip time of a TCP socket, and timed TCP handshakes to a node's SSH port.

The handshakes are the latency check's fallback, for a session without a TCP socket of its
own: each one makes the node's sshd fork a pre-authentication child and log an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from dataclasses import dataclass

from ugro.errors import ConnectTimeout, TransportError


def reason(exc: BaseException) -> str:
    """What a socket or library error says, for a message; its type when it says nothing."""
    said = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)
    return str(said) or type(exc).__name__


async def tcp_connect_ms(host: str, port: int, timeout: float) -> float:
    """Round trip of one TCP handshake to host:port in ms; raise TransportError on failure.

    The kernel's own measurement (TCP_INFO) is used where there is one: a clock read in
    Python would also count the time this busy event loop took to notice the connection,
    which during a sweep of a hundred nodes is far more than the network's share.
    """
    start = time.perf_counter()
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except TimeoutError as exc:
        raise ConnectTimeout(f"TCP connect to {host}:{port} took over {timeout:g} s") from exc
    except OSError as exc:
        raise TransportError(f"TCP connect to {host}:{port} failed: {reason(exc)}") from exc
    elapsed = (time.perf_counter() - start) * 1000
    measured = counters(writer.get_extra_info("socket"))
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return elapsed if measured is None else measured.rtt_ms


@dataclass(frozen=True, slots=True)
class Counters:
    """What the kernel says of one TCP connection, as TCP_INFO reads it."""

    # The smoothed round-trip time (tcpi_rtt), in ms.
    rtt_ms: float
    # Segments sent and segments sent again over the connection's life (tcpi_segs_out,
    # tcpi_total_retrans); None where the kernel's tcp_info is too old to have them.
    sent: int | None
    resent: int | None


@dataclass(frozen=True, slots=True)
class RoundTrip:
    """A connection's round trip, and how many segments it resent since the last reading."""

    rtt_ms: float
    # Since the previous reading of the same connection (its whole life at the first one);
    # None where the kernel does not count them.
    sent: int | None = None
    resent: int | None = None


# struct tcp_info (linux/tcp.h): eight one-byte fields, then u32s: tcpi_rtt (microseconds) is
# the sixteenth, tcpi_total_retrans the twenty-fourth; then four u64s and tcpi_segs_out.
_TCPI_RTT_OFFSET = 68
_TCPI_TOTAL_RETRANS_OFFSET = 100
_TCPI_SEGS_OUT_OFFSET = 136
_TCPI_READ = 144


def counters(sock: socket.socket | None) -> Counters | None:
    """The kernel's counters of a TCP socket; None where there are none.

    None for no socket, a socket that is not TCP (a pipe or a Unix socket from a
    ProxyCommand), or a kernel without TCP_INFO.
    """
    option = getattr(socket, "TCP_INFO", None)
    if sock is None or option is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, option, _TCPI_READ)
    except OSError:
        return None
    if len(info) < _TCPI_RTT_OFFSET + 4:
        return None
    rtt_ms = float(struct.unpack_from("I", info, _TCPI_RTT_OFFSET)[0]) / 1000
    if len(info) < _TCPI_SEGS_OUT_OFFSET + 4:
        return Counters(rtt_ms, None, None)
    resent = struct.unpack_from("I", info, _TCPI_TOTAL_RETRANS_OFFSET)[0]
    sent = struct.unpack_from("I", info, _TCPI_SEGS_OUT_OFFSET)[0]
    return Counters(rtt_ms, sent, resent)


def since(now: Counters, before: Counters | None) -> RoundTrip:
    """`now`'s round trip with the segments sent and resent after `before` was read.

    The counts are 32 bits and wrap: a count that went down is no count at all.
    """
    sent, resent = now.sent, now.resent
    if before is not None and sent is not None and resent is not None:
        if before.sent is None or before.resent is None:
            sent = resent = None
        else:
            sent, resent = sent - before.sent, resent - before.resent
            if sent < 0 or resent < 0:
                sent = resent = None
    return RoundTrip(now.rtt_ms, sent, resent)
