"""The SSH transport: one persistent asyncssh connection per node, pooled and bounded.

The only module that imports asyncssh; every asyncssh or socket error is translated here.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import shlex
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncssh

from ugro import subprocesses
from ugro.errors import (
    AuthFailed,
    CommandTimeout,
    ConnectError,
    ConnectionRefused,
    ConnectTimeout,
    CredentialsError,
    Disconnected,
    HostKeyChanged,
    HostKeyUnknown,
)
from ugro.model import CommandResult
from ugro.transport import batch
from ugro.transport.tcp import Counters, RoundTrip, counters, since
from ugro.transport.tcp import reason as _reason

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from ugro.config import Worker
    from ugro.transport import Session

# sshd's default MaxSessions is 10: stay below it. (Its MaxStartups bounds the unauthenticated
# connections to one node; the pool's bound on connects across the fleet is `max_connects`.)
MAX_CHANNELS_PER_CONNECTION = 8
# known_hosts is read whole on every connect: beyond this (some 100 000 entries, far more than
# any cluster's) it is refused rather than read into memory.
MAX_KNOWN_HOSTS_BYTES = 16 * 1024 * 1024


class SSHSession:
    """One asyncssh connection, with a bound on concurrent channels."""

    def __init__(self, connection: asyncssh.SSHClientConnection, name: str) -> None:
        """Wrap an open connection to the node called `name`."""
        self._connection = connection
        self._name = name
        self._channels = asyncio.Semaphore(MAX_CHANNELS_PER_CONNECTION)
        # The node refused a batch once (`run_batch`): its commands go one channel each.
        self._batches = True
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
        caller's own timeout covers it. False, with nothing run, when the node cannot run a
        batch: the caller runs the jobs one by one with `run`. Raises Disconnected or
        InvalidOutput when the connection fails or the answer is garbled, and CommandTimeout
        when the whole batch outlives its longest timeout.
        """
        if not self._batches:
            return False
        reader = batch.Reader(len(jobs))
        limit = batch.watchdog_s(jobs) + 1
        async with self._channels:
            try:
                with self._translated(limit):
                    async with asyncio.timeout(limit):
                        process = await self._connection.create_process(
                            batch.command(jobs), encoding=None
                        )
                        # The runner's own stderr only ever holds a profile's chatter, but it
                        # must be read: unread, it fills the channel's window and stalls stdout.
                        chatter = asyncio.ensure_future(_drain(process.stderr))
                        try:
                            while not reader.finished:
                                data = await process.stdout.read(subprocesses.CHUNK)
                                if not data:
                                    reader.end()
                                    break
                                for index, result in reader.feed(data):
                                    done(index, result)
                        finally:
                            chatter.cancel()
                            process.close()
            except batch.Refused:
                self._batches = False
                return False
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


async def _drain(stream: subprocesses.Stream) -> None:
    """Read `stream` to its end, keeping nothing."""
    while await stream.read(subprocesses.CHUNK):
        pass


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


class _HostKeyJudge(asyncssh.SSHClient):
    """Decides on a host key that known_hosts does not vouch for, and remembers why.

    asyncssh calls this only for a key outside the trusted set, with the host name, address
    and port after ~/.ssh/config is applied: exactly what a known_hosts entry must match.
    """

    def __init__(
        self, known_hosts: Path, trusted: asyncssh.SSHKnownHosts | None, policy: str
    ) -> None:
        self.known_hosts = known_hosts
        self.trusted = trusted
        self.policy = policy
        self.host = ""
        self.port: int | None = None
        self.had_entry = False
        self.accepted: asyncssh.SSHKey | None = None

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        """Accept only a first-seen key under accept-new; note whether the host had an entry."""
        self.host, self.port = host, port
        self.had_entry = self.trusted is not None and _has_entry(self.trusted, host, addr, port)
        if self.policy == "accept-new" and not self.had_entry:
            self.accepted = key
            return True
        return False


