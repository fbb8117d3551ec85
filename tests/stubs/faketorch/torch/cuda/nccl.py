"""Fake `torch.cuda.nccl`: the version of the NCCL torch was built with."""

from torch import _stubmode


def version() -> tuple[int, ...]:
    """`(major, minor, patch)`, as torch 1.12 and later return it."""
    if not _stubmode.CUDA_BUILD:
        # A CPU build has no NCCL bindings.
        raise AttributeError("module 'torch._C' has no attribute '_nccl_version'")
    return _stubmode.NCCL_VERSION
