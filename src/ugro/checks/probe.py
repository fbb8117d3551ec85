"""Python programs that checks run on a node, and the reader of the report each one prints.

A probe runs under whatever Python the node has (3.8 and later): no newer syntax, and it
never raises. It prints one report line, a marker and then a JSON object, which `read` finds
among whatever else the interpreter printed (a conda banner, a warning). The torch, deep and
rendezvous checks build their programs with `program` and their commands with `command`.
"""

from __future__ import annotations

import functools
import json
import shlex
from typing import TYPE_CHECKING, Any

from ugro.model import Evaluation, Status

if TYPE_CHECKING:
    from ugro.config import Worker
    from ugro.model import CommandResult

# The opening of every probe: the imports all of them use, and `emit`, which prints the one
# report line. The marker is filled in by `program`.
_PROLOGUE = """\
import json, sys


def emit(data):
    sys.stdout.write(%r + json.dumps(data) + "\\n")

"""


def program(marker: str, body: str) -> str:
    """A probe's source: the shared prologue, then `body`, which calls `emit(report)` once."""
    return _PROLOGUE % marker + body


def command(node: Worker, source: str, *args: str) -> str:
    """`<python> -c <source> <args>`: the node's python prefix split into words, each quoted."""
    return _command(node.python, source, args)


# Cached: every node check would quote the same probe's source again (a percent of the
# daemon's CPU under cProfile).
@functools.lru_cache(maxsize=256)
def _command(python: str, source: str, args: tuple[str, ...]) -> str:
    return shlex.join([*shlex.split(python), "-c", source, *args])


def read(stdout: str, marker: str) -> dict[str, Any] | None:
    """The JSON object a probe printed after `marker`, on the last such line.

    Other lines (a conda banner, a warning) are ignored; None when there is no such line, or
    it is cut short, not an object, or nested deeper than Python parses.
    """
    for line in reversed(stdout.splitlines()):
        if line.startswith(marker):
            try:
                data = json.loads(line.removeprefix(marker))
            except (ValueError, RecursionError):
                return None
            return data if isinstance(data, dict) else None
    return None


def no_report(result: CommandResult, what: str) -> Evaluation:
    """Unknown: the probe printed no report; `what` says which, then the exit and last words."""
    return Evaluation(Status.UNKNOWN, f"{what} (exit {result.exit_status}){result.said()}")
