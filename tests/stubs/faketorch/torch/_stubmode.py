"""Which behaviour the fake torch shows, read from the host's stub directory at import time."""

import os

#: Modes the fake understands (`missing` is handled by the python3 wrapper, not here).
MODES = frozenset(
    {
        "healthy",
        "one-device",
        "nocuda",
        "broken",
        "hang",
        # For the deep probe: GPUs without bfloat16 (pre-Ampere), a GPU that computes wrong,
        # a GPU whose CUDA context fails, and a torch too old to report GPU UUIDs.
        "no-bf16",
        "wrong-result",
        "cuda-error",
        "no-uuid",
        # For version drift: an older torch and NCCL than the other hosts'.
        "old-torch",
    }
)


def current() -> str:
    """Return the torch mode of the host this interpreter runs on (default `healthy`)."""
    stub_dir = os.environ.get("UGRO_STUB_DIR")
    if not stub_dir:
        return "healthy"
    try:
        # os, not pathlib: importing pathlib (and re with it) adds some 15 ms to every torch
        # check on a test host.
        with open(os.path.join(stub_dir, "torch_mode"), encoding="utf-8") as file:  # noqa: PTH123, PTH118
            mode = file.read().strip()
    except FileNotFoundError:
        return "healthy"
    if mode not in MODES:
        # Fail loudly: a typo in a test must not silently look like a healthy host.
        msg = f"fake torch: unknown torch_mode {mode!r}"
        raise RuntimeError(msg)
    return mode


MODE = current()
CUDA_BUILD = MODE != "nocuda"
DEVICE_COUNT = 0 if MODE in {"nocuda", "broken", "hang"} else 1 if MODE == "one-device" else 2
DEVICE_NAME = "NVIDIA GeForce RTX 4090"
TORCH_VERSION = "2.4.1+cu124" if MODE == "old-torch" else "2.5.1+cu124"
NCCL_VERSION = (2, 20, 5) if MODE == "old-torch" else (2, 21, 5)
#: The UUIDs tests/fixtures/nvidia-smi lists, as torch prints them (without nvidia-smi's "GPU-").
UUIDS = ("5d4ae6b5-1c2b-7f0a-9b3e-3a5e7a1c2d10", "a81f09c2-6e4d-4b57-8c1a-0f2e9d7b3c64")
HAS_UUID = MODE != "no-uuid"
BF16 = MODE != "no-bf16"
#: GPU 1 computes bf16 matmuls off by this much in `wrong-result` mode.
WRONG_BY = 312.0 if MODE == "wrong-result" else 0.0
#: GPU 1's CUDA context fails in `cuda-error` mode, with real torch's message.
CUDA_ERROR = (
    "CUDA error: uncorrectable ECC error encountered\n"
    "CUDA kernel errors might be asynchronously reported at some other API call, so the "
    "stacktrace below might be incorrect."
)
FAULTY_GPU = 1
