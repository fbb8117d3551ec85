"""The SSH transport against real OpenSSH sshd processes: reuse, limits, and every failure."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from typing import TYPE_CHECKING

import pytest

from conftest import nodes_of, run_ugro, wait_for
from daemonharness import FAST_TIMEOUTS, GOOD, SSH_ONLY, daemon_starter, monitor
from ugro.config.settings import DEFAULT_MAX_CONNECTS
from ugro.errors import (
    AuthFailed,
    CommandTimeout,
    ConnectionRefused,
    ConnectTimeout,
    CredentialsError,
    HostKeyChanged,
    HostKeyUnknown,
    TransportError,
)
from ugro.model import NodeStatus, Status
from ugro.sweep import Transports, sweep
from ugro.transport.ssh import MAX_CHANNELS_PER_CONNECTION, SSHTransport
from ugro.transport.tcp import tcp_connect_ms

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    from sshcluster import TestCluster, TestHost
    from ugro.config import Worker
    from ugro.model import NodeVerdict


# Integration: the SSH transport against real sshd test hosts.
pytestmark = pytest.mark.integration


def node(cluster: TestCluster, tmp_path: Path, **top: object) -> Worker:
    """The resolved worker for test host h0, with `top` as top-level settings."""
    path = cluster.write_config(tmp_path / "cluster.yaml", None, None, **top)
    return nodes_of(path)["h0"]


def with_transport(body: Callable[[SSHTransport], Awaitable[object]]) -> object:
    """Run `body` with a fresh transport, closing it afterwards."""

    async def main() -> object:
        transport = SSHTransport(max_connects=DEFAULT_MAX_CONNECTS)
        try:
            return await body(transport)
        finally:
            await transport.close()

    return asyncio.run(main())


def test_runs_commands_and_keeps_exit_status_and_streams(
    cluster: TestCluster, tmp_path: Path
) -> None:
    """A command's stdout, stderr and exit status come back exactly."""
    worker = node(cluster, tmp_path)

    async def body(transport: SSHTransport) -> object:
        session = await transport.open(worker)
        return await session.run("echo out; echo err >&2; exit 7", timeout=5)

    result = with_transport(body)
    assert (result.exit_status, result.stdout, result.stderr) == (7, "out\n", "err\n")  # type: ignore[attr-defined]


def test_one_connection_serves_many_concurrent_commands(
    cluster: TestCluster, tmp_path: Path
) -> None:
    """Opening twice gives the same session; more commands than channels all complete on it."""
    worker = node(cluster, tmp_path)
    count = MAX_CHANNELS_PER_CONNECTION * 3

    async def body(transport: SSHTransport) -> object:
        first = await transport.open(worker)
        again = await transport.open(worker)
        assert first is again
        return await asyncio.gather(
            *(first.run(f"sleep 0.2; echo {i}", timeout=20) for i in range(count))
        )

    results = with_transport(body)
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(count)]  # type: ignore[attr-defined]


def test_reconnects_after_the_server_restarts(cluster: TestCluster, tmp_path: Path) -> None:
    """A broken connection is replaced by a new one on the next open."""
    worker = node(cluster, tmp_path)
    host = cluster.host("h0")

    async def body(transport: SSHTransport) -> object:
        first = await transport.open(worker)
        await first.run("true", timeout=5)
        host.kill()
        with pytest.raises(TransportError):
            await first.run("true", timeout=5)
        host.start()
        second = await transport.open(worker)
        assert second is not first
        return await second.run("echo back", timeout=5)

    assert with_transport(body).stdout == "back\n"  # type: ignore[attr-defined]


def test_command_timeout_is_its_own_error(cluster: TestCluster, tmp_path: Path) -> None:
    """A command that outlives its timeout raises CommandTimeout, and the session survives."""
    worker = node(cluster, tmp_path)

    async def body(transport: SSHTransport) -> object:
        session = await transport.open(worker)
        with pytest.raises(CommandTimeout, match=r"within 0\.5 s"):
            await session.run("sleep 30", timeout=0.5)
        return await session.run("echo alive", timeout=5)

    assert with_transport(body).stdout == "alive\n"  # type: ignore[attr-defined]


def open_error(worker: Worker) -> TransportError:
    """The error opening a session to `worker` raises (fails the test if none)."""

    async def body(transport: SSHTransport) -> object:
        await transport.open(worker)
        return None

    with pytest.raises(TransportError) as caught:
        with_transport(body)
    return caught.value


