"""The SSH transport: one persistent asyncssh connection per node, pooled and bounded.

Running commands on an open connection, one channel each or a batch on one
(`ugro.transport.batch`); `ugro.transport.sshconnect` opens the connections. These two are
the only modules that import asyncssh, and every asyncssh or socket error is translated in
them.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import asyncssh

from ugro import subprocesses
from ugro.errors import CommandTimeout, Disconnected, InvalidOutput
from ugro.model import CommandResult
from ugro.transport import batch, batchreader
from ugro.transport.sshconnect import connect
from ugro.transport.tcp import Counters, RoundTrip, counters, since
from ugro.transport.tcp import reason as _reason

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from ugro.config import Worker
    from ugro.transport import Session

# sshd's default MaxSessions is 10: stay below it, with the one idle runner a connection keeps
# besides. (Its MaxStartups bounds the unauthenticated connections to one node; the pool's
# bound on connects across the fleet is `max_connects`.)
MAX_CHANNELS_PER_CONNECTION = 8


class SSHSession:
    """One asyncssh connection, with a bound on concurrent channels."""

    def __init__(self, connection: asyncssh.SSHClientConnection, name: str) -> None:
        """Wrap an open connection to the node called `name`."""
        self._connection = connection
        self._name = name
        self._channels = asyncio.Semaphore(MAX_CHANNELS_PER_CONNECTION)
        # The node refused a batch once (`run_batch`): its commands go one channel each.
        self._batches = True
        # The runner left open by the last batch, for the next.
        self._runner: _Runner | None = None
        # The counters at the last `round_trip`, which counts resends from there.
        self._counters: Counters | None = None
        peer = connection.get_extra_info("peername")
        self.peer: tuple[str, int] | None = (str(peer[0]), int(peer[1])) if peer else None

    def round_trip(self) -> RoundTrip | None:
        """The kernel's smoothed round trip of this connection, and its resends since last asked.

        Every packet the node acknowledges refreshes the round trip, so after a command it
        measures the path as the check pass itself found it. None when the connection has no
        TCP socket of its own (a ProxyCommand or a jump host carries it) or the kernel has
        no TCP_INFO.
        """
        now = counters(self._connection.get_extra_info("socket"))
        if now is None:
            return None
        reading, self._counters = since(now, self._counters), now
        return reading

    @property
    def is_closed(self) -> bool:
        """Whether the connection has gone away and must be re-opened."""
        return self._connection.is_closed()

    async def run(self, command: str, *, timeout: float) -> CommandResult:
        """Run `command` on the node; translate asyncssh's errors into ugro's.

        The output is read as it comes, at most the limits of `ugro.subprocesses` (asyncssh's
        own `run` would hold all of it): a command that prints more is stopped by closing its
        channel, and its result is `truncated`. The timeout covers opening the channel too.
        """
        async with self._channels:
            with self._translated(timeout):
                async with asyncio.timeout(timeout):
                    process = await self._connection.create_process(command, encoding=None)
                    try:
                        output = await subprocesses.read_bounded(process.stdout, process.stderr)
                        if not output.truncated:
                            await process.wait_closed()
                    finally:
                        # Stops a command that overran its time or its output: the server
                        # closes its pipes, and it dies of SIGPIPE at its next write.
                        process.close()
        if output.truncated:
            return CommandResult(None, _text(output.stdout), _text(output.stderr), truncated=True)
        # asyncssh reports a channel that closed before an exit status came as None or -1.
        if process.exit_status in (None, -1) and not process.exit_signal:
            raise Disconnected(f"{self._name}: connection lost while the command ran")
        return CommandResult(
            exit_status=process.exit_status,
            stdout=_text(output.stdout),
            stderr=_text(output.stderr),
            exit_signal=process.exit_signal[0] if process.exit_signal else None,
        )

    async def run_batch(
        self, jobs: Sequence[batch.Job], done: Callable[[int, CommandResult], None]
    ) -> bool:
        """Run `jobs` at once on one channel (`ugro.transport.batch`), telling `done` each result.

        `done(i, result)` is called as job i ends; a job that never ends is never told, its
        caller's own timeout covers it. The channel's runner stays open for the next batch when
        this one ends cleanly. False, with nothing run, when the node cannot run a batch: the
        caller runs the jobs one by one with `run`. Raises Disconnected or InvalidOutput when
        the connection fails or the answer is garbled, and CommandTimeout when the whole batch
        outlives its longest timeout.
        """
        if not self._batches:
            return False
        limit = batch.watchdog_s(jobs) + 1
        # A batch asked for while another runs (the deep check's probe) opens a runner of its
        # own; whichever ends first is kept.
        kept, self._runner = self._runner, None
        if kept is not None and kept.closed:
            kept = None
        runner = kept or _Runner()
        async with self._channels:
            try:
                with self._translated(limit):
                    async with asyncio.timeout(limit):
                        if kept is None:
                            await self._connection.create_session(
                                lambda: runner, batch.opening(len(jobs)), encoding=None
                            )
                        await runner.run(jobs, done)
            except batchreader.Refused:
                self._batches = False
                runner.close()
                return False
            except BaseException:
                # A batch cut short leaves its runner mid-pass: it is not reused.
                runner.close()
                raise
        if self._runner is None:
            self._runner = runner
        else:
            runner.close()
        return True

    @contextlib.contextmanager
    def _translated(self, timeout: float) -> Iterator[None]:
        """Turn what asyncssh or the socket raise while a channel runs into ugro's errors."""
        try:
            yield
        except TimeoutError as exc:  # before OSError, of which it is a subclass
            raise CommandTimeout(f"did not finish within {timeout:g} s") from exc
        except asyncssh.ChannelOpenError as exc:
            raise Disconnected(f"{self._name}: the server refused a session: {exc.reason}") from exc
        except (asyncssh.Error, OSError) as exc:
            raise Disconnected(f"{self._name}: connection lost: {_reason(exc)}") from exc

    def close(self) -> None:
        """Close the connection without waiting."""
        self._connection.close()


