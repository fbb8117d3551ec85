"""Fake `torch` for hosts without GPUs: just the API ugro's probes touch.

Behaviour follows `$UGRO_STUB_DIR/torch_mode` (the modes are listed in `_stubmode`):
healthy (CUDA build, 2 devices), one-device, nocuda (CPU build), broken (import fails the way
a torch whose CUDA runtime is missing does), hang (import never finishes), and the deep
probe's and version drift's faults.
"""

import time

from torch import _stubmode

if _stubmode.MODE == "broken":
    # The message a CUDA wheel gives when libcudart is not on the loader path.
    raise OSError("libcudart.so.12: cannot open shared object file: No such file or directory")
if _stubmode.MODE == "hang":
    # Longer than any probe timeout: the caller has to give up, not us.
    time.sleep(600)

from torch import cuda, version

__version__ = version.__version__
_TENSOR_NAMES = frozenset(
    {"Generator", "Tensor", "bfloat16", "dtype", "float32", "float64", "int64", "randint"}
)


def __getattr__(name: str) -> object:
    """The tensor API, imported on first use.

    Only the deep probe needs it, and its dataclasses would triple the start-up that every
    torch check pays on a test host.
    """
    if name in _TENSOR_NAMES:
        from torch import _tensor

        return getattr(_tensor, name)
    raise AttributeError(f"module 'torch' has no attribute {name!r}")


__all__ = [
    "Generator",
    "Tensor",
    "__version__",
    "bfloat16",
    "cuda",
    "dtype",
    "float32",
    "float64",
    "int64",
    "randint",
    "version",
]
