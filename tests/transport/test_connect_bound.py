"""`max_connects`: how many SSH connects the pool has in flight at once, against real sockets.

The servers are hung sshds as the network sees them: they accept TCP and never say hello, so
every connect holds its slot for its whole connect timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import TYPE_CHECKING

from ugro import sweep
from ugro.config import Worker
from ugro.model import NodeStatus

if TYPE_CHECKING:
    from collections.abc import Iterator

CONNECT_S = 0.5
NODES = 8


class Silent:
    """Listeners on 127.0.0.1 that accept and stay silent, counting connections open at once."""

    def __init__(self) -> None:
        """No connection yet; the ports are known once served."""
        self.open = 0
        self.most = 0
        self.ports: list[int] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Hold the connection until the client gives up."""
        self.open += 1
        self.most = max(self.most, self.open)
        try:
            await reader.read()
        finally:
            self.open -= 1
            writer.close()


def workers(ports: list[int]) -> list[Worker]:
    """One node per listener, with a short connect timeout and only the ssh check."""
    return [
        Worker.model_validate(
            {
                "name": f"n{i}",
                "ip": "127.0.0.1",
                "ssh_port": port,
                "checks": ["ssh"],
                "host_key_policy": "off",
                "timeouts": {"connect": CONNECT_S},
            }
        )
        for i, port in enumerate(ports)
    ]


def in_thread(silent: Silent, ready: threading.Event, stop: threading.Event) -> None:
    """Serve `silent` from an event loop of its own until `stop`."""

    async def main() -> None:
        servers = [await asyncio.start_server(silent.serve, "127.0.0.1", 0) for _ in range(NODES)]
        silent.ports = [s.sockets[0].getsockname()[1] for s in servers]
        ready.set()
        await asyncio.to_thread(stop.wait)
        for server in servers:
            server.close()

    asyncio.run(main())


@contextlib.contextmanager
def serving() -> Iterator[Silent]:
    """Silent listeners, served from a thread, stopped afterwards."""
    silent, ready, stop = Silent(), threading.Event(), threading.Event()
    thread = threading.Thread(target=in_thread, args=(silent, ready, stop))
    thread.start()
    try:
        ready.wait(10)
        yield silent
    finally:
        stop.set()
        thread.join(10)


def test_at_most_max_connects_are_in_flight_and_each_gets_its_full_timeout() -> None:
    """8 hung nodes, 3 slots: never more than 3 connects at once, and each times out itself."""
    with serving() as silent:
        verdicts = sweep.run_checks(workers(silent.ports), max_connects=3)
        assert silent.most == 3
        assert [v.status for v in verdicts] == [NodeStatus.UNREACHABLE] * NODES
        for verdict in verdicts:
            (ssh,) = verdict.checks[:1]
            # Queued nodes waited up to 3 turns for a slot, yet each says its own timeout.
            assert f"no SSH handshake within {CONNECT_S:g} s" in ssh.message, ssh


def test_the_default_bound_lets_every_node_connect_at_once() -> None:
    """With the default (32), 8 hung nodes all connect together."""
    with serving() as silent:
        sweep.run_checks(workers(silent.ports))
        assert silent.most == NODES
