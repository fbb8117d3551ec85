"""Numbers and names read from a node's output: plausible, or the check is unknown.

Everything a node prints is untrusted (DESIGN §10). A reading is taken only when it is a
finite number within what the quantity can be; anything else raises InvalidOutput naming the
field and the value, which the sweep turns into the check's `unknown`. So nothing absurd
reaches scoring, the state file, SQLite or Prometheus: a 310-digit free-space figure or a
temperature of nan is not a measurement, and no check may judge it.

The ranges are wide on purpose: they refuse what no hardware reports, never a real extreme
(a GPU at 120 °C still fails the temperature check rather than being unknown).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ugro.errors import InvalidOutput


@dataclass(frozen=True, slots=True)
class Range:
    """What a quantity can be: `lo` to `hi` (inclusive), in `unit`."""

    lo: float
    hi: float
    unit: str = ""

    def __str__(self) -> str:
        """'-40 to 150 °C', for messages."""
        return f"{self.lo:g} to {self.hi:g}" + (f" {self.unit}" if self.unit else "")


# GPUs one node can have: 16 in the largest HGX boards, 64 behind a PCIe fabric.
MAX_GPUS = 256
# NVML reports temperatures as unsigned integers; -40 °C is the coldest any server hardware is
# specified for, and no die survives 150 °C (GPUs shut down near 100 °C).
CELSIUS = Range(-40, 150, "°C")
PERCENT = Range(0, 100, "%")
# The largest GPUs have 288 GB; 16 TiB leaves decades of room.
GPU_MEMORY_MIB = Range(0, 2**24, "MiB")
# A GB200 superchip, two GPUs and a CPU, draws 2.7 kW.
WATTS = Range(0, 10_000, "W")
GPU_INDEX = Range(0, MAX_GPUS - 1)
# torch counts every MIG instance as a device: up to 7 on one GPU.
CUDA_DEVICES = Range(0, 8 * MAX_GPUS)
# A counter (ECC errors, retired pages, remapped rows, GPUs): whole, and exact in a double,
# which is what JSON readers and Prometheus hold.
COUNT = Range(0, 2**53)
PCIE_GEN = Range(0, 16)
PCIE_WIDTH = Range(0, 64, "lanes")
# NVML's clocks throttle reasons: a 64-bit mask.
BITMASK = Range(0, 2**64 - 1)
# statfs counts fit a signed 64-bit integer (8 EiB), as does an SQLite integer.
BYTES = Range(0, 2**63 - 1, "bytes")
# The largest single-image machines have 48 TiB of memory; 4 PiB is beyond any.
MEMORY_BYTES = Range(0, 2**52, "bytes")
LOAD = Range(0, 1_000_000)
# Linux's NR_CPUS tops out at 8192.
CPUS = Range(1, 2**16)
# Unix time up to the year 2242; uptimes and process ages up to 136 years.
UNIX_TIME = Range(0, 2**33, "s")
SECONDS = Range(0, 2**32, "s")
# NVIDIA's Xid catalog numbers them below 200.
XID = Range(0, 2**16)
# Linux's PID_MAX_LIMIT.
PID = Range(0, 2**22)
# Timings a probe reports; no timeout ugro sets comes near a day.
MILLISECONDS = Range(0, 86_400_000, "ms")

# The longest text a plausible number has (a 64-bit count has 20 digits): longer text is
# refused before it is parsed, so a 400-digit line costs nothing and overflows nothing.
MAX_CHARS = 40
# Characters shown of a refused value: a message names it, a megabyte of it is no use.
SHOWN_CHARS = 40
# Integers as nvidia-smi, /proc and ps print them: decimal, or hexadecimal with its 0x.
_INTEGER = {10: re.compile(r"-?[0-9]+"), 16: re.compile(r"0[xX][0-9a-fA-F]+")}
# A version as drivers, CUDA, torch, NCCL and Python spell them: 550.54.15, 2.4.1+cu124,
# 2.5.0a0+git9a1b2c3.
_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+_~-]{0,63}")


def shown(value: object) -> str:
    """`value` for a message: a string's repr or a number, cut to SHOWN_CHARS; else its type.

    A list or object from a probe's JSON is named, not printed: it may be nested deep.
    """
    if isinstance(value, str):
        text = repr(value[:SHOWN_CHARS])
    elif isinstance(value, int | float):
        text = (
            str(value) if not isinstance(value, int) or value.bit_length() < 256 else "a huge int"
        )
    else:
        text = f"a {type(value).__name__}"
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def said(value: object) -> str:
    """What a node said in a text field (an error, a reason), as is; anything else `shown`.

    A message may quote it whole: the sweep bounds every message.
    """
    return value if isinstance(value, str) else shown(value)


def number(value: object, field: str, allowed: Range) -> float:
    """`value` as a float within `allowed`: text a node printed, or a number from JSON.

    Raise InvalidOutput naming `field` and the value for anything else: not a number, nan,
    infinite, out of range.
    """
    parsed: float | None = None
    if isinstance(value, str):
        if len(value) <= MAX_CHARS:
            try:
                parsed = float(value)
            except ValueError:
                parsed = None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            parsed = float(value)
        except OverflowError:
            parsed = None
    if parsed is None or not math.isfinite(parsed) or not allowed.lo <= parsed <= allowed.hi:
        raise _invalid(value, field, allowed)
    return parsed


def whole(value: object, field: str, allowed: Range, *, base: int = 10) -> int:
    """`value` as an integer within `allowed`: digits a node printed (in `base`), or a JSON int.

    Raise InvalidOutput naming `field` and the value for anything else.
    """
    parsed: int | None = None
    if isinstance(value, str):
        text = value.strip()
        if len(text) <= MAX_CHARS and _INTEGER[base].fullmatch(text):
            parsed = int(text, base)
    elif isinstance(value, int) and not isinstance(value, bool):
        parsed = value
    if parsed is None or not allowed.lo <= parsed <= allowed.hi:
        raise _invalid(value, field, allowed)
    return parsed


def name(value: str, field: str, longest: int) -> str:
    """Text a node reported as a name (a GPU model, a UUID, a mount point): at most `longest`.

    Raise InvalidOutput when it is longer: nothing that long is the name of anything.
    """
    if len(value) > longest:
        raise InvalidOutput(f"{field} is {shown(value)}, longer than any ({len(value)} characters)")
    return value


def version(value: object) -> str | None:
    """A version as software spells it (550.54.15, 2.4.1+cu124), or None for anything else."""
    text = str(value) if isinstance(value, str | int) and not isinstance(value, bool) else ""
    return text if _VERSION.fullmatch(text) else None


def _invalid(value: object, field: str, allowed: Range) -> InvalidOutput:
    return InvalidOutput(f"{field} is {shown(value)}, not a reading in {allowed}")
