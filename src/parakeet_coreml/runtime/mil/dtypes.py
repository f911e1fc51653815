"""MIL dtype names <-> torch storage dtypes <-> numpy dtypes.

Each MIL var is stored in the torch dtype that holds its declared type exactly: fp16 vars
live as ``torch.float16`` (so every stored fp16 value is fp16-rounded), int32 as
``torch.int32``, and so on. Unsigned 16/32-bit ints are held in wider signed ints because
torch has no full kernels for them; they convert back to their numpy type at the edge.
"""

from __future__ import annotations

import numpy as np
import torch
from coremltools.converters.mil.mil import types

# MIL dtype name -> torch storage dtype.
TORCH_STORAGE: dict[str, torch.dtype] = {
    "fp16": torch.float16,
    "fp32": torch.float32,
    "fp64": torch.float64,
    "bf16": torch.bfloat16,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "int16": torch.int16,
    "uint16": torch.int32,
    "int32": torch.int32,
    "uint32": torch.int64,
    "int64": torch.int64,
    "bool": torch.bool,
    # Sub-byte types only appear inside compressed-weight ops; hold them unpacked.
    "int4": torch.int8,
    "uint1": torch.uint8,
    "uint2": torch.uint8,
    "uint3": torch.uint8,
    "uint4": torch.uint8,
    "uint6": torch.uint8,
}

# MIL dtype name -> numpy dtype name used for runtime inputs/outputs and TensorSpec.
NUMPY_NAME: dict[str, str] = {
    "fp16": "float16",
    "fp32": "float32",
    "fp64": "float64",
    "int8": "int8",
    "uint8": "uint8",
    "int16": "int16",
    "uint16": "uint16",
    "int32": "int32",
    "uint32": "uint32",
    "int64": "int64",
    "bool": "bool",
}


def mil_dtype_name(var) -> str:
    """MIL primitive dtype name of a Var ('fp16', 'int32', 'str', ...)."""
    t = var.sym_type
    if types.is_state(t):
        t = t.wrapped_type()
    if types.is_tensor(t):
        t = t.get_primitive()
    return types.builtin_to_string(t)


def var_shape(var) -> tuple[int, ...]:
    """Static shape of a Var with symbolic dimensions reported as -1."""
    t = var.sym_type
    if types.is_state(t):
        t = t.wrapped_type()
    if not types.is_tensor(t):
        return ()
    return tuple(int(d) if isinstance(d, (int, np.integer)) else -1 for d in t.get_shape())


def to_storage(value, mil_dtype: str, copy: bool = False) -> torch.Tensor:
    """A numpy/python value as a torch tensor in the storage dtype of ``mil_dtype``.

    ``copy=True`` always gives a torch-owned buffer: arrays read from a weight blob can sit
    at any address, and BLAS kernels run several times slower on misaligned weights.
    """
    dt = TORCH_STORAGE[mil_dtype]
    if isinstance(value, torch.Tensor):
        return value.to(dt, copy=copy)
    arr = np.asarray(value)
    if arr.dtype in (np.uint16, np.uint32):
        arr = arr.astype(np.int64)
    return torch.from_numpy(np.ascontiguousarray(arr)).to(dt, copy=copy)


def to_numpy(t: torch.Tensor, mil_dtype: str) -> np.ndarray:
    """A stored tensor as a numpy array of the declared dtype (fp16 stays float16)."""
    arr = t.detach().cpu().numpy()
    name = NUMPY_NAME.get(mil_dtype)
    return arr.astype(name, copy=False) if name else arr
