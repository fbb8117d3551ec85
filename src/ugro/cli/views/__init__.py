"""What the commands show: tables for people, JSON documents for programs; no decisions.

One module per command group; rich is imported inside the functions that draw, so a command
that prints JSON or plain lines never loads it. `print_json` is how every `--json` document
goes out.

Text from nodes and files is data: in a table it goes in as a `cell` (printable, and a rich
`Text`, never markup); on a plain line it goes through `ugro.text.printable`. A `--json`
document carries it exactly, escaped as JSON.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from ugro.text import printable

if TYPE_CHECKING:
    from rich.text import Text

# What json.dumps(ensure_ascii=False) leaves raw that a terminal may act on or a UTF-8 stream
# cannot write: DEL and the C1 controls, line and paragraph separators, bidirectional
# formatting, lone surrogates. As \u escapes the document is still the same data.
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")


def dumps(data: object) -> str:
    """`data` as a JSON document that is safe on a terminal and exact for a program.

    A document's keys are one per line, and so are the items of a list among them (the
    nodes, the alerts): each item is one compact line. `jq` shows it any way one likes;
    fully indented, a 1000-node document took Python's slow encoder most of a second.
    """
    if not isinstance(data, dict) or not data:
        return _compact(data)
    members = []
    for key, value in data.items():
        if isinstance(value, list) and value:
            items = ",\n".join(f"    {_compact(item)}" for item in value)
            shown = f"[\n{items}\n  ]"
        else:
            shown = _compact(value)
        members.append(f"  {_compact(str(key))}: {shown}")
    return "{\n" + ",\n".join(members) + "\n}"


def _compact(data: object) -> str:
    """`data` as one line of JSON, with what a terminal could act on escaped."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False)
    if text.isascii():
        return text
    # Outside strings a JSON document is ASCII, so every match is inside a string.
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m[0]):04x}", text)


def print_json(data: dict[str, Any]) -> None:
    """Write a JSON document to stdout."""
    print(dumps(data))  # noqa: T201 - the command's output


def cell(value: object, *, multiline: bool = False) -> Text:
    """Data for a rich table or line: printable, and a `Text`, so rich reads no markup in it."""
    from rich.text import Text

    return Text(printable(str(value), multiline=multiline))
