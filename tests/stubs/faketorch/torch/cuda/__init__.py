"""Fake `torch.cuda`: availability, devices, their properties, and synchronisation."""

from __future__ import annotations

from torch import _stubmode
from torch.cuda import nccl

__all__ = [
    "check_device",
    "current_device",
    "device_count",
    "get_device_name",
    "get_device_properties",
    "is_available",
    "is_bf16_supported",
    "nccl",
    "set_device",
    "synchronize",
]

_current = [0]


def is_available() -> bool:
    """Say whether CUDA can be used, like `torch.cuda.is_available()`."""
    return _stubmode.CUDA_BUILD and _stubmode.DEVICE_COUNT > 0


def device_count() -> int:
    """Return the number of visible CUDA devices (0 on a CPU build, as in real torch)."""
    return _stubmode.DEVICE_COUNT


def _index(device: int | str | None) -> int:
    """A device's index; errors mimic real torch's messages."""
    if not _stubmode.CUDA_BUILD:
        raise AssertionError("Torch not compiled with CUDA enabled")
    if device is None:
        index = _current[0]
    elif isinstance(device, str):
        index = int(device.partition(":")[2] or _current[0])
    else:
        index = device
    if not 0 <= index < _stubmode.DEVICE_COUNT:
        raise AssertionError("Invalid device id")
    return index


def check_device(device: int | str | None) -> None:
    """Use a device: raises as real torch does when its CUDA context cannot be created."""
    index = _index(device)
    if _stubmode.MODE == "cuda-error" and index == _stubmode.FAULTY_GPU:
        raise RuntimeError(_stubmode.CUDA_ERROR)


def get_device_name(device: int | None = None) -> str:
    """Return a device's marketing name."""
    _index(device)
    return _stubmode.DEVICE_NAME


# Plain classes, not dataclasses: importing `dataclasses` would triple the interpreter's
# start-up, which the test hosts pay at every torch check.
class _CUuuid:
    """A device UUID; printed without nvidia-smi's `GPU-` prefix, as real torch prints it."""

    def __init__(self, text: str) -> None:
        """The UUID in its 8-4-4-4-12 form."""
        self.text = text

    def __str__(self) -> str:
        """The UUID in its 8-4-4-4-12 form."""
        return self.text


class _DeviceProperties:
    """What `get_device_properties` returns (the fields the probes read)."""

    def __init__(self, name: str, major: int, minor: int, total_memory: int) -> None:
        """A device's name, compute capability and memory."""
        self.name = name
        self.major = major
        self.minor = minor
        self.total_memory = total_memory


class _DevicePropertiesWithUuid(_DeviceProperties):
    """Properties of a torch new enough to report the UUID (2.0 and later)."""

    def __init__(self, name: str, major: int, minor: int, total_memory: int, uuid: _CUuuid) -> None:
        """A device's properties and its UUID."""
        super().__init__(name, major, minor, total_memory)
        self.uuid = uuid


def get_device_properties(device: int | str | None = None) -> _DeviceProperties:
    """Name, compute capability, memory and (unless `no-uuid`) UUID of a device."""
    index = _index(device)
    major = 8 if _stubmode.BF16 else 7
    memory = 24 * 1024**3
    if not _stubmode.HAS_UUID:
        return _DeviceProperties(_stubmode.DEVICE_NAME, major, 9, memory)
    uuid = _CUuuid(_stubmode.UUIDS[index % len(_stubmode.UUIDS)])
    return _DevicePropertiesWithUuid(_stubmode.DEVICE_NAME, major, 9, memory, uuid)


def set_device(device: int | str) -> None:
    """Make `device` the current one."""
    _current[0] = _index(device)


def current_device() -> int:
    """The current device's index."""
    return _current[0]


def is_bf16_supported(including_emulation: bool = True) -> bool:
    """Whether the current device does bfloat16 natively (Ampere and later)."""
    del including_emulation
    return _stubmode.BF16


def synchronize(device: int | str | None = None) -> None:
    """Wait for the device's work; a faulty GPU reports its error here too."""
    check_device(device)