class _Runner(asyncssh.SSHClientSession[bytes]):
    """A channel running `batch.SERVE`, one pass at a time: its stdout goes to its reader.

    Fed from asyncssh's callbacks, with no stream or task of its own in between: a node
    check's records are most of the packets the monitor reads.
    """

    def __init__(self) -> None:
        """A runner whose channel is not open yet."""
        self._reader = batchreader.Reader()
        self._requests = batch.Requests()
        self._channel: asyncssh.SSHClientChannel[bytes] | None = None
        self._done: Callable[[int, CommandResult], None] | None = None
        # The first pass's request, until the runner says it is up.
        self._unsent = b""
        # Set once the pass under way has ended, or the answer proved garbled.
        self._ended: asyncio.Future[None] | None = None
        self.closed = False

    def connection_made(self, chan: asyncssh.SSHClientChannel[bytes]) -> None:
        """Keep the channel, to send passes on."""
        self._channel = chan

    async def run(
        self, jobs: Sequence[batch.Job], done: Callable[[int, CommandResult], None]
    ) -> None:
        """Run `jobs` as the runner's next pass, telling `done` each result as it comes."""
        if self._channel is None or self.closed:
            raise Disconnected("the node's runner ended")
        pass_id, request = self._requests.next(jobs)
        self._reader.begin(pass_id, len(jobs))
        self._done = done
        self._ended = asyncio.get_running_loop().create_future()
        try:
            if self._reader.up:
                self._channel.write(request)
            else:
                # Sent once the runner is up: never to a login shell's profile that reads stdin.
                self._unsent = request
            await self._ended
        finally:
            self._done = self._ended = None

    def close(self) -> None:
        """Close the channel; the runner cleans up and exits when its stdin ends."""
        self.closed = True
        if self._channel is not None:
            self._channel.close()

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        """Feed stdout to the reader; drop stderr.

        The runner's stderr only ever holds a profile's chatter, but it is consumed all the
        same, so that it cannot fill the channel's window and stall stdout.
        """
        if datatype is not None or self.closed:
            return
        try:
            for index, result in self._reader.feed(data):
                if self._done is not None:
                    self._done(index, result)
        except (batchreader.Refused, InvalidOutput) as exc:
            self._fail(exc)
            return
        if self._unsent and self._reader.up and self._channel is not None:
            self._channel.write(self._unsent)
            self._unsent = b""
        if self._reader.between and self._ended is not None and not self._ended.done():
            self._ended.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        """The channel closed: the pass under way ends, Refused when the runner never started."""
        if exc is None:
            try:
                self._reader.end()
            except batchreader.Refused as refused:
                exc = refused
        self._fail(exc)

    def _fail(self, exc: Exception | None) -> None:
        """The runner is of no more use: end the pass under way with `exc` (or as it stands)."""
        self.closed = True
        if self._ended is not None and not self._ended.done():
            if exc is None:
                self._ended.set_result(None)
            else:
                self._ended.set_exception(exc)
        if self._channel is not None:
            self._channel.close()


class SSHTransport:
    """A pool of persistent SSH connections, one per node, re-opened when they break."""

    def __init__(self, *, max_connects: int) -> None:
        """Start with no connections; they open on first use, at most `max_connects` at once.

        The bound covers the handshake and authentication only: a node's connect timeout
        starts when its own connect does, never while it waits for a slot.
        """
        self._sessions: dict[str, SSHSession] = {}
        self._opening: dict[str, asyncio.Lock] = {}
        self._connects = asyncio.Semaphore(max_connects)

    async def open(self, node: Worker) -> Session:
        """Return the node's open session, connecting (or reconnecting) when needed."""
        lock = self._opening.setdefault(node.name, asyncio.Lock())
        async with lock:
            session = self._sessions.get(node.name)
            if session is not None and not session.is_closed:
                return session
            async with self._connects:
                connection = await connect(node)
            session = SSHSession(connection, node.name)
            self._sessions[node.name] = session
            return session

    async def close(self) -> None:
        """Close every connection."""
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            session.close()


def _text(data: bytes) -> str:
    return data.decode(errors="replace")
