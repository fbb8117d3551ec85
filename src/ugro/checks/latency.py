"""The `latency` check: the round trip of the node's live SSH connection, as the kernel sees it.

The kernel keeps a smoothed round-trip time for every TCP connection (TCP_INFO's tcpi_rtt),
updated by each packet the node acknowledges. Read after the check pass's own traffic (the
`ssh` check's command, shared), it measures the path the training traffic and ugro itself
depend on, at no cost to the node: no new connection, no sshd fork, no log line. The same
counters say how many segments the connection had to resend since the last check: packet
loss, which a round trip alone hides.

Where the session has no TCP connection of its own (one tunnelled through a ProxyCommand or
a jump host), the check falls back to the median of a few TCP handshakes to the SSH port,
each of which makes the node's sshd fork a child and log an error. The local machine is
not checked: there is no network path to it.
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING

from ugro.checks import Check, Context
from ugro.checks.reachability import COMMAND as SHELL_COMMAND
from ugro.checks.readings import MILLISECONDS, number
from ugro.errors import TransportError
from ugro.model import Evaluation, Status
from ugro.transport.tcp import tcp_connect_ms

if TYPE_CHECKING:
    from ugro.config import Worker
    from ugro.transport import Session
    from ugro.transport.tcp import RoundTrip

PROBES = 3
# Resent segments since the last check that mean packet loss: at least this many, and this
# share of those sent. A pass sends a few dozen; a busy node or control node makes the kernel
# resend one now and then (a tail-loss probe when an answer is slow), a lossy link many.
LOSS_MIN_RESENT = 3
LOSS_SHARE = 0.1


class Latency(Check):
    """The node's round trip is at most `max_latency_ms`."""

    name = "latency"
    weight = 15
    # Per TCP probe where the check falls back to them (see `timeout`).
    default_timeout_s = 2
    core = True
    # The local machine is not reached over a network.
    local = False
    hang_hint = "the node does not answer on its SSH connection: packets are being dropped"

    def applies(self, node: Worker) -> bool:
        """Only nodes reached over SSH: a `transport: local` node has no path to measure."""
        return node.transport != "local"

    def timeout(self, node: Worker) -> float:
        """The whole check's deadline: `timeouts.latency` for each of the fallback probes."""
        return PROBES * float(node.timeouts.latency)

    async def run(
        self,
        node: Worker,
        session: Session,
        context: Context,  # noqa: ARG002 - the round trip is measured afresh
    ) -> Evaluation:
        """Read the connection's round trip once this pass's traffic has refreshed it.

        The `ssh` check's command is the traffic: the sweep runs a command once per node
        check however many checks ask for it, so awaiting it here costs nothing more. It is
        awaited for the check's whole deadline, which its failure message names: a shell slow
        to answer on a busy node is the `ssh` check's to judge, and the path is lost only when
        nothing comes back in all that time.
        """
        await session.run(SHELL_COMMAND, timeout=self.timeout(node))
        measured = session.round_trip()
        if measured is not None:
            return evaluate_connection(measured, node)
        return evaluate(await _probe(node, session), node)


async def _probe(node: Worker, session: Session) -> list[float | str]:
    """PROBES handshakes in a row to the address the session is connected to.

    One after another, each with `timeouts.latency`: the kernel times each handshake, so a
    control node busy with a large sweep only delays noticing the answer, and a probe is not
    failed for the share of the time that took.
    """
    host, port = session.peer or (node.ip, node.ssh_port or 22)
    samples: list[float | str] = []
    for _ in range(PROBES):
        try:
            samples.append(await tcp_connect_ms(host, port, float(node.timeouts.latency)))
        except TransportError as exc:
            samples.append(str(exc))
    return samples


def evaluate_connection(reading: RoundTrip, node: Worker) -> Evaluation:
    """Judge the kernel's round trip of the node's SSH connection, and its resends.

    The estimate is the node's to steer (it delays its acknowledgements), so it is a reading
    like any other: InvalidOutput unless it is plausible.
    """
    rtt = number(reading.rtt_ms, "the SSH connection's round trip", MILLISECONDS)
    shown = _shown(rtt)
    if rtt > node.max_latency_ms:
        return Evaluation(
            Status.FAIL,
            f"SSH connection round trip {shown} exceeds {node.max_latency_ms:g} ms: congested "
            "or long network path; check the link and switch",
            value=rtt,
            unit="ms",
        )
    sent, resent = reading.sent, reading.resent
    if sent and resent and resent >= max(LOSS_MIN_RESENT, LOSS_SHARE * sent):
        return Evaluation(
            Status.WARN,
            f"SSH connection round trip {shown}, but {resent} of the {sent} segments sent since "
            "the last check were resent (packet loss?): check the link and switch",
            value=rtt,
            unit="ms",
        )
    return Evaluation(Status.OK, f"SSH connection round trip {shown}", value=rtt, unit="ms")


def evaluate(samples: list[float | str], node: Worker) -> Evaluation:
    """Judge fallback handshake times in ms (a string is a failed probe's error).

    Like the connection's round trip, each time is a reading the node can steer.
    """
    times = [number(s, "a TCP round trip", MILLISECONDS) for s in samples if isinstance(s, float)]
    errors = [s for s in samples if isinstance(s, str)]
    if not times:
        return Evaluation(
            Status.FAIL, f"every TCP probe failed: {errors[0] if errors else 'no probes'}"
        )
    median = statistics.median(times)
    shown = _shown(median)
    if median > node.max_latency_ms:
        return Evaluation(
            Status.FAIL,
            f"median TCP round trip {shown} exceeds {node.max_latency_ms:g} ms: congested or "
            "long network path; check the link and switch",
            value=median,
            unit="ms",
        )
    if errors:
        return Evaluation(
            Status.WARN,
            f"median {shown}, but {len(errors)} of {len(samples)} probes failed "
            f"(packet loss?): {errors[0]}",
            value=median,
            unit="ms",
        )
    return Evaluation(Status.OK, f"median TCP round trip {shown}", value=median, unit="ms")


def _shown(ms: float) -> str:
    """A round trip as a person reads it: a loopback or LAN one keeps its decimals."""
    if ms < 1:
        return f"{ms:.2f} ms"
    return f"{ms:.1f} ms" if ms < 10 else f"{ms:.0f} ms"


CHECK = Latency()
