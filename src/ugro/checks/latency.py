"""The `latency` check: TCP connect round trip from the control node to the SSH port.

This is a local probe, not a remote command: the median of a few TCP handshakes measures
the network path the training traffic and ugro itself depend on.
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING

from ugro.checks import Check, Context
from ugro.checks.readings import MILLISECONDS, number
from ugro.errors import TransportError
from ugro.model import Evaluation, Status
from ugro.transport.tcp import tcp_connect_ms

if TYPE_CHECKING:
    from ugro.config import Worker
    from ugro.transport import Session

PROBES = 3


class Latency(Check):
    """The median TCP handshake time is at most `max_latency_ms`."""

    name = "latency"
    weight = 15
    # Per TCP probe; the check makes PROBES of them (see `timeout`).
    default_timeout_s = 2
    core = True
    # It times handshakes to the SSH port; the local machine is not reached through one.
    local = False
    hang_hint = "TCP handshakes to the node time out: packets are being dropped"

    def timeout(self, node: Worker) -> float:
        """The whole check's deadline: `timeouts.latency` for each of the probes."""
        return PROBES * float(node.timeouts.latency)

    async def run(
        self,
        node: Worker,
        session: Session,
        context: Context,  # noqa: ARG002 - every probe is measured afresh
    ) -> Evaluation:
        """Probe the address the session is connected to, PROBES handshakes in a row.

        One after another, each with `timeouts.latency`: the kernel times each handshake, so
        a control node busy with a large sweep only delays noticing the answer, and a probe
        is not failed for the share of the time that took.
        """
        host, port = session.peer or (node.ip, node.ssh_port or 22)
        samples: list[float | str] = []
        for _ in range(PROBES):
            try:
                samples.append(await tcp_connect_ms(host, port, float(node.timeouts.latency)))
            except TransportError as exc:
                samples.append(str(exc))
        return evaluate(samples, node)


def evaluate(samples: list[float | str], node: Worker) -> Evaluation:
    """Judge handshake times in ms (a string is a failed probe's error).

    The kernel's round-trip estimate is the node's to steer (it delays its answers), so a
    time is a reading like any other: InvalidOutput unless it is plausible.
    """
    times = [number(s, "a TCP round trip", MILLISECONDS) for s in samples if isinstance(s, float)]
    errors = [s for s in samples if isinstance(s, str)]
    if not times:
        return Evaluation(
            Status.FAIL, f"every TCP probe failed: {errors[0] if errors else 'no probes'}"
        )
    median = statistics.median(times)
    shown = f"{median:.1f} ms" if median < 10 else f"{median:.0f} ms"
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


CHECK = Latency()
