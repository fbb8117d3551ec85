"""Nodes in-process that answer every command as a healthy node would, but one that lies.

A cluster of three (n1, n2, n3): every check but latency (which times the control node's own
TCP handshakes, not a node's output), with a training master and the deep probe, so every
remote command runs. Each command's answer is a captured output from tests/fixtures; the
victim, n2, answers one command with whatever a test gives it. `HostileTransport` serves
them to `ugro.sweep`, in the daemon's path and in `ugro check`'s alike.

`KINDS` names each remote command; `number_sites` lists, for each, the places where its
output carries a number a check reads, so a test can put an impossible one there.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import yaml

from conftest import fixture_text
from ugro.checks import deep, disk, gpu, gpuquery, processes, reachability, remap, rendezvous, xid
from ugro.checks import torch as torch_check
from ugro.config import ALL_CHECKS
from ugro.model import CommandResult

if TYPE_CHECKING:
    from pathlib import Path

    from ugro.config import Worker
    from ugro.transport import Session

NODES = ("n1", "n2", "n3")
VICTIM = "n2"
# Every check but latency, which times ugro's own TCP handshakes, not what a node prints.
CHECKS = [name for name in ALL_CHECKS if name != "latency"]
DISK_PATHS = ["/", "/scratch"]

#: What each remote command answers on a healthy node, by kind of command.
HEALTHY: dict[str, str] = {
    "ssh": fixture_text("proc", "healthy.txt"),
    "gpu": fixture_text("nvidia-smi", "healthy-2x4090.csv"),
    "health": fixture_text("nvidia-smi", "health-2x4090.csv"),
    "remap": fixture_text("nvidia-smi", "remap-2x4090-na.csv"),
    "apps": fixture_text("nvidia-smi", "apps-training.csv"),
    "ps": fixture_text("ps", "training.txt"),
    "xid": fixture_text("kernel-log", "dmesg-app-xids.txt"),
    "torch": fixture_text("torch", "healthy.txt"),
    "disk": fixture_text("df", "healthy-two-paths.txt"),
    "rendezvous": fixture_text("rendezvous", "connected.txt"),
    "deep": fixture_text("deep", "healthy-2x4090.txt"),
}
KINDS = tuple(HEALTHY)


def kind_of(command: str) -> str:
    """Which remote command `command` is, as HEALTHY names it."""
    exact = {
        reachability.COMMAND: "ssh",
        gpu.COMMAND: "gpu",
        gpuquery.COMMAND: "health",
        remap.COMMAND: "remap",
        processes.COMMAND: "apps",
        processes.PS_COMMAND: "ps",
    }
    if command in exact:
        return exact[command]
    markers = {
        xid.MARK: "xid",
        torch_check.MARKER: "torch",
        deep.MARKER: "deep",
        rendezvous.MARKER: "rendezvous",
        disk.SECTION: "disk",
    }
    return next(kind for marker, kind in markers.items() if marker in command)


def write_config(path: Path) -> Path:
    """A cluster.yaml for NODES, with a master and the deep probe, at `path`."""
    workers = [
        {
            "name": name,
            "ip": f"10.0.0.{i}",
            "gpu": "RTX 4090",
            "gpus": 2,
            "checks": CHECKS,
            "disk_paths": DISK_PATHS,
            "deep": True,
            "master": {"addr": "10.0.0.1", "port": 29500},
        }
        for i, name in enumerate(NODES, start=1)
    ]
    path.write_text(yaml.safe_dump({"workers": workers}), encoding="utf-8")
    return path


@dataclass
class HostileTransport:
    """Sessions to NODES; the victim answers `lie[kind]` instead of the healthy output."""

    lie: dict[str, CommandResult] = field(default_factory=dict)

    async def open(self, node: Worker) -> Session:
        """A session that answers as `node` does."""
        return _Session(self, node.name)

    async def close(self) -> None:
        """Nothing to close."""


@dataclass
class _Session:
    transport: HostileTransport
    name: str
    peer: tuple[str, int] | None = None

    def round_trip(self) -> None:
        """No TCP connection of its own: the latency check falls back to probes."""

    async def run(self, command: str, *, timeout: float) -> CommandResult:
        """The healthy answer to `command`, or the victim's lie."""
        del timeout
        kind = kind_of(command)
        if self.name == VICTIM and kind in self.transport.lie:
            return self.transport.lie[kind]
        return CommandResult(0, HEALTHY[kind])


