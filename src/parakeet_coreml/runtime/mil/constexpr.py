"""Materialise compressed-weight (``constexpr_*``) ops into dense arrays, once, at load time.

coremltools' own ``decompress`` static methods are used wherever they are memory-safe. Its
iOS18 LUT decompression repeats the whole palette once per weight element (a per-tensor
8-bit LUT on a 1024x4096 matrix would need ~2 GB), so LUT lookups use the gather below,
which the tests check against coremltools on small tensors. Chained (joint) compression
works because every input is resolved from already-materialised values, in program order.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from coremltools.converters.mil.mil.ops.defs.iOS16 import constexpr_ops as c16
from coremltools.converters.mil.mil.ops.defs.iOS18 import compression as c18


def lut_to_dense(indices: np.ndarray, lut: np.ndarray, vector_axis: int | None) -> np.ndarray:
    """iOS18 ``constexpr_lut_to_dense``: per-block palettes, optional vector entries.

    ``lut`` is [B_0..B_{r-1}, P, V] for ``indices`` of rank r: element ``i`` reads palette
    block ``(i_0 // bs_0, ...)`` with ``bs_k = indices.shape[k] // B_k``; V > 1 expands the
    ``vector_axis`` dimension V-fold (entry ``j`` becomes ``j*V .. j*V+V-1``).
    """
    idx = torch.from_numpy(np.ascontiguousarray(indices).astype(np.int64))
    rank = idx.dim()
    pal, vec = lut.shape[-2], lut.shape[-1]
    blocks = lut.shape[:rank]
    block = torch.zeros((), dtype=torch.long)
    for ax in range(rank):
        size = idx.shape[ax] // blocks[ax]
        coord = torch.arange(idx.shape[ax]) // size
        block = block * blocks[ax] + coord.reshape([-1 if i == ax else 1 for i in range(rank)])
    table = torch.from_numpy(np.ascontiguousarray(lut)).reshape(-1, vec)
    out = table[block * pal + idx]  # indices.shape + [V]
    if vec == 1:
        return out.squeeze(-1).numpy()
    ax = vector_axis % rank
    shape = list(idx.shape)
    shape[ax] *= vec
    return out.movedim(-1, ax + 1).reshape(shape).numpy()


def _lut_to_sparse(indices_mask, indices_nonzero_data, lut, vector_axis=None):
    indices = c18.constexpr_sparse_to_dense.decompress(indices_nonzero_data, indices_mask)
    dense = lut_to_dense(indices, lut, vector_axis)
    mask = indices_mask
    if vector_axis is not None and lut.shape[-1] > 1:
        mask = np.repeat(mask, lut.shape[-1], axis=vector_axis)
    return mask, dense[mask != 0].flatten()



# op type -> (opset family, function of the op's input values returning output value(s)).
# iOS16 and iOS18 ops share names; they are told apart by their input names.
def _affine(a):
    return c16.constexpr_affine_dequantize.decompress(
        a["quantized_data"], a["zero_point"], a["scale"], int(a["axis"])
    )


def _lut(a):
    if "shape" in a:  # iOS16: flat, bit-packed indices into one palette
        return c16.constexpr_lut_to_dense.decompress(a["lut"], a["indices"], a["shape"])
    va = a.get("vector_axis")
    return lut_to_dense(a["indices"], a["lut"], None if va is None else int(va))


def _sparse(a):
    if "shape" in a:
        return c16.constexpr_sparse_to_dense.decompress(a["nonzero_data"], a["mask"], a["shape"])
    return c18.constexpr_sparse_to_dense.decompress(a["nonzero_data"], a["mask"])


def _cast(a):
    return np.asarray(a["source_val"]).astype(np.float32)


def _shift_scale(a):
    return c18.constexpr_blockwise_shift_scale.decompress(a["data"], a["scale"], a.get("offset"))


def _sparse_shift_scale(a):
    return c18.constexpr_sparse_blockwise_shift_scale.decompress(
        a["data_mask"], a["nonzero_data"], a["scale"], a.get("offset")
    )


def _lut_sparse(a):
    va = a.get("vector_axis")
    return _lut_to_sparse(
        a["indices_mask"], a["indices_nonzero_data"], a["lut"], None if va is None else int(va)
    )


DECOMPRESS: dict[str, Callable[[dict], object]] = {
    "constexpr_affine_dequantize": _affine,
    "constexpr_lut_to_dense": _lut,
    "constexpr_sparse_to_dense": _sparse,
    "constexpr_cast": _cast,
    "constexpr_blockwise_shift_scale": _shift_scale,
    "constexpr_sparse_blockwise_shift_scale": _sparse_shift_scale,
    "constexpr_lut_to_sparse": _lut_sparse,
}


def materialize(op_type: str, args: dict) -> tuple:
    """Dense output value(s) of one constexpr op given its input values (numpy)."""
    fn = DECOMPRESS.get(op_type)
    if fn is None:
        raise NotImplementedError(f"compressed-weight op type {op_type!r} is not supported")
    out = fn(args)
    return tuple(out) if isinstance(out, tuple) else (out,)