def test_refused(tmp_path: Path, cluster: TestCluster) -> None:
    """A port with nothing listening is 'connection refused'."""
    addr, port = cluster.unused_address()
    worker = node(cluster, tmp_path).model_copy(update={"ip": addr, "ssh_port": port})
    error = open_error(worker)
    assert type(error) is ConnectionRefused
    assert f"connection refused on port {port}" in str(error)


def test_hung_sshd_times_out(cluster: TestCluster, tmp_path: Path) -> None:
    """A stopped sshd accepts TCP but never speaks SSH: a connect timeout."""
    worker = node(cluster, tmp_path, timeouts={"connect": 1})
    cluster.host("h0").pause()
    error = open_error(worker)
    assert type(error) is ConnectTimeout
    assert "no SSH handshake within 1 s" in str(error)


def test_waiting_for_a_connect_slot_does_not_count_against_the_connect_timeout(
    cluster: TestCluster, tmp_path: Path
) -> None:
    """A node queued behind slow connects still gets its own full connect timeout."""
    path = cluster.write_config(tmp_path / "cluster.yaml", timeouts={"connect": 1})
    nodes = nodes_of(path)
    stalled = ["h0", "h1", "h2", "h3"]
    for name in stalled:
        cluster.host(name).pause()
    # Each stalled host holds the only slot for its 1 s timeout: h4 waits about 4 s, longer
    # than its own connect timeout with any grace.
    queue = [nodes[name] for name in [*stalled, "h4"]]

    async def main() -> list[NodeStatus]:
        transports = Transports(ssh=SSHTransport(max_connects=1))
        try:
            return [v.status for v in await sweep(queue, transports)]
        finally:
            await transports.close()

    assert asyncio.run(main())[-1] is not NodeStatus.UNREACHABLE


