"""What the commands show: tables for people, JSON documents for programs; no decisions.

One module per command group; rich is imported inside the functions that draw, so a command
that prints JSON or plain lines never loads it. `print_json` is how every `--json` document
goes out.
"""

from __future__ import annotations

import json
from typing import Any


def print_json(data: dict[str, Any]) -> None:
    """Write a JSON document to stdout."""
    print(json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False))  # noqa: T201 - the command's output
