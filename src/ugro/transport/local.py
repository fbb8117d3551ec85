"""The local transport: commands run on this machine, for the embedded default cluster."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ugro import subprocesses
from ugro.errors import CommandTimeout
from ugro.model import CommandResult

if TYPE_CHECKING:
    from ugro.config import Worker
    from ugro.transport import Session


class LocalSession:
    """Runs commands on this machine through /bin/sh, for the embedded default cluster."""

    peer = None

    def round_trip(self) -> None:
        """None: no network lies between this machine and itself."""

    async def run(self, command: str, *, timeout: float) -> CommandResult:
        """Run `command` with /bin/sh; kill it and raise CommandTimeout after `timeout`.

        A command that prints more than the limits is killed too, its result `truncated`.
        """
        try:
            done = await subprocesses.run(["/bin/sh", "-c", command], stdin=None, timeout=timeout)
        except TimeoutError as exc:
            raise CommandTimeout(f"did not finish within {timeout:g} s") from exc
        return CommandResult(
            exit_status=None if done.truncated else done.returncode,
            stdout=done.stdout.decode(errors="replace"),
            stderr=done.stderr.decode(errors="replace"),
            truncated=done.truncated,
        )


class LocalTransport:
    """The transport for `transport: local` nodes."""

    async def open(self, node: Worker) -> Session:  # noqa: ARG002 - every local node is this machine
        """Return a session that runs commands here."""
        return LocalSession()

    async def close(self) -> None:
        """Nothing to close: local sessions hold no resources."""
