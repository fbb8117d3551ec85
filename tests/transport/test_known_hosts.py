"""known_hosts is parsed once per version of the file, and its keys shared by every connection.

asyncssh keeps the keys a connection was given for the connection's life; a fleet's file
holds a key per node, so a parse per connect held nodes² keys (10 000 at 100 nodes).
"""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import asyncssh

from ugro.transport import sshconnect


def key_line(host: str) -> str:
    """A known_hosts line for `host` with a fresh Ed25519 key."""
    key = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    return f"{host} {key}\n"


def trusts(known: asyncssh.SSHKnownHosts, line: str) -> bool:
    """Whether `known` trusts the key of `line` for its host."""
    host, key = line.split(" ", 1)
    trusted = asyncssh.match_known_hosts(known, host, host, None)[0]
    return asyncssh.import_public_key(key) in trusted


def test_a_fleets_known_hosts_is_parsed_once_for_every_connect(tmp_path: Path) -> None:
    """A hundred connects to a hundred nodes share one parse of the hundred keys."""
    path = tmp_path / "known_hosts"
    path.write_text("".join(key_line(f"10.0.0.{i}") for i in range(100)), encoding="utf-8")
    first = sshconnect.read_known_hosts(path)
    assert all(sshconnect.read_known_hosts(path) is first for _ in range(99))


def test_a_changed_known_hosts_is_read_again_at_once(tmp_path: Path) -> None:
    """A key replaced by one of the same length, at once, is seen at the next connect."""
    path = tmp_path / "known_hosts"
    old, new = key_line("10.0.0.1"), key_line("10.0.0.1")
    assert len(old) == len(new)
    path.write_text(old, encoding="utf-8")
    before = sshconnect.read_known_hosts(path)
    path.write_text(new, encoding="utf-8")
    after = sshconnect.read_known_hosts(path)
    assert trusts(before, old)
    assert trusts(after, new)
    assert not trusts(after, old)


def test_each_file_keeps_its_own_keys(tmp_path: Path) -> None:
    """Two nodes that name different known_hosts files do not share keys."""
    one, two = tmp_path / "one", tmp_path / "two"
    line_one, line_two = key_line("10.0.0.1"), key_line("10.0.0.1")
    one.write_text(line_one, encoding="utf-8")
    two.write_text(line_two, encoding="utf-8")
    assert trusts(sshconnect.read_known_hosts(one), line_one)
    assert trusts(sshconnect.read_known_hosts(two), line_two)
    assert not trusts(sshconnect.read_known_hosts(two), line_one)


def test_asyncssh_is_given_a_matcher_that_lets_the_parse_go(tmp_path: Path) -> None:
    """What a connection keeps for its life answers once, then holds no parse.

    Under accept-new every first-seen key changes the file: connections that each kept their
    version of the parse would hold nodes²/2 keys on first contact with a fleet.
    """
    path = tmp_path / "known_hosts"
    line = key_line("10.0.0.1")
    path.write_text(line + key_line("10.0.0.2"), encoding="utf-8")
    parse = sshconnect.read_known_hosts(path)
    match = sshconnect._Match(parse)  # noqa: SLF001 - what asyncssh is handed
    held = weakref.ref(parse)
    keys = match("10.0.0.1", "10.0.0.1", None)
    assert {k.export_public_key() for k in keys[0] if isinstance(k, asyncssh.SSHKey)} == {
        asyncssh.import_public_key(line.split(" ", 1)[1]).export_public_key()
    }
    del parse
    sshconnect._parsed.clear()  # noqa: SLF001 - the cache's own reference
    gc.collect()
    assert held() is None
    assert list(match("10.0.0.1", "10.0.0.1", None)[0]) == []  # asked again: nothing trusted


def test_after_the_handshake_only_its_key_is_accepted() -> None:
    """A re-key must present the key the handshake verified, whatever the policy allowed."""
    first = asyncssh.generate_private_key("ssh-ed25519").convert_to_public()
    other = asyncssh.generate_private_key("ssh-ed25519").convert_to_public()
    judge = sshconnect._HostKeyJudge(  # noqa: SLF001 - asyncssh's client object
        Path("known_hosts"), asyncssh.import_known_hosts(""), "accept-new"
    )
    assert judge.validate_host_public_key("h", "10.0.0.1", 22, first)  # first seen: accepted
    judge.pin(first)
    assert judge.validate_host_public_key("h", "10.0.0.1", 22, first)
    assert not judge.validate_host_public_key("h", "10.0.0.1", 22, other)