async def connect(node: Worker) -> asyncssh.SSHClientConnection:
    """Open a connection honouring ~/.ssh/config and the node's host key policy.

    Raises a ConnectError and nothing else: a credential that cannot be used (an encrypted or
    garbage identity file, an unreadable or binary known_hosts) is this node's
    CredentialsError, never an exception that aborts the sweep.
    """
    known_hosts = _known_hosts_path(node)
    if node.host_key_policy == "strict" and node.known_hosts and not known_hosts.exists():
        # Strict with a named file that is absent refuses every key: a typo, not a policy.
        raise CredentialsError(
            f"known_hosts {known_hosts} does not exist, and host_key_policy: strict trusts "
            f"only the keys in it: create it with `ssh-keyscan -p PORT HOST >> {known_hosts}` "
            "after verifying the keys, or fix the path"
        )
    trusted = None if node.host_key_policy == "off" else _read_known_hosts(known_hosts)
    judge = _HostKeyJudge(known_hosts, trusted, node.host_key_policy)
    try:
        # asyncssh's connect_timeout covers the TCP connect and the handshake; the outer
        # bound guards against a server that stalls later, during authentication.
        connection, _ = await asyncio.wait_for(
            asyncssh.create_connection(lambda: judge, node.ip, **_options(node, trusted)),
            node.timeouts.connect + 1,
        )
    except Exception as exc:  # nothing asyncssh raises may escape (DESIGN §3)
        raise _connect_error(exc, node, judge) from exc
    if judge.accepted is not None:
        try:
            _remember(judge, node)
        except OSError as exc:
            # Connecting anyway would trust the next key offered too: first use never ends.
            connection.close()
            raise CredentialsError(
                f"cannot record the node's host key in {known_hosts} ({exc.strerror}): make "
                "it writable by the user ugro runs as, or add the key with `ssh-keyscan`"
            ) from exc
    return connection


def _known_hosts_path(node: Worker) -> Path:
    return Path(node.known_hosts or "~/.ssh/known_hosts").expanduser()


def _read_known_hosts(path: Path) -> asyncssh.SSHKnownHosts:
    """The keys `path` trusts, none when it does not exist; CredentialsError when unusable.

    Read here rather than by asyncssh, which reads it in the middle of the handshake and
    lets a binary file's UnicodeDecodeError escape.
    """
    try:
        if not path.exists():
            return asyncssh.import_known_hosts("")
        if not path.is_file():
            raise CredentialsError(
                f"known_hosts {path} is not a file: set known_hosts to an OpenSSH known_hosts file"
            )
        with path.open("rb") as handle:
            data = handle.read(MAX_KNOWN_HOSTS_BYTES + 1)
    except OSError as exc:
        raise CredentialsError(
            f"known_hosts {path} cannot be read ({exc.strerror}): make it readable by the user "
            "ugro runs as, or set known_hosts to another file"
        ) from exc
    if len(data) > MAX_KNOWN_HOSTS_BYTES:
        raise CredentialsError(
            f"known_hosts {path} is larger than {MAX_KNOWN_HOSTS_BYTES} bytes: "
            "set known_hosts to the file that holds the cluster's keys"
        )
    try:
        return asyncssh.import_known_hosts(data.decode())
    except UnicodeDecodeError as exc:
        raise CredentialsError(
            f"known_hosts {path} is not a text file (byte {exc.start} is not UTF-8): point "
            "known_hosts at an OpenSSH known_hosts file, or move this one aside and collect the "
            "keys again with `ssh-keyscan`"
        ) from exc
    except ValueError as exc:
        raise CredentialsError(
            f"known_hosts {path} has an entry ssh cannot read ({str(exc)[:120]}): "
            "fix or remove that line"
        ) from exc


def _options(node: Worker, trusted: asyncssh.SSHKnownHosts | None) -> dict[str, Any]:
    """Options for asyncssh from the node's settings; unset ones come from ~/.ssh/config."""
    options: dict[str, Any] = {
        # None turns verification off; an empty SSHKnownHosts trusts no key (while () would
        # make asyncssh read its default file).
        "known_hosts": trusted,
        "connect_timeout": node.timeouts.connect,
        # AES-GCM first (then asyncssh's defaults): with AES-NI it costs the control node a
        # third less CPU per packet than ChaCha20-Poly1305, asyncssh's first choice.
        "encryption_algs": "^aes128-gcm@openssh.com,aes256-gcm@openssh.com",
    }
    if node.user:
        options["username"] = node.user
    if node.ssh_port:
        options["port"] = node.ssh_port
    if node.identity_file:
        options["client_keys"] = [str(Path(node.identity_file).expanduser())]
    return options


