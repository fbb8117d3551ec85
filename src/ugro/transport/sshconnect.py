"""Opening an SSH connection to a node: ~/.ssh/config, the host-key policy and known_hosts.

`connect` raises a ConnectError and nothing else: what asyncssh or the socket raise while
connecting, and a credential that cannot be used, are translated here into the error that
names the node's problem and what to do about it.
"""

from __future__ import annotations

import asyncio
import errno
import shlex
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncssh

from ugro.errors import (
    AuthFailed,
    ConnectError,
    ConnectionRefused,
    ConnectTimeout,
    CredentialsError,
    HostKeyChanged,
    HostKeyUnknown,
)
from ugro.transport.tcp import reason as _reason

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ugro.config import Worker

# known_hosts is read whole: beyond this (some 100 000 entries, far more than any cluster's)
# it is refused rather than read into memory.
MAX_KNOWN_HOSTS_BYTES = 16 * 1024 * 1024
# Each known_hosts file as last parsed, by path: its bytes and its keys. A connection keeps
# the keys it was given for its whole life, and a fleet's file holds a key per node, so a
# parse per connect held nodes² keys: 10 000 at 100 nodes, a million at 1000. The file is
# still read at every connect (a changed file is seen at once), but parsed only when its
# bytes changed, and the connections share one set of keys.
_parsed: dict[Path, tuple[bytes, asyncssh.SSHKnownHosts]] = {}


class _HostKeyJudge(asyncssh.SSHClient):
    """Decides on a host key that known_hosts does not vouch for, and remembers why.

    asyncssh calls this only for a key outside the trusted set, with the host name, address
    and port after ~/.ssh/config is applied: exactly what a known_hosts entry must match.
    Once connected (`pin`), the connection keeps its judge, but not the parse: a re-key must
    present the key the handshake did, nothing else.
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
        # Set once connected (`pin`): the only key a re-key may present.
        self.connected = False
        self.pinned: asyncssh.SSHKey | None = None

    def pin(self, key: asyncssh.SSHKey | None) -> None:
        """From now on accept only `key`, the one the handshake verified; let the parse go."""
        self.connected = True
        self.trusted = None
        self.pinned = key

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        """Accept only a first-seen key under accept-new; note whether the host had an entry.

        After the handshake, only the key it verified (asyncssh checks a re-key's key too).
        """
        if self.connected:
            return self.pinned is not None and key == self.pinned
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
    trusted = None if node.host_key_policy == "off" else read_known_hosts(known_hosts)
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
    judge.pin(connection.get_server_host_key())
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


def read_known_hosts(path: Path) -> asyncssh.SSHKnownHosts:
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
    parsed = _parsed.get(path)
    if parsed is not None and parsed[0] == data:
        return parsed[1]
    try:
        trusted = asyncssh.import_known_hosts(data.decode())
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
    _parsed[path] = (data, trusted)
    return trusted


class _Match:
    """The known_hosts asyncssh checks one connection's host key against.

    asyncssh keeps its known_hosts argument for the connection's life: given the parse, each
    connection opened while `accept-new` appends first-seen keys would keep a version of its
    own (nodes²/2 keys on first contact with a fleet). asyncssh asks this once, during the
    handshake, for the keys of the connection's own host (after ~/.ssh/config), and it then
    lets the parse go.
    """

    def __init__(self, trusted: asyncssh.SSHKnownHosts) -> None:
        """Match against `trusted`, once."""
        self._trusted: asyncssh.SSHKnownHosts | None = trusted

    def __call__(self, host: str, addr: str, port: int | None) -> Sequence[Sequence[object]]:
        """The host keys, CA keys and revoked keys known_hosts holds for this host and port."""
        trusted, self._trusted = self._trusted, None
        # Asked again (asyncssh asks once): nothing is trusted.
        return asyncssh.match_known_hosts(
            trusted or asyncssh.import_known_hosts(""), host, addr, port
        )


def _options(node: Worker, trusted: asyncssh.SSHKnownHosts | None) -> dict[str, Any]:
    """Options for asyncssh from the node's settings; unset ones come from ~/.ssh/config."""
    options: dict[str, Any] = {
        # None turns verification off; an empty known_hosts trusts no key (while () would
        # make asyncssh read its default file).
        "known_hosts": None if trusted is None else _Match(trusted),
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
