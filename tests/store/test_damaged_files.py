"""Every data file, damaged every way, through every command that reads it: one-line errors.

The state, cordons, remediation and history files are each emptied, truncated, filled with
garbage, given JSON of the wrong shape, a newer schema, a directory in their place, or a
SQLite database that is not ugro's; then each command that reads them runs in this process.
None may print "internal error" (conftest fails the test) or raise.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner

from conftest import closed_port
from ugro.cli import main

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

FILES = {
    "state": "cluster_state.json",
    "cordons": "cordons.json",
    "remediation": "remediation.json",
    "history": "history.db",
}
COMMANDS = (
    ["health"],
    ["health", "--json"],
    ["hosts"],
    ["check"],
    ["preflight"],
    ["cordon"],
    ["cordon", "gpu1", "--reason", "test"],
    ["uncordon", "gpu1"],
    ["alerts"],
    ["history"],
)


def _foreign_database(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE names (x)")
    db.commit()
    db.close()


def _truncated_database(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (x)")
    db.executemany("INSERT INTO t VALUES (?)", [("x" * 500,)] * 200)
    db.commit()
    db.close()
    path.write_bytes(path.read_bytes()[:20_000])


DAMAGE: dict[str, Callable[[Path], object]] = {
    "empty": lambda p: p.write_bytes(b""),
    "truncated": lambda p: p.write_bytes(b'{"schema_version": 1, "nod'),
    "binary": lambda p: p.write_bytes(bytes(range(256)) * 4),
    "list": lambda p: p.write_bytes(b"[1, 2, 3]"),
    "wrong types": lambda p: p.write_bytes(
        b'{"schema_version": 1, "nodes": {"gpu1": {"attempts": 5}}, "cordons": {"gpu1":'
        b' {"node": [1], "by": "manual", "reason": "x", "since": 5}}, "updated_at": "x",'
        b' "stale_after_s": "a", "alerts": [1]}'
    ),
    "deep nesting": lambda p: p.write_bytes(b"[" * 100_000 + b"]" * 100_000),
    "huge numbers": lambda p: p.write_bytes(
        b'{"schema_version": ' + b"9" * 5000 + b', "nodes": {}, "cordons": {}}'
    ),
    "infinite": lambda p: p.write_bytes(b'{"schema_version": 1e999, "nodes": {}}'),
    "newer schema": lambda p: p.write_bytes(b'{"schema_version": 99, "nodes": {}, "cordons": {}}'),
    "no schema": lambda p: p.write_bytes(b'{"nodes": {}, "cordons": {}}'),
    "directory": lambda p: p.mkdir(),
    "foreign sqlite": _foreign_database,
    "truncated sqlite": _truncated_database,
}


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("file", FILES)
def test_damaged_file_gives_one_line_errors(isolated_home: Path, file: str, damage: str) -> None:
    """Each command that reads the damaged file either works or fails with one line."""
    isolated_home.mkdir(parents=True)
    (isolated_home / "cluster.yaml").write_text(
        f"workers:\n  - name: gpu1\n    ip: 127.0.0.1\n    ssh_port: {closed_port()}\n"
        "    gpus: 1\n    checks: [ssh]\n",
        encoding="utf-8",
    )
    DAMAGE[damage](isolated_home / FILES[file])
    for command in COMMANDS:
        result = CliRunner().invoke(main, command)
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            command,
            result.exception,
        )
        if result.exit_code not in (0, 2) and "--json" not in command:
            errors = [line for line in result.output.splitlines() if line.startswith("ugro:")]
            assert len(errors) == 1, (command, result.output)
