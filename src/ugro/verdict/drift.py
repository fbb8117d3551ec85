"""Version drift: nodes of one cluster running different driver, CUDA, torch, NCCL or Python.

Distributed training needs the same software on every rank. NCCL in particular fails in
confusing ways across versions (hangs at the first collective, "unhandled system error",
wrong results from a mismatched protocol) long after the job has started, so a difference is
worth saying before a launch, not after.

Pure and stdlib-only: `ugro health` imports it and must stay instant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

# What is compared, in the order findings are listed, and how each is named for a person.
COMPONENTS: dict[str, str] = {
    "driver": "NVIDIA driver",
    "cuda": "CUDA (torch build)",
    "torch": "torch",
    "nccl": "NCCL",
    "python": "Python",
}
# Nodes named in full in a message before "and N more".
SHOWN = 5


@dataclass(frozen=True, slots=True)
class Finding:
    """Nodes disagreeing on one component's version.

    `groups` maps each version to the nodes that have it, most common first. `majority` is
    the most common version, or None when two or more versions tie for most common; `odd`
    maps every node outside the majority to its version (empty on a tie: no side is odd).
    """

    component: str
    majority: str | None
    odd: dict[str, str]
    groups: dict[str, tuple[str, ...]]
    message: str
    kind: str = "version_drift"

    def to_json(self) -> dict[str, Any]:
        """The finding in `--json` output's `findings` list."""
        return {
            "kind": self.kind,
            "component": self.component,
            "majority": self.majority,
            "odd": dict(self.odd),
            "groups": {version: list(nodes) for version, nodes in self.groups.items()},
            "message": self.message,
        }


def version_drift(
    versions: Mapping[str, Mapping[str, str]], components: Iterable[str] = COMPONENTS
) -> list[Finding]:
    """A finding per component on which the nodes' versions differ.

    `versions` maps each node to the versions its checks saw; a node that did not report a
    component (unreachable, torch missing, an older ugro) is left out of that comparison:
    an unknown version is never drift.
    """
    findings = []
    for component in components:
        groups: dict[str, list[str]] = {}
        for node in sorted(versions):
            version = versions[node].get(component)
            if version:
                groups.setdefault(version, []).append(node)
        if len(groups) < 2:
            continue
        ordered = sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))
        tie = len(ordered[1][1]) == len(ordered[0][1])
        majority = None if tie else ordered[0][0]
        odd = {node: version for version, nodes in ordered[1:] for node in nodes if not tie}
        findings.append(
            Finding(
                component=component,
                majority=majority,
                odd=dict(sorted(odd.items())),
                groups={version: tuple(nodes) for version, nodes in ordered},
                message=_message(component, majority, ordered),
            )
        )
    return findings


def _message(component: str, majority: str | None, ordered: list[tuple[str, list[str]]]) -> str:
    name = COMPONENTS.get(component, component)
    advice = (
        "NCCL fails in confusing ways across versions; install the same version on every node"
        if component in {"nccl", "torch", "cuda"}
        else "install the same version on every node"
    )
    if majority is None:
        sides = "; ".join(f"{version} on {_nodes(nodes)}" for version, nodes in ordered)
        return f"{name} differs with no majority: {sides}; {advice}"
    odd = "; ".join(f"{_nodes(nodes)} {version}" for version, nodes in ordered[1:])
    count = len(ordered[0][1])
    return (
        f"{name} differs: {odd}, against {majority} on {count} node{'s' if count != 1 else ''}; "
        f"{advice}"
    )


def _nodes(nodes: list[str]) -> str:
    if len(nodes) <= SHOWN:
        return ", ".join(nodes)
    return f"{', '.join(nodes[:SHOWN])} and {len(nodes) - SHOWN} more"