# --- where the numbers are --------------------------------------------------------------

_CSV_NUMERIC = {
    # index, temperature, utilisation, memory used and total, power draw and limit
    "gpu": (0, 3, 4, 5, 6, 7, 8),
    # index, utilisation, temperature, ECC counts, retired pages, throttle mask, PCIe links
    "health": (0, 6, 7, 9, 10, 11, 12, 13, 14, 16, 17, 18, 19, 20),
    # remapped rows: correctable, uncorrectable
    "remap": (1, 2),
    # pid, used memory
    "apps": (1, 3),
}
_JSON_NUMERIC = {
    "torch": (("devices",),),
    "rendezvous": (("ms",),),
    "deep": (
        ("scale",),
        ("size",),
        ("gpus", 0, "index"),
        ("gpus", 1, "fp32", "ms"),
        ("gpus", 1, "bf16", "ms"),
        ("gpus", 0, "fp32", "err"),
    ),
}
_JSON_MARKERS = {
    "torch": torch_check.MARKER,
    "rendezvous": rendezvous.MARKER,
    "deep": deep.MARKER,
}
# Numbers in the text outputs that a check reads, as (line pattern, group).
_TEXT_NUMERIC = {
    "ssh": (
        (r"^(\S+) \S+ \S+ \d+/\d+ \d+$", 1),
        (r"^\S+ (\S+) \S+ \d+/\d+ \d+$", 1),
        (r"^(\d+)$", 1),
        (r"^MemTotal:\s+(\d+) kB$", 1),
        (r"^MemAvailable:\s+(\d+) kB$", 1),
    ),
    "ps": ((r"^\s*(48213) ", 1), (r"^\s*48213 \S+\s+(\d+) ", 1)),
    "xid": (
        (r"^@@ugro now (\S+)$", 1),
        (r"^@@ugro uptime (\S+)$", 1),
        (r"^\[\s*([\d.]+)\] NVRM", 1),
        (r"NVRM: Xid \([^)]*\): (\d+)", 1),
    ),
    "disk": (
        (r"^\S+\s+(\d+)\s+\d+\s+\d+\s+\d+%", 1),
        (r"^\S+\s+\d+\s+(\d+)\s+\d+\s+\d+%", 1),
        (r"^\S+\s+\d+\s+\d+\s+(\d+)\s+\d+%", 1),
    ),
}


def number_sites(kind: str) -> int:
    """How many places of `kind`'s healthy output carry a number a check reads."""
    if kind in _CSV_NUMERIC:
        return len(_CSV_NUMERIC[kind])
    if kind in _JSON_NUMERIC:
        return len(_JSON_NUMERIC[kind])
    return len(_TEXT_NUMERIC[kind])


def with_number(kind: str, site: int, number: str) -> str:
    """`kind`'s healthy output with the number at `site` replaced by `number` (JSON text).

    In CSV, the first line's field; in JSON, the value at a key path; in text, the first
    line the site's pattern matches (ps: the line of a process holding GPU memory).
    """
    text = HEALTHY[kind]
    if kind in _CSV_NUMERIC:
        lines = text.splitlines()
        fields = lines[0].split(", ")
        fields[_CSV_NUMERIC[kind][site]] = number
        return "\n".join([", ".join(fields), *lines[1:]]) + "\n"
    if kind in _JSON_NUMERIC:
        marker = _JSON_MARKERS[kind]
        report = json.loads(text.strip().removeprefix(marker))
        *path, last = _JSON_NUMERIC[kind][site]
        target = report
        for key in path:
            target = target[key]
        target[last] = "@@"
        return marker + json.dumps(report).replace('"@@"', number) + "\n"
    pattern, group = _TEXT_NUMERIC[kind][site]
    lines = text.splitlines()
    for i, line in enumerate(lines):
        match = re.search(pattern, line)
        if match:
            lines[i] = line[: match.start(group)] + number + line[match.end(group) :]
            return "\n".join(lines) + "\n"
    raise AssertionError(f"no line of {kind} matches {pattern!r}")
