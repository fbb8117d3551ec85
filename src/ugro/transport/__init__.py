"""Running commands on nodes: the seam between checks and the way a node is reached.

`Session` and `Transport` are the protocols checks and the sweep use; `ugro.transport.ssh`
(one pooled asyncssh connection per node, opened by `ugro.transport.sshconnect`),
`ugro.transport.local` (this machine) and `ugro.transport.tcp` (timed TCP handshakes)
implement them. This package is the only place that imports asyncssh, and only `ssh` and
`sshconnect` do, so a check or the CLI never pays for it.
Every asyncssh or socket error is translated here into a `TransportError` subclass.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ugro.config import Worker
    from ugro.model import CommandResult
    from ugro.transport.tcp import RoundTrip


class Session(Protocol):
    """An open line to one node, on which checks run commands."""

    @property
    def peer(self) -> tuple[str, int] | None:
        """The address and port actually connected to; None for the local machine."""

    def round_trip(self) -> RoundTrip | None:
        """The kernel's round trip of the session's own TCP connection, and its resends.

        None when the session has none (the local machine, a tunnelled connection).
        """

    async def run(self, command: str, *, timeout: float) -> CommandResult:
        """Run a POSIX shell command; raise CommandTimeout or Disconnected."""


class Transport(Protocol):
    """Opens sessions to nodes; the seam that tests replace with a fake."""

    async def open(self, node: Worker) -> Session:
        """Return a session to `node`, reusing an open one; raise ConnectError."""

    async def close(self) -> None:
        """Close every session."""
