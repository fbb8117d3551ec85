"""Delay every packet of one netfilter queue by a fixed time: real latency without netem.

Run as `python nfqdelay.py QUEUE_NUM DELAY_MS`, then send packets to the queue with an
iptables rule such as

    iptables -I OUTPUT -d 127.0.0.11 -p tcp --dport 2222 -j NFQUEUE --queue-num 7 --queue-bypass

Each queued packet is held for DELAY_MS and then accepted, in arrival order, so a TCP
handshake through the rule takes DELAY_MS longer and nothing is lost or reordered. The
program prints `ready` once it listens on the queue and exits on SIGTERM or SIGINT,
accepting whatever it still holds. With `--queue-bypass` on the rule, packets pass
undelayed whenever no program is bound to the queue (before the start, after a crash).

Needs root (CAP_NET_ADMIN) and the `NetfilterQueue` package (libnetfilter-queue).
"""

from __future__ import annotations

import select
import signal
import sys
import time
from collections import deque
from typing import TYPE_CHECKING

from netfilterqueue import COPY_META, NetfilterQueue

if TYPE_CHECKING:
    from types import FrameType

    from netfilterqueue import Packet

USAGE = "usage: nfqdelay.py QUEUE_NUM DELAY_MS"
#: Longest wait in select() when nothing is held, so a signal is never missed for long.
IDLE_WAIT_S = 0.5


def _stop(signum: int, frame: FrameType | None) -> None:  # noqa: ARG001 - signal handler signature
    """Leave the loop: the `finally` below accepts the packets still held."""
    raise SystemExit(0)


def serve(queue_num: int, delay_s: float) -> None:
    """Hold each packet of `queue_num` for `delay_s`, then accept it; until a signal."""
    held: deque[tuple[float, Packet]] = deque()

    def hold(packet: Packet) -> None:
        held.append((time.monotonic() + delay_s, packet))

    queue = NetfilterQueue()
    # Metadata only: the verdict needs no payload, and copying none keeps this cheap.
    queue.bind(queue_num, hold, mode=COPY_META)
    try:
        fd = queue.get_fd()
        print("ready", flush=True)  # noqa: T201 - the parent waits for this line
        while True:
            wait = held[0][0] - time.monotonic() if held else IDLE_WAIT_S
            readable, _, _ = select.select([fd], [], [], max(0.0, wait))
            if readable:
                queue.run(block=False)
            now = time.monotonic()
            while held and held[0][0] <= now:
                held.popleft()[1].accept()
    finally:
        while held:
            held.popleft()[1].accept()
        queue.unbind()


def main(argv: list[str]) -> int:
    """Parse the arguments and serve until a signal."""
    if len(argv) != 2:
        print(USAGE, file=sys.stderr)  # noqa: T201 - command-line usage
        return 2
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    serve(int(argv[0]), float(argv[1]) / 1000)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
