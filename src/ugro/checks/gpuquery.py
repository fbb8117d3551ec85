"""One nvidia-smi query that the GPU health checks share, and its parser.

ecc, remap (retired pages), throttle, pcie and temperature all read their fields from the
same command string, so the monitor runs nvidia-smi once per node check for all of them
(`ugro.transport.shared`). Each check judges its own fields of the per-GPU `GpuRow`.

Every field name here is one that drivers from R450 on accept. A field an old driver does
not know fails the whole query (exit 2), so newer spellings are avoided:
`clocks_throttle_reasons.active` is still accepted by drivers that call it
`clocks_event_reasons.active` (R535 on), and `pcie.link.gen.current`/`.max` by drivers
that add `gen.gpucurrent`/`gen.hostmax`.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from abc import abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ugro.checks import Check, RemoteCheck, cut_short
from ugro.checks.gpu import NAME_CHARS, UUID_CHARS, cause
from ugro.checks.readings import (
    BITMASK,
    CELSIUS,
    COUNT,
    GPU_INDEX,
    MAX_GPUS,
    PCIE_GEN,
    PCIE_WIDTH,
    PERCENT,
    Range,
    name,
    number,
    shown,
    version,
    whole,
)
from ugro.errors import InvalidOutput
from ugro.model import CommandResult, Evaluation, Status

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ugro.config import Worker

FIELDS = (
    "index",
    "uuid",
    "pci.bus_id",
    "name",
    "driver_version",
    "pstate",
    "utilization.gpu",
    "temperature.gpu",
    "ecc.mode.current",
    "ecc.errors.corrected.volatile.total",
    "ecc.errors.uncorrected.volatile.total",
    "ecc.errors.corrected.aggregate.total",
    "ecc.errors.uncorrected.aggregate.total",
    "retired_pages.sbe",
    "retired_pages.dbe",
    "retired_pages.pending",
    "clocks_throttle_reasons.active",
    "pcie.link.gen.current",
    "pcie.link.gen.max",
    "pcie.link.width.current",
    "pcie.link.width.max",
)
COMMAND = f"nvidia-smi --query-gpu={','.join(FIELDS)} --format=csv,noheader,nounits"

# What nvidia-smi prints for a field the GPU or driver does not offer (GeForce cards have no
# ECC, pre-Ampere ones no row remapping). Older drivers bracket it, newer ones do not always.
_UNSUPPORTED = re.compile(r"^\[?(N/A|Not Supported)\]?$")
# Any other bracketed word means the reading failed: [Unknown Error], [GPU is lost], ...
_FAILED = re.compile(r"^\[(?P<why>[^\]]*)\]$")
# What each numeric field can be (`ugro.checks.readings`); `GpuRow.number` refuses the rest.
RANGES: dict[str, Range] = {
    "utilization.gpu": PERCENT,
    "temperature.gpu": CELSIUS,
    "ecc.errors.corrected.volatile.total": COUNT,
    "ecc.errors.uncorrected.volatile.total": COUNT,
    "ecc.errors.corrected.aggregate.total": COUNT,
    "ecc.errors.uncorrected.aggregate.total": COUNT,
    "retired_pages.sbe": COUNT,
    "retired_pages.dbe": COUNT,
    "pcie.link.gen.current": PCIE_GEN,
    "pcie.link.gen.max": PCIE_GEN,
    "pcie.link.width.current": PCIE_WIDTH,
    "pcie.link.width.max": PCIE_WIDTH,
}
# Fields that are a hexadecimal bitmask (`GpuRow.bits`), and those that are Yes or No (`flag`).
BITMASKS = ("clocks_throttle_reasons.active",)
FLAGS = ("retired_pages.pending",)
_YES = frozenset({"1", "yes", "true"})
_NO = frozenset({"0", "no", "false"})
# NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE.
BUS_ID_CHARS = 32


@dataclass(frozen=True, slots=True)
class GpuRow:
    """One GPU's line of the shared query: its identity and every field as nvidia-smi said it."""

    index: int
    uuid: str
    bus_id: str
    name: str
    fields: Mapping[str, str]
    # What the checks read, read once when the row is parsed (`parse`; eight checks read a
    # row): the fields nvidia-smi does not offer, and each number (RANGES), mask (BITMASKS)
    # and flag (FLAGS), None where unsupported or failed.
    unoffered: frozenset[str]
    numbers: Mapping[str, float | None]
    masks: Mapping[str, int | None]
    flags: Mapping[str, bool | None]

    @property
    def label(self) -> str:
        """How messages name the GPU: its index and PCI bus id."""
        return f"GPU {self.index} ({self.bus_id})"

    def text(self, field: str) -> str:
        """The field exactly as nvidia-smi printed it (stripped)."""
        return self.fields[field]

    def unsupported(self, field: str) -> bool:
        """Whether nvidia-smi says the GPU does not offer the field ([N/A], [Not Supported])."""
        return field in self.unoffered

    def failed(self, field: str) -> str | None:
        """Why the reading failed ([Unknown Error], ...), or None when it did not."""
        text = self.fields[field]
        if self.unsupported(field):
            return None
        match = _FAILED.match(text)
        return match["why"] if match else None

    def number(self, field: str) -> float | None:
        """The field (RANGES) as a number; None when unsupported or failed."""
        return self.numbers[field]

    def flag(self, field: str) -> bool | None:
        """A Yes/No field (FLAGS) as a bool; None when unsupported or failed (see `flag`)."""
        return self.flags[field]

    def bits(self, field: str) -> int | None:
        """A bitmask field (BITMASKS) as an int; None when unsupported or failed."""
        return self.masks[field]