def _connect_error(  # noqa: PLR0911 - one return per failure keeps the mapping readable
    exc: BaseException, node: Worker, judge: _HostKeyJudge
) -> ConnectError:
    """Translate what asyncssh or the socket raised into the most specific ConnectError."""
    port = judge.port or node.ssh_port or 22
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        # asyncssh refuses a @revoked key itself, before asking the judge, and says so.
        revoked = " is revoked for host " in str(exc)
        return _host_key_error(judge, node, port, revoked=revoked)
    if isinstance(exc, asyncssh.KeyImportError) or getattr(exc, "filename", None) is not None:
        # Only file errors carry a file name: a file ssh needs, rather than the network.
        return _credentials_error(exc, node)
    if isinstance(exc, asyncssh.PermissionDenied):
        return AuthFailed(
            f"authentication failed as {node.user or 'the current user'}: the node refused "
            "every key offered; check identity_file and the node's authorized_keys"
        )
    if isinstance(exc, TimeoutError):
        return ConnectTimeout(
            f"no SSH handshake within {node.timeouts.connect:g} s: the host or its sshd is "
            "hung or overloaded, or a firewall drops the traffic"
        )
    if isinstance(exc, ConnectionRefusedError):
        return ConnectionRefused(
            f"connection refused on port {port}: sshd is not running, or the node is rebooting"
        )
    if isinstance(exc, socket.gaierror):
        return ConnectError(f"cannot resolve {node.ip}: {exc.strerror}")
    if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return ConnectError(f"no route to {node.ip}: the host is down or off the network")
    if isinstance(exc, asyncssh.ConnectionLost):
        return ConnectError(f"connection lost during the SSH handshake: {_reason(exc)}")
    if isinstance(exc, (asyncssh.Error, OSError)):
        return ConnectError(f"cannot connect: {_reason(exc)}")
    return ConnectError(f"cannot connect: unexpected {type(exc).__name__}: {str(exc)[:200]}")


def _host_key_error(
    judge: _HostKeyJudge, node: Worker, port: int, *, revoked: bool
) -> ConnectError:
    """Revoked, changed when known_hosts has another key for the node, unknown when none."""
    name = _known_hosts_name(judge.host or node.ip, port)
    if revoked:
        # No policy hint: accepting a revoked key is never the fix.
        return HostKeyChanged(
            f"host key of {name} is REVOKED in {judge.known_hosts} (@revoked): the node must "
            "get a new host key; until then, suspect an impostor"
        )
    if judge.had_entry:
        return HostKeyChanged(
            f"REMOTE HOST KEY CHANGED for {name}: it differs from {judge.known_hosts}. "
            f"If the node was reinstalled, remove the old key with `ssh-keygen -R {name} "
            f"-f {judge.known_hosts}`; otherwise suspect an impostor"
        )
    return HostKeyUnknown(
        f"host key of {name} is not in {judge.known_hosts}; after verifying it, add it "
        f"with `ssh-keyscan -p {port} {judge.host or node.ip} >> {judge.known_hosts}`, or "
        "set host_key_policy: accept-new"
    )


def _identity_path(node: Worker) -> str | None:
    return str(Path(node.identity_file).expanduser()) if node.identity_file else None


def _credentials_error(exc: BaseException, node: Worker) -> CredentialsError:
    """What to do about a private key asyncssh could not load, or a file it could not read."""
    path = _identity_path(node)
    if isinstance(exc, OSError):
        name = exc.filename
        what = f"identity_file {name}" if str(name) == path else f"{name}, which ssh needs,"
        return CredentialsError(
            f"{what} cannot be read ({exc.strerror}): check the path in "
            "cluster.yaml or ~/.ssh/config, and that the user ugro runs as can read it"
        )
    key = f"identity_file {path}" if path else "a private key named in ~/.ssh/config"
    # asyncssh says so only in words: "Passphrase must be specified to import encrypted ..."
    if "passphrase" in str(exc).lower():
        agent = f"`ssh-add {shlex.quote(path)}`" if path else "`ssh-add`"
        return CredentialsError(
            f"{key} is passphrase-protected: load it into ssh-agent ({agent}) and remove "
            "identity_file from cluster.yaml, so ugro offers the agent's keys; ugro never asks "
            "for a passphrase"
        )
    return CredentialsError(
        f"{key} is not a private key ssh can use ({str(exc)[:120]}): point identity_file at "
        "an OpenSSH private key"
    )


def _known_hosts_name(host: str, port: int) -> str:
    return f"[{host}]:{port}" if port != 22 else host


def _has_entry(trusted: asyncssh.SSHKnownHosts, host: str, addr: str, port: int) -> bool:
    """Whether known_hosts holds any key for the host, which tells 'changed' from 'unknown'."""
    keys = asyncssh.match_known_hosts(trusted, host, addr, port if port != 22 else None)
    return bool(keys[0] or keys[1])


def _remember(judge: _HostKeyJudge, node: Worker) -> None:
    """Append a first-seen key to known_hosts: trusted from now on, and verified."""
    assert judge.accepted is not None  # noqa: S101 - the caller checked
    key = judge.accepted.export_public_key().decode().strip()
    line = f"{_known_hosts_name(judge.host or node.ip, judge.port or 22)} {key}\n"
    judge.known_hosts.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with judge.known_hosts.open("a", encoding="utf-8") as handle:
        handle.write(line)


def _text(data: bytes) -> str:
    return data.decode(errors="replace")
