"""The published JSON Schemas (docs/schemas/) and which `ugro` command line each one covers.

`run_ugro` and the in-process CliRunner (conftest.py) validate every JSON document a command
prints against its schema, so a test that sees a `--json` document also checks that the
schema users read describes it.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema

if TYPE_CHECKING:
    from collections.abc import Sequence

SCHEMAS = Path(__file__).resolve().parent.parent / "docs" / "schemas"


@cache
def schema(name: str) -> dict[str, Any]:
    """The schema `docs/schemas/NAME.schema.json`, checked to be a valid schema itself."""
    loaded: dict[str, Any] = json.loads((SCHEMAS / f"{name}.schema.json").read_text("utf-8"))
    jsonschema.Draft202012Validator.check_schema(loaded)
    return loaded


def _command(args: Sequence[str]) -> list[str]:
    """The words of the command line after ugro's own options (`--config PATH`)."""
    words = list(args)
    while words and words[0] == "--config":
        words = words[2:]
    return words


# `--json` documents by command, and by subcommand where a group has several.
_BY_COMMAND = {
    "check": "health",
    "health": "health",
    "preflight": "preflight",
    "uncordon": "cordon-change",
    "history": "history",
    "alerts": "alerts",
}
_BY_SUBCOMMAND = {("daemon", "status"): "daemon-status", ("config", "show"): "config-show"}


def schema_for(args: Sequence[str]) -> str | None:
    """The name of the schema of what `ugro ARGS` prints on stdout; None when it is not JSON.

    `preflight --json -- CMD` prints the job's output on stdout, so it has none.
    """
    words = _command([str(a) for a in args])
    if not words or {"--help", "-h", "--"} & set(words):
        return None
    command, rest = words[0], words[1:]
    if command == "hosts":
        at = rest.index("--format") if "--format" in rest[:-1] else None
        return "hosts" if at is not None and rest[at + 1] == "json" else None
    if "--json" not in rest or rest[:1] == ["test"]:
        return None
    if command == "cordon":
        return "cordons" if rest[0].startswith("-") else "cordon-change"
    return _BY_COMMAND.get(command) or _BY_SUBCOMMAND.get((command, rest[0]))


def check_output(args: Sequence[str], stdout: str) -> None:
    """Validate what `ugro ARGS` printed, when it prints a JSON document and printed one."""
    name = schema_for(args)
    if name is None or not stdout.strip():
        return
    jsonschema.validate(json.loads(stdout), schema(name))
