"""Saying many nodes at once: runs of names compressed, the same problem said once.

"12 nodes unreachable — connection refused: host5…host16" reads faster than twelve rows
that say the same thing, and it is what an operator acts on (a switch, a rack, a key).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

#: Between the first and the last name of a run: host5…host16.
RUN = "…"
# A name that ends in a number: the prefix and the number. More digits than a 64-bit number
# holds is not a count anyone runs nodes up to, and int() would refuse a thousand of them.
_NUMBERED = re.compile(r"^(.*?)([0-9]{1,18})$")
# A run shorter than this is listed name by name: "gpu1, gpu2" says as much as "gpu1…gpu2".
_SHORTEST_RUN = 3


def compress(names: Iterable[str]) -> str:
    """The names, in order, with each run of consecutive numbers said as its ends.

    ["host5", "host6", ..., "host16", "gpu1"] → "host5…host16, gpu1". Numbers in a run keep
    one width (host08…host12, not host8…host12 mixed with host010).
    """
    said: list[str] = []
    run: list[str] = []
    prefix, digits = "", ""

    def flush() -> None:
        if len(run) >= _SHORTEST_RUN:
            said.append(f"{run[0]}{RUN}{run[-1]}")
        else:
            said.extend(run)
        run.clear()

    for name in names:
        found = _NUMBERED.match(name)
        if found is None:
            flush()
            said.append(name)
            continue
        before = (prefix, digits)
        prefix, digits = found.groups()
        if not (run and _follows(before, (prefix, digits))):
            flush()
        run.append(name)
    flush()
    return ", ".join(said)


def _follows(before: tuple[str, str], this: tuple[str, str]) -> bool:
    """Whether `this` (prefix, digits) comes right after `before` in one run of names."""
    (prefix, digits), (was, had) = this, before
    padded = digits.startswith("0") or had.startswith("0")
    same_width = len(digits) == len(had) or not padded
    return prefix == was and same_width and int(digits) == int(had) + 1


def shared(problems: Sequence[tuple[str, str, str]]) -> list[tuple[str, str, list[str]]]:
    """Problems that two or more nodes share, most nodes first: (status, problem, nodes).

    `problems` holds (node, status, problem) with each node's most important problem.
    """
    groups: dict[tuple[str, str], list[str]] = {}
    for node, status, problem in problems:
        groups.setdefault((status, problem), []).append(node)
    found = [(status, problem, nodes) for (status, problem), nodes in groups.items()]
    return sorted((group for group in found if len(group[2]) > 1), key=lambda group: -len(group[2]))