def unread(text: str) -> bool:
    """Whether nvidia-smi printed no value: [N/A], [Not Supported], [Unknown Error], ..."""
    return bool(_UNSUPPORTED.match(text) or _FAILED.match(text))


def flag(text: str, field: str) -> bool | None:
    """A Yes/No (or 1/0) answer; None where nvidia-smi printed no value (`unread`).

    InvalidOutput for anything else: a flag that says neither cannot be taken for No.
    """
    word = text.strip().lower()
    if word in _YES:
        return True
    if word in _NO:
        return False
    if unread(text.strip()):
        return None
    raise InvalidOutput(f"{field} is {shown(text)}, not Yes or No")


# Seven checks parse each node's one answer in a row (they wait on the same command); the
# parse was some 7 % of a thousand-node daemon's own CPU (benchmarks/fleet_scale.py).
@functools.lru_cache(maxsize=32)
def parse(stdout: str) -> tuple[GpuRow, ...]:
    """One GpuRow per CSV line; raise ValueError on anything that is not the query's CSV.

    Every number of every row must be plausible, whichever check reads it: InvalidOutput
    names the first that is not, and each check of the query is unknown. A node whose
    nvidia-smi prints a nan anywhere is not one to believe elsewhere. Pure, and cached: the
    rows are immutable.
    """
    rows: list[GpuRow] = []
    for line in stdout.splitlines():
        if not line.strip():
            continue
        values = [v.strip() for v in line.split(",")]
        if len(values) != len(FIELDS) or not all(values):
            raise ValueError(
                f"expected {len(FIELDS)} comma-separated fields, got {len(values)}: "
                f"{line.strip()[:120]!r}"
            )
        if len(rows) == MAX_GPUS:
            raise InvalidOutput(f"nvidia-smi lists more than {MAX_GPUS} GPUs, more than any node")
        fields = dict(zip(FIELDS, values, strict=True))
        index = whole(fields["index"], "GPU index", GPU_INDEX)
        uuid = name(fields["uuid"], f"uuid of GPU {index}", UUID_CHARS)
        bus_id = name(fields["pci.bus_id"], f"pci.bus_id of GPU {index}", BUS_ID_CHARS)
        model = name(fields["name"], f"name of GPU {index}", NAME_CHARS)
        unoffered = frozenset(f for f, text in fields.items() if _UNSUPPORTED.match(text))
        # The text of each reading that nvidia-smi gave a value for (unread ones are None).
        given = {
            f: None if f in unoffered or _FAILED.match(fields[f]) else fields[f]
            for f in (*RANGES, *BITMASKS)
        }
        numbers = {
            f: None if (text := given[f]) is None else number(text, f"{f} of GPU {index}", r)
            for f, r in RANGES.items()
        }
        masks = {
            f: None
            if (text := given[f]) is None
            else whole(text, f"{f} of GPU {index}", BITMASK, base=16)
            for f in BITMASKS
        }
        flags = {f: flag(fields[f], f"{f} of GPU {index}") for f in FLAGS}
        rows.append(GpuRow(index, uuid, bus_id, model, fields, unoffered, numbers, masks, flags))
    return tuple(rows)


def driver_versions(rows: tuple[GpuRow, ...]) -> dict[str, str]:
    """{"driver": <version>} for the version-drift view, when nvidia-smi reported one.

    A version that is not spelled as one (`readings.version`) is left out, never stored.
    """
    versions = {r.text("driver_version") for r in rows if not r.unsupported("driver_version")}
    driver = version(next(iter(versions))) if len(versions) == 1 else None
    return {"driver": driver} if driver else {}


def models(rows: tuple[GpuRow, ...]) -> str:
    """The GPU models of `rows`, for messages: 'NVIDIA GeForce RTX 4090' or a list."""
    return ", ".join(sorted({r.name for r in rows}))


def hung(timeout: float) -> Evaluation:
    """The verdict of a GPU health check whose nvidia-smi hung.

    UNKNOWN, not FAIL: the gpu check fails for a hung nvidia-smi, and one wedged driver is
    one failure, not eight.
    """
    return Evaluation(
        Status.UNKNOWN,
        f"not read: nvidia-smi did not answer within {timeout:g} s (see the gpu check)",
    )


class GpuHealth(Check):
    """A GPU health check: it runs only on nodes that expect GPUs."""

    # Only nodes that expect GPUs have any to check (`Check.applies`).
    gpu_health = True
    hang_hint = "nvidia-smi hung: the driver is wedged; check `dmesg | grep -i xid` and reboot"


class GpuHealthCheck(GpuHealth, RemoteCheck):
    """A GPU health check that reads the shared query and judges its own fields."""

    def command(self, node: Worker) -> str:  # noqa: ARG002 - the shared query is the same everywhere
        """The shared nvidia-smi query (module docstring)."""
        return COMMAND

    def unanswered(self, node: Worker) -> Evaluation:
        """A hung nvidia-smi is UNKNOWN here (see `hung`)."""
        return hung(self.timeout(node))

    def evaluate(self, result: CommandResult, node: Worker) -> Evaluation:
        """UNKNOWN when nvidia-smi fails (the gpu check fails for that); else `judge` the rows."""
        if (short := cut_short(result, "nvidia-smi")) is not None:
            return short
        if result.exit_status != 0:
            return Evaluation(Status.UNKNOWN, f"not read: {cause(result)} (see the gpu check)")
        rows = parse(result.stdout)
        if not rows:
            return Evaluation(Status.UNKNOWN, "not read: nvidia-smi listed no GPU")
        evaluation = self.judge(rows, node)
        return dataclasses.replace(evaluation, versions=driver_versions(rows))

    @abstractmethod
    def judge(self, rows: tuple[GpuRow, ...], node: Worker) -> Evaluation:
        """The verdict on this check's fields of every GPU."""
