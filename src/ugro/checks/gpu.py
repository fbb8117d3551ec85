"""The `gpu` check: nvidia-smi answers and lists the GPUs the node should have.

One query gives the count, the model and the detailed metrics (temperature, utilisation,
memory, power), so the check costs a single command.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ugro.checks import RemoteCheck, cut_short
from ugro.checks.readings import (
    CELSIUS,
    GPU_INDEX,
    GPU_MEMORY_MIB,
    MAX_GPUS,
    PERCENT,
    WATTS,
    Range,
    name,
    number,
    whole,
)
from ugro.errors import InvalidOutput
from ugro.model import CommandResult, Evaluation, GpuMetrics, Status

if TYPE_CHECKING:
    from ugro.config import Worker

FIELDS = (
    "index",
    "uuid",
    "name",
    "temperature.gpu",
    "utilization.gpu",
    "memory.used",
    "memory.total",
    "power.draw",
    "power.limit",
)
COMMAND = f"nvidia-smi --query-gpu={','.join(FIELDS)} --format=csv,noheader,nounits"

# nvidia-smi's documented return codes (nvidia-smi(1), "RETURN VALUE"), with the usual
# real-world cause and the next step.
EXIT_CAUSES = {
    2: "nvidia-smi rejected the query (exit 2): the driver is too old for a queried field; "
    "upgrade the driver",
    3: "the operation is not available on this GPU (exit 3)",
    4: "nvidia-smi lacks permission (exit 4): run it as a user allowed to open /dev/nvidia*",
    6: "nvidia-smi found no GPU (exit 6): the driver sees no device; check "
    "`lspci | grep -i nvidia`",
    8: "a GPU's external power cables are not attached (exit 8): check the PCIe power leads",
    9: "the NVIDIA driver is not loaded (exit 9): run `sudo modprobe nvidia` and check "
    "`dmesg | grep -i nvidia`; after a kernel upgrade, rebuild the driver (DKMS)",
    10: "the NVIDIA kernel module reports an interrupt problem with a GPU (exit 10): "
    "check `dmesg`, then reboot",
    12: "the NVML library is missing (exit 12): the driver's user-space part is not "
    "installed or does not match the kernel module; reinstall the driver",
    13: "this NVML does not implement the query (exit 13): the driver is too old",
    14: "a GPU's infoROM is corrupted (exit 14): the GPU needs service",
    15: "a GPU has fallen off the bus (exit 15): reboot the node; if it recurs, reseat or "
    "replace the GPU and check its power",
    18: "driver/library version mismatch (exit 18): the driver was upgraded without a "
    "reboot; reboot the node",
    255: "nvidia-smi failed with an internal driver error (exit 255): check `dmesg` for Xid "
    "errors and reboot",
}

_NOT_AVAILABLE = re.compile(r"^\[?(N/A|Not Supported|Unknown Error|Insufficient Permissions)\]?$")
# NVML's buffers: NVML_DEVICE_UUID_V2_BUFFER_SIZE and NVML_DEVICE_NAME_V2_BUFFER_SIZE.
UUID_CHARS = 96
NAME_CHARS = 96


class Gpu(RemoteCheck):
    """nvidia-smi works and reports at least `gpus` GPUs of the configured model."""

    name = "gpu"
    weight = 25
    default_timeout_s = 10
    core = True
    hang_hint = (
        "nvidia-smi hung: the driver is wedged, often after an Xid error; check "
        "`dmesg | grep -i xid` and reboot the node"
    )

    def command(self, node: Worker) -> str:  # noqa: ARG002 - the query is the same everywhere
        """The nvidia-smi CSV query; it takes no config values."""
        return COMMAND

    def evaluate(self, result: CommandResult, node: Worker) -> Evaluation:
        """Map failures to causes; compare the GPU count and model with the config."""
        if (short := cut_short(result, "nvidia-smi")) is not None:
            return short
        if result.exit_status != 0:
            return Evaluation(Status.FAIL, failure(result))
        gpus = parse(result.stdout)
        names = sorted({g.name for g in gpus})
        count = len(gpus)
        if count < node.gpus:
            found = f"{count} GPU{'s' if count != 1 else ''}" + (
                f" ({', '.join(names)})" if names else ""
            )
            return Evaluation(
                Status.FAIL,
                f"found {found}, expected {node.gpus}: a GPU is missing or fell off the bus; "
                "check `nvidia-smi -L` and `dmesg`",
                value=count,
                unit="gpus",
                gpus=gpus,
            )
        summary = (
            f"{count} × {names[0]}" if len(names) == 1 else f"{count} GPUs: {', '.join(names)}"
        )
        if node.gpu and gpus and not all(_same_model(node.gpu, g.name) for g in gpus):
            return Evaluation(
                Status.WARN,
                f"{summary}, but cluster.yaml says {node.gpu!r}; "
                "fix `gpu:` if the hardware changed",
                value=count,
                unit="gpus",
                gpus=gpus,
            )
        return Evaluation(
            Status.OK, summary if gpus else "no GPUs expected", value=count, unit="gpus", gpus=gpus
        )


def failure(result: CommandResult) -> str:
    """Why nvidia-smi failed, from its exit code (EXIT_CAUSES) and its first line of output."""
    text = (result.stdout + "\n" + result.stderr).strip()
    said = text.splitlines()[0] if text else ""
    if result.exit_status is None:
        return f"nvidia-smi was killed by signal {result.exit_signal or '?'}"
    if result.exit_status == 127 or "not found" in result.stderr:
        return (
            "nvidia-smi not found on the node's PATH: the NVIDIA driver is not installed "
            "(or PATH lacks /usr/bin)"
        )
    cause = EXIT_CAUSES.get(result.exit_status, f"nvidia-smi failed (exit {result.exit_status})")
    return f"{cause}" + (f"; nvidia-smi said: {said}" if said else "")


def cause(result: CommandResult) -> str:
    """`failure` without the advice: for checks that defer to this one's message."""
    return failure(result).split(": ", 1)[0]


