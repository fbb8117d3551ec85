"""Timed TCP handshakes to a node's SSH port, measured by the kernel where it can."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time

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
    measured = _kernel_rtt_ms(writer.get_extra_info("socket"))
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return elapsed if measured is None else measured


# struct tcp_info (linux/tcp.h): eight one-byte fields, then u32s; tcpi_rtt (microseconds) is
# the sixteenth u32.
_TCPI_RTT_OFFSET = 68


def _kernel_rtt_ms(sock: socket.socket | None) -> float | None:
    """The kernel's round-trip estimate of a just-connected socket, or None where unavailable."""
    option = getattr(socket, "TCP_INFO", None)
    if sock is None or option is None:
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, option, 104)
    except OSError:
        return None
    if len(info) < _TCPI_RTT_OFFSET + 4:
        return None
    return float(struct.unpack_from("I", info, _TCPI_RTT_OFFSET)[0]) / 1000
