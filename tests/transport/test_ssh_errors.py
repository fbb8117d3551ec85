"""What asyncssh or the filesystem raises while connecting becomes that node's ConnectError.

No sshd here: these are the failures a real server cannot provoke (root reads any file) or
that no known input produces yet (an unexpected exception inside asyncssh). The real
credential files are tried against real sshd in test_transport.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import asyncssh
import pytest

from ugro.config import Worker
from ugro.errors import ConnectError, CredentialsError, HostKeyChanged
from ugro.transport import sshconnect

if TYPE_CHECKING:
    from collections.abc import Callable


def connect_error(worker: Worker) -> ConnectError:
    """The error connecting to `worker` raises (fails the test if it raises anything else)."""
    with pytest.raises(ConnectError) as caught:
        asyncio.run(sshconnect.connect(worker))
    return caught.value


def worker(tmp_path: Path, **settings: object) -> Worker:
    """A worker on a loopback port nothing listens on, with an empty known_hosts."""
    known = tmp_path / "known_hosts"
    known.touch()
    return Worker.model_validate(
        {"name": "n1", "ip": "127.0.0.1", "ssh_port": 9, "known_hosts": str(known), **settings}
    )


def raising(exc: BaseException) -> Callable[..., object]:
    """A stand-in for asyncssh.create_connection that raises `exc`."""

    async def create_connection(*_args: object, **_kwargs: object) -> object:
        raise exc

    return create_connection


@pytest.mark.parametrize(
    ("exc", "kind", "message"),
    [
        pytest.param(
            RuntimeError("asyncssh broke"),
            ConnectError,
            "cannot connect: unexpected RuntimeError: asyncssh broke",
            id="unexpected",
        ),
        pytest.param(
            UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
            ConnectError,
            "cannot connect: unexpected UnicodeDecodeError",
            id="binary-ssh-config",
        ),
        pytest.param(
            PermissionError(13, "Permission denied", "/root/.ssh/config"),
            CredentialsError,
            "/root/.ssh/config, which ssh needs, cannot be read (Permission denied)",
            id="unreadable-ssh-config",
        ),
        pytest.param(
            asyncssh.KeyImportError(
                "Passphrase must be specified to import encrypted private keys"
            ),
            CredentialsError,
            "a private key named in ~/.ssh/config is passphrase-protected: load it into ssh-agent",
            id="encrypted-config-key",
        ),
    ],
)
def test_what_asyncssh_raises_is_a_connect_error(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    exc: BaseException,
    kind: type[ConnectError],
    message: str,
) -> None:
    """Any exception from asyncssh is the node's ConnectError, naming the cause."""
    monkeypatch.setattr(asyncssh, "create_connection", raising(exc))
    error = connect_error(worker(tmp_path))
    assert type(error) is kind
    assert message in str(error)


def test_unreadable_identity_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A key file asyncssh cannot open is the node's CredentialsError naming identity_file."""
    key = tmp_path / "id_ed25519"
    denied = PermissionError(13, "Permission denied", str(key))
    monkeypatch.setattr(asyncssh, "create_connection", raising(denied))
    error = connect_error(worker(tmp_path, identity_file=str(key)))
    assert type(error) is CredentialsError
    assert f"identity_file {key} cannot be read (Permission denied)" in str(error)


def test_unreadable_known_hosts_is_a_credentials_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A known_hosts the daemon's user may not read (root always may) is a CredentialsError."""
    node = worker(tmp_path)

    def denied(self: Path, *_args: object, **_kwargs: object) -> object:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", denied)
    error = connect_error(node)
    assert type(error) is CredentialsError
    assert f"known_hosts {node.known_hosts} cannot be read (Permission denied)" in str(error)


def test_oversized_known_hosts_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A known_hosts beyond the size bound is refused rather than read into memory."""
    monkeypatch.setattr(sshconnect, "MAX_KNOWN_HOSTS_BYTES", 1024)
    node = worker(tmp_path)
    Path(str(node.known_hosts)).write_text("# padding\n" * 200, encoding="utf-8")
    error = connect_error(node)
    assert type(error) is CredentialsError
    assert "is larger than 1024 bytes" in str(error)


def test_strict_with_a_missing_known_hosts_says_so(tmp_path: Path) -> None:
    """Under strict, a configured known_hosts that does not exist is named, not ~/.ssh's used."""
    absent = tmp_path / "absent"
    error = connect_error(worker(tmp_path, known_hosts=str(absent)))
    assert type(error) is CredentialsError
    assert f"known_hosts {absent} does not exist" in str(error)


def test_a_revoked_key_is_not_answered_with_accept_new(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key known_hosts marks @revoked is reported as such, with no policy to relax."""
    revoked = asyncssh.HostKeyNotVerifiable("Host key is revoked for host 127.0.0.1")
    monkeypatch.setattr(asyncssh, "create_connection", raising(revoked))
    error = connect_error(worker(tmp_path))
    assert type(error) is HostKeyChanged
    assert "REVOKED" in str(error)
    assert "accept-new" not in str(error)
