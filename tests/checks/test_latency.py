"""The latency check: the live connection's round trip, its fallback probes, and where it runs."""

from __future__ import annotations

import asyncio
import math
import socket

import pytest

from ugro.checks import Context, latency, reachability
from ugro.config import Worker
from ugro.errors import InvalidOutput
from ugro.model import CommandResult, Evaluation, Status
from ugro.transport.tcp import Counters, RoundTrip, counters, since

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
    """A session without a TCP socket of its own, connected to `peer`."""

    def __init__(self, peer: tuple[str, int]) -> None:
        self.peer = peer

    def round_trip(self) -> None:
        """None: as a connection through a ProxyCommand has."""

    async def run(self, command: str, *, timeout: float) -> CommandResult:
        """Every command answers at once."""
        del command, timeout
        return CommandResult(0, "")


def test_probe_measures_a_real_listener() -> None:
    """Against a real loopback listener the probe is ok and sub-100 ms."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        peer = server.getsockname()
        result = asyncio.run(latency.CHECK.run(NODE, _Peer(peer), Context()))
    assert result.status is Status.OK
    assert result.value is not None
    assert result.value < 100


def test_connection_round_trip_within_limit_is_ok() -> None:
    """The kernel's estimate under max_latency_ms passes, shown with its decimals."""
    result = latency.evaluate_connection(RoundTrip(0.043, sent=40, resent=0), NODE)
    assert result.status is Status.OK
    assert result.message == "SSH connection round trip 0.04 ms"
    assert result.value == 0.043
    assert result.unit == "ms"


def test_connection_round_trip_over_limit_fails() -> None:
    """An estimate above max_latency_ms fails and names both numbers."""
    result = latency.evaluate_connection(RoundTrip(151.0), NODE)
    assert result.status is Status.FAIL
    assert "SSH connection round trip 151 ms exceeds 100 ms" in result.message


@pytest.mark.parametrize("steered", [math.nan, math.inf, -1.0, 1e300])
def test_an_implausible_round_trip_is_refused(steered: float) -> None:
    """A node that steers the estimate out of range gets InvalidOutput, never a verdict."""
    with pytest.raises(InvalidOutput, match="SSH connection's round trip"):
        latency.evaluate_connection(RoundTrip(steered), NODE)


class _EchoSession:
    """A session over a real loopback TCP connection: each command goes out and comes back."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.peer = writer.get_extra_info("peername")
        self.reader, self.writer = reader, writer
        self.commands: list[str] = []

    def round_trip(self) -> RoundTrip | None:
        """The kernel's estimate for the connection's socket, as the SSH session reads it."""
        now = counters(self.writer.get_extra_info("socket"))
        return None if now is None else since(now, None)

    async def run(self, command: str, *, timeout: float) -> CommandResult:
        """Send the command and read the echo: traffic that refreshes the estimate."""
        self.commands.append(command)
        self.writer.write(command.encode() + b"\n")
        line = await asyncio.wait_for(self.reader.readline(), timeout)
        return CommandResult(0, line.decode())


def test_the_live_connection_is_measured_after_the_pass_traffic() -> None:
    """The check sends the ssh check's command, then reads the kernel's estimate: no probe."""
    accepted: list[asyncio.Event] = []

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        done = asyncio.Event()
        accepted.append(done)
        while line := await reader.readline():
            writer.write(line)
            await writer.drain()
        writer.close()
        await writer.wait_closed()
        done.set()

    async def main() -> tuple[Evaluation, list[str]]:
        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        async with server:
            host, port = server.sockets[0].getsockname()[:2]
            session = _EchoSession(*await asyncio.open_connection(host, port))
            result = await latency.CHECK.run(NODE, session, Context())
            session.writer.close()
            await session.writer.wait_closed()
            await asyncio.gather(*(done.wait() for done in accepted))
            return result, session.commands

    result, commands = asyncio.run(main())
    assert commands == [reachability.COMMAND]
    assert len(accepted) == 1  # the session's own connection, and no handshake probe
    assert result.status is Status.OK
    assert result.message.startswith("SSH connection round trip ")
    assert result.value is not None
    assert 0 <= result.value < 100


def test_kernel_round_trip_of_a_tcp_socket_and_of_others() -> None:
    """A connected TCP socket has a finite estimate; a Unix socket and no socket have none."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname()) as client:
            client.sendall(b"x" * 10)
            read = counters(client)
    assert read is not None
    assert math.isfinite(read.rtt_ms)
    assert read.rtt_ms >= 0
    assert read.sent is not None
    assert read.sent >= 2  # the handshake's ACK and the data
    assert read.resent == 0
    left, right = socket.socketpair()
    with left, right:
        assert counters(left) is None
    assert counters(None) is None


def test_latency_does_not_apply_to_a_local_node() -> None:
    """A `transport: local` worker has no network path: it is never probed on its own port 22."""
    local = Worker(name="ctl", ip="127.0.0.1", transport="local")
    assert not latency.CHECK.applies(local)
    assert latency.CHECK.applies(NODE)


def test_resends_since_the_last_check_warn_of_packet_loss() -> None:
    """A good round trip with a share of the pass's segments resent warns, naming both counts."""
    result = latency.evaluate_connection(RoundTrip(0.5, sent=40, resent=4), NODE)
    assert result.status is Status.WARN
    assert "4 of the 40 segments sent since the last check were resent" in result.message
    assert result.value == 0.5


def test_a_clean_or_uncounted_path_does_not_warn() -> None:
    """A resend or two, a small share, none, or none counted: the round trip decides."""
    for reading in (
        RoundTrip(0.5, 40, 0),
        RoundTrip(0.5, 10, 2),
        RoundTrip(0.5, 400, 39),
        RoundTrip(0.5, 0, 0),
        RoundTrip(0.5),
    ):
        assert latency.evaluate_connection(reading, NODE).status is Status.OK


def test_resends_are_counted_from_the_previous_reading() -> None:
    """Each reading counts what happened after the one before; a count that wrapped is none."""
    first, later = Counters(1.0, 100, 2), Counters(1.0, 150, 5)
    assert since(first, None) == RoundTrip(1.0, 100, 2)
    assert since(later, first) == RoundTrip(1.0, 50, 3)
    assert since(first, later) == RoundTrip(1.0, None, None)
    assert since(later, Counters(1.0, None, None)) == RoundTrip(1.0, None, None)
