"""The `rendezvous` check: the worker itself can open a TCP connection to the training master.

torchrun's workers connect to MASTER_ADDR:MASTER_PORT first; a firewall that drops those
packets makes the whole job hang at rendezvous with no error at all. The control node
reaching both machines proves nothing about the path between them, so the connection is
made from the worker, with its own resolver and routes.

The probe uses the node's configured Python (standard library only, any Python 3): unlike
bash's /dev/tcp or nc, it is on every node that can train, and it tells refused, timed out,
unreachable and an unknown name apart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ugro.checks import RemoteCheck, cut_short, probe
from ugro.checks.readings import MILLISECONDS, number, said, shown
from ugro.model import CommandResult, Evaluation, Status

if TYPE_CHECKING:
    from ugro.config import Worker

MARKER = "UGRO-RDV "

# Runs on the node: argv is address, port, connect timeout in seconds. Never raises.
PROBE = probe.program(
    MARKER,
    """
import socket, time
addr, port, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
out = {}
start = time.time()
try:
    socket.create_connection((addr, port), timeout=limit).close()
    out["result"] = "connected"
except socket.gaierror as exc:
    out["result"] = "dns"
    out["error"] = str(exc)
except socket.timeout:
    out["result"] = "timeout"
except ConnectionRefusedError:
    out["result"] = "refused"
except OSError as exc:
    out["result"] = "unreachable"
    out["error"] = str(exc)
out["ms"] = round((time.time() - start) * 1000, 1)
emit(out)
""",
)

# The connect attempt gets this share of timeouts.rendezvous; the rest is for starting the
# interpreter (a `conda run` prefix takes a second or two) and the round trip of the command.
CONNECT_SHARE = 0.5


class Rendezvous(RemoteCheck):
    """The worker reaches `master.addr:master.port` over TCP (connected or refused)."""

    name = "rendezvous"
    weight = 10
    default_timeout_s = 10
    hang_hint = "the node's Python did not start in time: the node is overloaded"

    def applies(self, node: Worker) -> bool:
        """Only where a training master is configured."""
        return node.master is not None

    def command(self, node: Worker) -> str:
        """`<python> -c <probe> <addr> <port> <seconds>`, every word quoted."""
        if node.master is None:
            raise ValueError(f"{node.name}: no `master:` configured")
        limit = round(node.timeouts.rendezvous * CONNECT_SHARE, 1)
        return probe.command(node, PROBE, node.master.addr, str(node.master.port), str(limit))

    def evaluate(  # noqa: PLR0911 - one return per outcome of a connect keeps it flat
        self, result: CommandResult, node: Worker
    ) -> Evaluation:
        """Connected or refused passes; timed out, unreachable or an unknown name fails."""
        if node.master is None:
            raise ValueError(f"{node.name}: no `master:` configured")
        target = f"{node.master.addr}:{node.master.port}"
        where = " (the master itself, over loopback)" if node.ip == node.master.addr else ""
        if (short := cut_short(result, node.python)) is not None:
            return short
        if result.exit_status == 127:
            return Evaluation(
                Status.FAIL,
                f"{node.python!r} not found on the node, so it cannot test the way to "
                f"{target}: set `python:` in cluster.yaml",
            )
        out = probe.read(result.stdout, MARKER)
        if out is None:
            return probe.no_report(result, "no rendezvous report")
        kind, ms = out.get("result"), out.get("ms")
        value = None if ms is None else number(ms, "the connect time", MILLISECONDS)
        error = said(out.get("error") or "")
        if kind == "connected":
            return Evaluation(
                Status.OK, f"reaches {target}{where}: a rendezvous is listening", value, "ms"
            )
        if kind == "refused":
            return Evaluation(
                Status.OK,
                f"reaches {target}{where}; nothing listens there now (no job running: "
                "expected between jobs)",
                value,
                "ms",
            )
        if kind == "timeout":
            return Evaluation(
                Status.FAIL,
                f"{node.name} cannot reach {target} (timed out): a firewall drops it; training "
                "would hang at rendezvous. Open the port between the workers and the master",
                value,
                "ms",
            )
        if kind == "dns":
            return Evaluation(
                Status.FAIL,
                f"{node.name} cannot resolve {node.master.addr} ({error}): torchrun's "
                "MASTER_ADDR must resolve on every worker; use an IP address or fix DNS",
            )
        if kind == "unreachable":
            return Evaluation(
                Status.FAIL,
                f"{node.name} cannot reach {target} ({error}): no route to the master; check "
                "the network and its routes",
                value,
                "ms",
            )
        return Evaluation(Status.UNKNOWN, f"rendezvous report not understood: {shown(kind)}")


CHECK = Rendezvous()
