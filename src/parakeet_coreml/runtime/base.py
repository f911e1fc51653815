"""The contract every runtime (torch reference, native CoreML, portable MIL) satisfies.

Comparison and transcription code only sees :class:`Runtime`: a name-keyed numpy dict in,
a name-keyed numpy dict out, with the declared input/output tensors described by
:class:`TensorSpec`. Keeping this surface tiny is what lets a package be validated on Linux
(MIL interpreter) and on a Mac (Core ML) with the same code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape and numpy dtype name of one model input or output.

    A dimension of ``-1`` is flexible (a ``RangeDim`` or symbolic size).
    """

    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy dtype name: "float32", "float16", "int32", ...

    def describe(self) -> str:
        """Short human form, e.g. ``audio: float32[1, -1]``."""
        return f"{self.name}: {self.dtype}[{', '.join(str(d) for d in self.shape)}]"


@runtime_checkable
class Runtime(Protocol):
    """Something that predicts like a Core ML model."""

    kind: str  # "torch" | "coreml" | "mil"
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


def _safe_cast(name: str, arr: np.ndarray, want: np.dtype) -> np.ndarray:
    """Cast ``arr`` to ``want`` when no information a caller could mean is lost.

    Floats convert among float widths (Core ML itself narrows float32 to float16 inputs),
    integers/bools convert to wider or equal integer types and to floats; floats never
    silently become integers, and integers out of the target range are refused.
    """
    have = arr.dtype
    if have == want:
        return arr
    if np.issubdtype(want, np.floating):
        if np.issubdtype(have, np.floating) or np.issubdtype(have, np.integer) or have == np.bool_:
            return arr.astype(want)
    elif np.issubdtype(want, np.integer):
        if have == np.bool_:
            return arr.astype(want)
        if np.issubdtype(have, np.integer):
            info = np.iinfo(want)
            if arr.size and (arr.min() < info.min or arr.max() > info.max):
                raise ValueError(
                    f"input {name!r}: values out of range for {want.name} "
                    f"(got min {arr.min()}, max {arr.max()})"
                )
            return arr.astype(want)
    elif want == np.bool_ and np.issubdtype(have, np.integer) and np.isin(arr, (0, 1)).all():
        return arr.astype(want)
    raise ValueError(f"input {name!r}: expected dtype {want.name}, got {have.name} (unsafe cast)")


def validate_inputs(
    inputs: Mapping[str, object], specs: list[TensorSpec]
) -> dict[str, np.ndarray]:
    """Check ``inputs`` against ``specs`` and return numpy arrays in the declared dtypes.

    Raises ValueError naming the input for a missing or unexpected name, a rank or fixed
    dimension mismatch (``-1`` dimensions accept any size), or an unsafe dtype cast.
    """
    names = [s.name for s in specs]
    missing = [n for n in names if n not in inputs]
    extra = [n for n in inputs if n not in names]
    if missing:
        raise ValueError(f"missing input(s) {missing}; expected {names}")
    if extra:
        raise ValueError(f"unexpected input(s) {extra}; expected {names}")
    out: dict[str, np.ndarray] = {}
    for spec in specs:
        arr = np.asarray(inputs[spec.name])
        got = tuple(arr.shape)
        ok = len(got) == len(spec.shape) and all(
            e < 0 or e == g for e, g in zip(spec.shape, got)
        )
        if not ok:
            raise ValueError(
                f"input {spec.name!r}: expected shape {tuple(spec.shape)}, got {got}"
            )
        out[spec.name] = np.ascontiguousarray(_safe_cast(spec.name, arr, np.dtype(spec.dtype)))
    return out
