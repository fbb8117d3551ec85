"""ugro: agentless health monitoring for GPU training clusters."""

from __future__ import annotations

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    # Looked up on demand: importlib.metadata costs more start-up time than `ugro health` has.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("ugro")
        except PackageNotFoundError:
            return "0.0.0"
    raise AttributeError(f"module 'ugro' has no attribute {name!r}")