def _same_model(configured: str, reported: str) -> bool:
    """'RTX 4090' matches 'NVIDIA GeForce RTX 4090': every configured word appears."""
    words = set(reported.lower().replace("-", " ").split())
    return all(w in words for w in configured.lower().replace("-", " ").split())


def _reading(fields: list[str], at: int, allowed: Range) -> float | None:
    """Field `at` of a GPU's line as a number in `allowed`; None where the driver says N/A."""
    text = fields[at]
    if _NOT_AVAILABLE.match(text):
        return None
    return number(text, f"{FIELDS[at]} of GPU {fields[0]}", allowed)


def parse(stdout: str) -> tuple[GpuMetrics, ...]:
    """One GpuMetrics per CSV line; raise ValueError on anything that is not the query's CSV.

    Every reading must be plausible (`ugro.checks.readings`): InvalidOutput names the first
    that is not.
    """
    gpus: list[GpuMetrics] = []
    for line in stdout.splitlines():
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != len(FIELDS):
            raise ValueError(
                f"expected {len(FIELDS)} comma-separated fields, got {line.strip()[:120]!r}"
            )
        if len(gpus) == MAX_GPUS:
            raise InvalidOutput(f"nvidia-smi lists more than {MAX_GPUS} GPUs, more than any node")
        gpus.append(
            GpuMetrics(
                index=whole(fields[0], "GPU index", GPU_INDEX),
                uuid=name(fields[1], f"uuid of GPU {fields[0]}", UUID_CHARS),
                name=name(fields[2], f"name of GPU {fields[0]}", NAME_CHARS),
                temperature_c=_reading(fields, 3, CELSIUS),
                utilization_pct=_reading(fields, 4, PERCENT),
                memory_used_mib=_reading(fields, 5, GPU_MEMORY_MIB),
                memory_total_mib=_reading(fields, 6, GPU_MEMORY_MIB),
                power_draw_w=_reading(fields, 7, WATTS),
                power_limit_w=_reading(fields, 8, WATTS),
            )
        )
    return tuple(gpus)


CHECK = Gpu()
