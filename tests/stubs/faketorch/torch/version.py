"""Fake `torch.version`: the build's torch and CUDA versions."""

from torch import _stubmode

__version__ = _stubmode.TORCH_VERSION if _stubmode.CUDA_BUILD else "2.5.1+cpu"
#: CUDA version the build was compiled against; None for a CPU-only build, as in real torch.
cuda: str | None = "12.4" if _stubmode.CUDA_BUILD else None
