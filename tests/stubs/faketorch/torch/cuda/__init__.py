"""Fake `torch.cuda`: availability, device count and names."""

from torch import _stubmode


def is_available() -> bool:
    """Say whether CUDA can be used, like `torch.cuda.is_available()`."""
    return _stubmode.CUDA_BUILD and _stubmode.DEVICE_COUNT > 0


def device_count() -> int:
    """Return the number of visible CUDA devices (0 on a CPU build, as in real torch)."""
    return _stubmode.DEVICE_COUNT


def get_device_name(device: int | None = None) -> str:
    """Return a device's marketing name; errors mimic real torch's messages."""
    if not _stubmode.CUDA_BUILD:
        raise AssertionError("Torch not compiled with CUDA enabled")
    index = 0 if device is None else device
    if not 0 <= index < _stubmode.DEVICE_COUNT:
        raise AssertionError("Invalid device id")
    return _stubmode.DEVICE_NAME
