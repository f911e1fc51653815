"""Indexing MIL ops: gather/scatter families, select, sorting (topk/argsort), one_hot,
non_zero, band_part, cumsum, range_1d, fill.

MIL indices are int32 and may be negative (counted from the end); torch wants non-negative
int64, so every kernel normalises them first.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .registry import kernel


def _norm_index(idx: torch.Tensor, size: int) -> torch.Tensor:
    idx = idx.long()
    return torch.where(idx < 0, idx + size, idx)


# ---------------------------------------------------------------- gather


@kernel("gather", static=("axis", "batch_dims", "validate_indices"), movement=True)
def _gather(x, indices, axis=0, batch_dims=0, validate_indices=False):
    axis %= x.dim()
    idx = _norm_index(indices, x.shape[axis])
    if batch_dims == 0:
        out = x.index_select(axis, idx.reshape(-1))
        return out.reshape(x.shape[:axis] + idx.shape + x.shape[axis + 1 :])
    bshape = x.shape[:batch_dims]
    nb = math.prod(bshape)
    xs = x.reshape((nb,) + x.shape[batch_dims:])
    ids = idx.reshape((nb,) + idx.shape[batch_dims:])
    parts = [_gather(xs[i], ids[i], axis - batch_dims) for i in range(nb)]
    out = torch.stack(parts)
    return out.reshape(bshape + out.shape[1:])


@kernel("gather_along_axis", static=("axis", "validate_indices"), movement=True)
def _gather_along_axis(x, indices, axis=0, validate_indices=False):
    axis %= x.dim()
    return torch.gather(x, axis, _norm_index(indices, x.shape[axis]))


@kernel("gather_nd", static=("batch_dims", "validate_indices"), movement=True)
def _gather_nd(x, indices, batch_dims=0, validate_indices=False):
    if batch_dims:
        bshape = x.shape[:batch_dims]
        nb = math.prod(bshape)
        xs = x.reshape((nb,) + x.shape[batch_dims:])
        ids = indices.reshape((nb,) + indices.shape[batch_dims:])
        out = torch.stack([_gather_nd(xs[i], ids[i]) for i in range(nb)])
        return out.reshape(bshape + out.shape[1:])
    k = indices.shape[-1]
    cols = tuple(_norm_index(indices[..., i], x.shape[i]) for i in range(k))
    return x[cols]


# ---------------------------------------------------------------- scatter


def _scatter_rows(data: torch.Tensor, idx: torch.Tensor, upd: torch.Tensor, mode: str):
    """Scatter ``upd[i]`` into row ``idx[i]`` of ``data`` (axis 0) with MIL ``mode``."""
    out = data.clone()
    upd = upd.to(out.dtype)
    if mode == "update":
        out[idx] = upd
    elif mode == "add":
        out.index_add_(0, idx, upd)
    elif mode == "sub":
        out.index_add_(0, idx, -upd)
    elif mode in ("mul", "max", "min"):
        full = idx.reshape((-1,) + (1,) * (upd.dim() - 1)).expand_as(upd)
        reduce = {"mul": "prod", "max": "amax", "min": "amin"}[mode]
        out.scatter_reduce_(0, full, upd, reduce)
    elif mode == "div":
        for i, r in enumerate(idx.tolist()):
            out[r] = out[r] / upd[i]
    else:
        raise NotImplementedError(f"scatter mode {mode!r}")
    return out


@kernel("scatter", static=("axis", "mode", "validate_indices"))
def _scatter(data, indices, updates, axis=0, mode="add", validate_indices=False):
    axis %= data.dim()
    idx = _norm_index(indices, data.shape[axis]).reshape(-1)
    d = data.movedim(axis, 0)
    u = updates.movedim(axis, 0).reshape((idx.numel(),) + d.shape[1:])
    return _scatter_rows(d, idx, u, mode).movedim(0, axis)


@kernel("scatter_along_axis", static=("axis", "mode", "validate_indices"))
def _scatter_along_axis(data, indices, updates, axis=0, mode="add", validate_indices=False):
    axis %= data.dim()
    idx = _norm_index(indices, data.shape[axis])
    upd = updates.to(data.dtype)
    if mode == "update":
        return data.scatter(axis, idx, upd)
    if mode in ("add", "sub"):
        return data.scatter_add(axis, idx, upd if mode == "add" else -upd)
    reduce = {"mul": "prod", "max": "amax", "min": "amin"}.get(mode)
    if reduce:
        return data.scatter_reduce(axis, idx, upd, reduce)
    if mode == "div":
        return data / torch.ones_like(data).scatter_reduce(axis, idx, upd, "prod")
    raise NotImplementedError(f"scatter_along_axis mode {mode!r}")


@kernel("scatter_nd", static=("mode", "validate_indices"))
def _scatter_nd(data, indices, updates, mode="add", validate_indices=False):
    k = indices.shape[-1]
    lead = data.shape[:k]
    flat_idx = torch.zeros(indices.shape[:-1], dtype=torch.long)
    for i in range(k):
        flat_idx = flat_idx * lead[i] + _norm_index(indices[..., i], lead[i])
    d = data.reshape((math.prod(lead),) + data.shape[k:])
    u = updates.reshape((flat_idx.numel(),) + data.shape[k:])
    return _scatter_rows(d, flat_idx.reshape(-1), u, mode).reshape(data.shape)


# ---------------------------------------------------------------- select / sort


@kernel("select", movement=True)
def _select(cond, a, b):
    return torch.where(cond.bool(), a, b)


@kernel(
    "topk",
    static=("k", "axis", "ascending", "sort", "return_indices", "output_indices_dtype"),
)
def _topk(
    x, k=1, axis=-1, ascending=False, sort=True, return_indices=True, output_indices_dtype="int32"
):
    values, idx = torch.topk(x, k, dim=axis, largest=not ascending, sorted=True)
    return values, idx


@kernel("argsort", static=("axis", "ascending"))
def _argsort(x, axis=-1, ascending=False):
    return torch.argsort(x, dim=axis, descending=not ascending, stable=True)


@kernel("one_hot", static=("one_hot_vector_size", "axis", "on_value", "off_value"))
def _one_hot(indices, one_hot_vector_size, axis=-1, on_value=1, off_value=0):
    n = int(one_hot_vector_size)
    hot = F.one_hot(_norm_index(indices, n), n).bool()
    rank = indices.dim() + 1
    hot = hot.movedim(-1, axis % rank)
    on = torch.tensor(on_value)
    off = torch.tensor(off_value)
    return torch.where(hot, on, off)


@kernel("non_zero")
def _non_zero(x):
    return torch.nonzero(x)


@kernel("band_part", static=("lower", "upper"), movement=True)
def _band_part(x, lower=-1, upper=-1):
    m, n = x.shape[-2], x.shape[-1]
    i = torch.arange(m).unsqueeze(1)
    j = torch.arange(n).unsqueeze(0)
    keep = torch.ones(m, n, dtype=torch.bool)
    if lower >= 0:
        keep &= (i - j) <= lower
    if upper >= 0:
        keep &= (j - i) <= upper
    return torch.where(keep, x, torch.zeros((), dtype=x.dtype))


@kernel("cumsum", static=("axis", "exclusive", "reverse"))
def _cumsum(x, axis=0, exclusive=False, reverse=False):
    if reverse:
        x = torch.flip(x, [axis])
    out = torch.cumsum(x, dim=axis)
    if exclusive:
        n = out.shape[axis]
        head = torch.zeros_like(out.narrow(axis, 0, 1))
        out = torch.cat([head, out.narrow(axis, 0, n - 1)], dim=axis)
    if reverse:
        out = torch.flip(out, [axis])
    return out


def _scalar(v):
    while isinstance(v, (list, tuple)):  # a dynamic scalar may arrive as a 1-element tensor
        (v,) = v
    return v


@kernel("range_1d", static=("end", "start", "step"))
def _range_1d(end, start, step):
    return torch.arange(_scalar(start), _scalar(end), _scalar(step))


@kernel("fill", static=("shape", "value"))
def _fill(shape, value=0.0):
    return torch.full(list(shape), value)


@kernel("fill_like", static=("value",))
def _fill_like(ref_tensor, value=0.0):
    return torch.full(ref_tensor.shape, value)