def test_wrong_key_is_auth_failed(cluster: TestCluster, tmp_path: Path) -> None:
    """A key the node does not accept is 'authentication failed'."""
    stranger = tmp_path / "stranger"
    subprocess.run(
        ["/usr/bin/ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True
    )
    error = open_error(node(cluster, tmp_path, identity_file=str(stranger)))
    assert type(error) is AuthFailed
    assert "authorized_keys" in str(error)


def test_unknown_host_key_is_refused_when_strict(cluster: TestCluster, tmp_path: Path) -> None:
    """Under strict, a node missing from known_hosts is refused, with how to add it."""
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    error = open_error(node(cluster, tmp_path, known_hosts=str(empty)))
    assert type(error) is HostKeyUnknown
    assert "ssh-keyscan" in str(error)


def test_missing_known_hosts_file_is_refused_not_default(
    cluster: TestCluster, tmp_path: Path
) -> None:
    """Under strict, a configured known_hosts that does not exist is an error naming it."""
    absent = tmp_path / "absent"
    error = open_error(node(cluster, tmp_path, known_hosts=str(absent)))
    assert type(error) is CredentialsError
    assert f"known_hosts {absent} does not exist" in str(error)


def test_changed_host_key_is_refused(cluster: TestCluster, tmp_path: Path) -> None:
    """A key that differs from known_hosts is refused as changed, under strict and accept-new."""
    cluster.host("h0").regenerate_host_key()
    for policy in ("strict", "accept-new"):
        error = open_error(node(cluster, tmp_path, host_key_policy=policy))
        assert type(error) is HostKeyChanged
        assert "REMOTE HOST KEY CHANGED" in str(error)


def test_accept_new_trusts_first_use_then_verifies(cluster: TestCluster, tmp_path: Path) -> None:
    """accept-new records an unknown key, then holds the node to it."""
    known = tmp_path / "known_hosts"
    worker = node(cluster, tmp_path, known_hosts=str(known), host_key_policy="accept-new")

    async def body(transport: SSHTransport) -> object:
        session = await transport.open(worker)
        return await session.run("echo first", timeout=5)

    assert with_transport(body).stdout == "first\n"  # type: ignore[attr-defined]
    host = cluster.host("h0")
    assert known.read_text().split()[1:] == host.host_key_line().split()[1:]
    assert known.read_text().startswith(f"[{host.addr}]:{host.port} ")
    host.regenerate_host_key()
    assert type(open_error(worker)) is HostKeyChanged


def test_off_skips_verification(cluster: TestCluster, tmp_path: Path) -> None:
    """host_key_policy off connects to an unknown key without recording it."""
    known = tmp_path / "known_hosts"
    worker = node(cluster, tmp_path, known_hosts=str(known), host_key_policy="off")

    async def body(transport: SSHTransport) -> object:
        session = await transport.open(worker)
        return await session.run("echo ok", timeout=5)

    assert with_transport(body).stdout == "ok\n"  # type: ignore[attr-defined]
    assert not known.exists()


def test_reads_ssh_config_for_unset_settings(
    cluster: TestCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Host alias in ~/.ssh/config supplies the address, port, user and key ugro leaves unset."""
    host = cluster.host("h0")
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text(
        f"Host gpu-alias\n  HostName {host.addr}\n  Port {host.port}\n"
        f"  User {cluster.user}\n  IdentityFile {cluster.client_key}\n"
    )
    monkeypatch.setenv("HOME", str(home))
    worker = nodes_of(cluster.write_config(tmp_path / "cluster.yaml", None, None))["h0"]
    worker = worker.model_copy(
        update={"ip": "gpu-alias", "ssh_port": None, "user": None, "identity_file": None}
    )
    # Like OpenSSH, known_hosts is matched against the HostName the alias resolves to.
    (home / ".ssh" / "known_hosts").write_text(host.host_key_line() + "\n")
    worker = worker.model_copy(update={"known_hosts": None})

    async def body(transport: SSHTransport) -> object:
        session = await transport.open(worker)
        assert session.peer == (host.addr, host.port)
        return await session.run("echo via-alias", timeout=5)

    assert with_transport(body).stdout == "via-alias\n"  # type: ignore[attr-defined]


# --- credentials that cannot be used: the node's own error, never an aborted run ----------------

#: Bytes that are neither a key nor text: the first is not UTF-8.
BINARY = b"\x89PNG\r\n\x1a\n" + bytes(range(256))


def keygen(path: Path, passphrase: str = "") -> Path:
    """A new ed25519 key pair at `path` (and `path`.pub), protected by `passphrase`."""
    subprocess.run(
        ["/usr/bin/ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-f", str(path)],
        check=True,
    )
    return path


Settings = dict[str, object]


def passphrase(tmp: Path) -> tuple[Settings, str]:
    """A key that needs a passphrase ugro cannot type."""
    key = keygen(tmp / "locked", "secret")
    return {"identity_file": str(key)}, (
        f"identity_file {key} is passphrase-protected: load it into ssh-agent "
        f"(`ssh-add {key}`) and remove identity_file"
    )


def garbage_key(tmp: Path) -> tuple[Settings, str]:
    """An identity file that holds no key at all."""
    key = tmp / "garbage"
    key.write_bytes(BINARY)
    return {"identity_file": str(key)}, f"identity_file {key} is not a private key"


def key_a_directory(tmp: Path) -> tuple[Settings, str]:
    """An identity file that cannot be read: a directory (root reads a mode-000 file)."""
    return {"identity_file": str(tmp)}, f"identity_file {tmp} cannot be read (Is a directory)"


def key_a_dangling_symlink(tmp: Path) -> tuple[Settings, str]:
    """An identity file that cannot be read: a symlink to a key moved away."""
    key = tmp / "moved-key"
    key.symlink_to(tmp / "nowhere")
    return {"identity_file": str(key)}, f"identity_file {key} cannot be read (No such file"


def binary_known_hosts(tmp: Path) -> tuple[Settings, str]:
    """A known_hosts that is not text."""
    known = tmp / "known_hosts"
    known.write_bytes(BINARY)
    return {"known_hosts": str(known)}, f"known_hosts {known} is not a text file (byte 0"


def known_hosts_a_directory(tmp: Path) -> tuple[Settings, str]:
    """A known_hosts that cannot be read: a directory."""
    known = tmp / "known_hosts"
    known.mkdir()
    return {"known_hosts": str(known)}, f"known_hosts {known} is not a file"


def malformed_known_hosts(tmp: Path) -> tuple[Settings, str]:
    """A known_hosts with a line that is no entry ssh can read."""
    known = tmp / "known_hosts"
    known.write_text("@cert-authority\n", encoding="utf-8")
    return {"known_hosts": str(known)}, f"known_hosts {known} has an entry ssh cannot read"


#: Each credential that cannot be used: its settings and what the error says, made in a directory.
CREDENTIALS = [
    passphrase,
    garbage_key,
    key_a_directory,
    key_a_dangling_symlink,
    binary_known_hosts,
    known_hosts_a_directory,
    malformed_known_hosts,
]


@pytest.mark.parametrize("bad", CREDENTIALS, ids=lambda f: f.__name__.replace("_", "-"))
def test_unusable_credentials_are_a_credentials_error(
    cluster: TestCluster, tmp_path: Path, bad: Callable[[Path], tuple[Settings, str]]
) -> None:
    """An encrypted, garbage or unreadable key or known_hosts is a CredentialsError saying why."""
    settings, message = bad(tmp_path)
    error = open_error(node(cluster, tmp_path, **settings))
    assert type(error) is CredentialsError
    assert message in str(error)


def test_check_reports_bad_credentials_per_node(cluster: TestCluster, tmp_path: Path) -> None:
    """`ugro check`: each node with bad credentials fails its ssh check; the others pass."""
    broken = {"h1": passphrase, "h2": binary_known_hosts, "h3": garbage_key}
    extra: dict[str, Settings] = {}
    said: dict[str, str] = {}
    for name, bad in broken.items():
        (tmp_path / name).mkdir()
        extra[name], said[name] = bad(tmp_path / name)
    path = cluster.write_config(tmp_path / "cluster.yaml", None, extra, checks=SSH_ONLY)
    ran = run_ugro("--config", path, "check", "--json")
    assert ran.code == 2, ran.err  # the worst node's: unreachable, not 3 for an internal error
    assert "internal error" not in ran.err
    nodes = {n["name"]: n for n in json.loads(ran.out)["nodes"]}
    for name, message in said.items():
        assert nodes[name]["status"] == "unreachable"
        assert message in nodes[name]["checks"]["ssh"]["message"]
    for name in ("h0", "h4"):
        assert nodes[name]["checks"]["ssh"]["status"] == "ok", nodes[name]


def test_daemon_keeps_running_past_bad_credentials(
    cluster: TestCluster, tmp_path: Path, isolated_home: Path
) -> None:
    """A node with a passphrase-protected key is unreachable with why; the daemon sweeps on."""
    extra, message = passphrase(tmp_path)
    top = {"timeouts": FAST_TIMEOUTS, "monitor": monitor(), "exporter": {"enabled": False}}
    path = cluster.write_config(
        tmp_path / "cluster.yaml", cluster.hosts[:2], {"h1": extra}, checks=SSH_ONLY, **top
    )
    with daemon_starter(isolated_home, tmp_path) as start:
        daemon = start(path)
        state = daemon.wait_sweeps(3)
        assert state["nodes"]["h0"]["status"] in GOOD
        assert state["nodes"]["h1"]["status"] == "unreachable"
        assert message in state["nodes"]["h1"]["checks"]["ssh"]["message"]
        daemon.send(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0, daemon.err()


# --- the latency check reads the live connection: nothing new reaches sshd ---------------------

#: What sshd (LogLevel ERROR) logs for a connection that closes before the SSH banner: a TCP
#: handshake probe, one line each.
PROBE_LINE = "kex_exchange_identification"


def probe_lines(host: TestHost) -> int:
    """How many connections that closed before the SSH banner sshd has logged."""
    return host.log.read_text(encoding="utf-8", errors="replace").count(PROBE_LINE)


def test_warm_sweeps_measure_latency_without_a_connection_of_their_own(
    cluster: TestCluster, tmp_path: Path
) -> None:
    """Sweeps over a kept connection make sshd fork and log nothing; one probe would."""
    host = cluster.host("h0")
    path = cluster.write_config(tmp_path / "cluster.yaml", [host], checks=["ssh", "latency"])
    worker = nodes_of(path)["h0"]

    async def main() -> list[list[NodeVerdict]]:
        transports = Transports()
        try:
            first = await sweep([worker], transports)
            before = probe_lines(host)
            rest = [await sweep([worker], transports) for _ in range(3)]
            assert probe_lines(host) == before
            return [first, *rest]
        finally:
            await transports.close()

    verdicts = asyncio.run(main())
    # The control: one handshake of the fallback's is counted.
    before = probe_lines(host)
    asyncio.run(tcp_connect_ms(host.addr, host.port, 2))
    wait_for(lambda: probe_lines(host) == before + 1, "the probe's log line")
    for (verdict,) in verdicts:
        (result,) = (c for c in verdict.checks if c.name == "latency")
        assert result.status is Status.OK, result
        assert result.message.startswith("SSH connection round trip "), result
        assert result.value is not None
        assert 0 <= result.value < 100
