"""Fake tensors that know what they were computed from, not what they hold.

A matmul in pure Python would take minutes at the probe's matrix size, so a tensor here is
symbolic: a key saying how it was made, the largest magnitude it holds, and an error offset.
Two tensors with the same key hold the same values up to their offsets, so the probe's
`(gpu_result - reference).abs().max().item()` is the difference of the offsets: zero on a
good GPU, the injected error on a faulty one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from torch import _stubmode

if TYPE_CHECKING:
    import builtins


@dataclass(frozen=True)
class DType:
    """A tensor element type (`torch.dtype`)."""

    name: str

    def __repr__(self) -> str:
        """`torch.float32`, as torch prints it."""
        return f"torch.{self.name}"


dtype = DType
float32 = DType("float32")
float64 = DType("float64")
bfloat16 = DType("bfloat16")
int64 = DType("int64")


class Generator:
    """A seeded random source, like `torch.Generator()`."""

    def __init__(self) -> None:
        """Start unseeded."""
        self.seed = 0
        self.draws = 0

    def manual_seed(self, seed: int) -> Generator:
        """Seed it and return it, as torch does."""
        self.seed = seed
        return self


@dataclass(frozen=True)
class Tensor:
    """A symbolic tensor (module docstring)."""

    key: tuple[object, ...]
    shape: tuple[int, ...]
    magnitude: builtins.float
    dtype: DType
    device: str = "cpu"
    offset: builtins.float = 0.0

    def to(self, device: str | None = None, dtype: DType | None = None) -> Tensor:
        """Copy to a device and/or element type; a faulty GPU's context fails here."""
        target = self.device if device is None else device
        if target != "cpu":
            from torch import cuda

            cuda.check_device(target)
        return replace(self, device=target, dtype=self.dtype if dtype is None else dtype)

    def double(self) -> Tensor:
        """As float64."""
        return self.to(dtype=float64)

    def float(self) -> Tensor:
        """As float32."""
        return self.to(dtype=float32)

    def cpu(self) -> Tensor:
        """Back in host memory."""
        return self.to(device="cpu")

    def __matmul__(self, other: Tensor) -> Tensor:
        """The product; a faulty GPU adds its error to bf16 products."""
        if self.device != other.device:
            raise RuntimeError(
                "Expected all tensors to be on the same device, but found at least two devices"
            )
        offset = self.offset + other.offset
        if (
            self.device == f"cuda:{_stubmode.FAULTY_GPU}"
            and self.dtype == bfloat16
            and _stubmode.WRONG_BY
        ):
            offset += _stubmode.WRONG_BY
        return Tensor(
            key=("matmul", self.key, other.key),
            shape=(self.shape[0], other.shape[-1]),
            magnitude=self.magnitude * other.magnitude * self.shape[-1],
            dtype=self.dtype,
            device=self.device,
            offset=offset,
        )

    def __sub__(self, other: Tensor) -> Tensor:
        """The difference: only the offsets differ when both were computed the same way."""
        same = self.key == other.key
        return Tensor(
            key=("zeros",) if same else ("sub", self.key, other.key),
            shape=self.shape,
            magnitude=0.0 if same else self.magnitude + other.magnitude,
            dtype=self.dtype,
            device=self.device,
            offset=self.offset - other.offset,
        )

    def abs(self) -> Tensor:
        """Element-wise absolute value (offsets stay signed; `max` takes their size)."""
        return replace(self, key=("abs", self.key))

    def max(self) -> Tensor:
        """The largest element, as a one-element tensor."""
        return replace(self, key=("max", self.key), shape=())

    def item(self) -> builtins.float:
        """A one-element tensor's value as a Python float."""
        if self.shape:
            raise RuntimeError("a Tensor with more than one element cannot be converted to Scalar")
        return self.magnitude + abs(self.offset)


def randint(
    low: int,
    high: int,
    size: tuple[int, ...],
    *,
    generator: Generator | None = None,
    dtype: DType = int64,
) -> Tensor:
    """Uniform integers in [low, high), in host memory."""
    draw = 0
    if generator is not None:
        generator.draws += 1
        draw = generator.draws
    seed = generator.seed if generator is not None else None
    magnitude = float(max(abs(low), abs(high - 1)))
    return Tensor(("randint", low, high, size, seed, draw), size, magnitude, dtype)
