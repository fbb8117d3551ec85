"""Which behaviour the fake torch shows, read from the host's stub directory at import time."""

import os
from pathlib import Path

#: Modes the fake understands (`missing` is handled by the python3 wrapper, not here).
MODES = frozenset({"healthy", "one-device", "nocuda", "broken", "hang"})


def current() -> str:
    """Return the torch mode of the host this interpreter runs on (default `healthy`)."""
    stub_dir = os.environ.get("UGRO_STUB_DIR")
    if not stub_dir:
        return "healthy"
    try:
        mode = (Path(stub_dir) / "torch_mode").read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return "healthy"
    if mode not in MODES:
        # Fail loudly: a typo in a test must not silently look like a healthy host.
        msg = f"fake torch: unknown torch_mode {mode!r}"
        raise RuntimeError(msg)
    return mode


MODE = current()
CUDA_BUILD = MODE != "nocuda"
DEVICE_COUNT = {"healthy": 2, "one-device": 1}.get(MODE, 0)
DEVICE_NAME = "NVIDIA GeForce RTX 4090"
