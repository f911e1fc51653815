"""Shape and data-movement MIL ops: reshape, transpose, slicing, concat/split, pad, tile.

These only move or copy values, so they run on the stored dtype directly (``movement``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .registry import kernel


@kernel("reshape", static=("shape",), movement=True)
def _reshape(x, shape):
    shape = list(shape)
    if len(shape) == x.dim():
        # MIL: 0 inherits the corresponding input dimension.
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return x.reshape(shape)


@kernel("reshape_like", static=("begins", "ends", "end_masks"), movement=True)
def _reshape_like(x, ref_tensors, begins, ends, end_masks):
    shape: list[int] = []
    for ref, b, e, m in zip(ref_tensors, begins, ends, end_masks):
        shape += list(ref.shape[b:] if m else ref.shape[b:e])
    return x.reshape(shape)


@kernel("transpose", static=("perm",), movement=True)
def _transpose(x, perm):
    return x.permute(perm)


@kernel("squeeze", static=("axes",), movement=True)
def _squeeze(x, axes=None):
    if axes is None:
        return x.squeeze()
    return x.squeeze(tuple(a % x.dim() for a in axes)) if axes else x


@kernel("expand_dims", static=("axes",), movement=True)
def _expand_dims(x, axes):
    rank = x.dim() + len(axes)
    shape = list(x.shape)
    for a in sorted(a % rank for a in axes):
        shape.insert(a, 1)
    return x.reshape(shape)


@kernel("flatten2d", static=("axis",), movement=True)
def _flatten2d(x, axis=1):
    axis %= x.dim()
    return x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))


@kernel("shape", movement=True)
def _shape(x):
    return torch.tensor(list(x.shape), dtype=torch.int32)


# ---------------------------------------------------------------- slicing


def _slice_dim(x: torch.Tensor, dim: int, start: int, stop: int, step: int) -> torch.Tensor:
    if step > 0:
        idx = [slice(None)] * dim + [slice(start, stop, step)]
        return x[tuple(idx)]
    index = torch.arange(start, stop, step, dtype=torch.long)
    return x.index_select(dim, index)


def slice_index(
    x: torch.Tensor,
    begin,
    end,
    stride=None,
    begin_mask=None,
    end_mask=None,
    squeeze_mask=None,
) -> tuple[torch.Tensor, list[int]]:
    """numpy-style ``x[b:e:s, ...]`` per MIL slice_by_index; returns (slice, squeezed dims)."""
    rank = x.dim()
    stride = stride or [1] * rank
    begin_mask = begin_mask or [False] * rank
    end_mask = end_mask or [False] * rank
    squeeze_mask = squeeze_mask or [False] * rank
    out = x
    squeezed = []
    for d in range(rank):
        n = x.shape[d]
        b = None if begin_mask[d] else int(begin[d])
        e = None if end_mask[d] else int(end[d])
        s = int(stride[d])
        if squeeze_mask[d]:
            b = 0 if b is None else (b + n if b < 0 else b)
            out = out.narrow(d, b, 1)
            squeezed.append(d)
            continue
        start, stop, step = slice(b, e, s).indices(n)
        if (start, stop, step) != (0, n, 1):
            out = _slice_dim(out, d, start, stop, step)
    return out, squeezed


@kernel(
    "slice_by_index",
    static=("begin", "end", "stride", "begin_mask", "end_mask", "squeeze_mask"),
    movement=True,
)
def _slice_by_index(x, begin, end, stride=None, begin_mask=None, end_mask=None, squeeze_mask=None):
    out, squeezed = slice_index(x, begin, end, stride, begin_mask, end_mask, squeeze_mask)
    return out.squeeze(tuple(squeezed)) if squeezed else out


@kernel("slice_by_size", static=("begin", "size"), movement=True)
def _slice_by_size(x, begin, size):
    out = x
    for d, (b, s) in enumerate(zip(begin, size)):
        b = b + x.shape[d] if b < 0 else b
        length = x.shape[d] - b if s < 0 else s
        out = out.narrow(d, b, length)
    return out


@kernel(
    "slice_update",
    static=("begin", "end", "stride", "begin_mask", "end_mask", "squeeze_mask"),
    movement=True,
)
def _slice_update(
    x, update, begin, end, stride=None, begin_mask=None, end_mask=None, squeeze_mask=None
):
    # Build the index grid of the slice on a flat position tensor, then scatter into a copy.
    pos = torch.arange(x.numel()).reshape(x.shape)
    sel, _ = slice_index(pos, begin, end, stride, begin_mask, end_mask, squeeze_mask)
    out = x.clone().reshape(-1)
    out[sel.reshape(-1)] = update.to(x.dtype).reshape(-1)
    return out.reshape(x.shape)


# ---------------------------------------------------------------- join / split


def _common(values: list[torch.Tensor]) -> list[torch.Tensor]:
    # Const fp16 values are held as fp32 while vars are fp16: join in the widest dtype.
    dtypes = {v.dtype for v in values}
    if len(dtypes) == 1:
        return values
    dt = torch.float32 if any(v.is_floating_point() for v in values) else values[0].dtype
    return [v.to(dt) for v in values]


@kernel("concat", static=("axis", "interleave"), movement=True)
def _concat(values, axis, interleave=False):
    values = _common(list(values))
    if not interleave:
        return torch.cat(values, dim=axis)
    axis %= values[0].dim()
    stacked = torch.stack(values, dim=axis + 1)
    shape = list(values[0].shape)
    shape[axis] *= len(values)
    return stacked.reshape(shape)


@kernel("stack", static=("axis",), movement=True)
def _stack(values, axis):
    return torch.stack(_common(list(values)), dim=axis)


@kernel("split", static=("num_splits", "split_sizes", "axis"), movement=True)
def _split(x, axis, num_splits=None, split_sizes=None):
    if split_sizes is None:
        split_sizes = [x.shape[axis] // num_splits] * num_splits
    return tuple(torch.split(x, list(split_sizes), dim=axis))


@kernel("tile", static=("reps",), movement=True)
def _tile(x, reps):
    return x.repeat(list(reps)) if x.dim() else x


def _edge_index(n: int, before: int, after: int, mode: str) -> torch.Tensor:
    mid = list(range(n))
    if mode == "reflect":
        left = [before - i for i in range(before)]
        right = [n - 2 - i for i in range(after)]
    else:  # replicate
        left, right = [0] * before, [n - 1] * after
    return torch.tensor(left + mid + right, dtype=torch.long)


@kernel("pad", static=("pad", "mode", "constant_val"), movement=True)
def _pad(x, pad, mode="constant", constant_val=0.0):
    pairs = [(int(pad[2 * i]), int(pad[2 * i + 1])) for i in range(len(pad) // 2)]
    first = x.dim() - len(pairs)
    if mode == "constant":
        flat: list[int] = []
        for b, a in reversed(pairs):
            flat += [b, a]
        return F.pad(x, flat, value=float(constant_val))
    out = x
    for i, (b, a) in enumerate(pairs):
        if b or a:
            d = first + i
            out = out.index_select(d, _edge_index(out.shape[d], b, a, mode))
    return out


@kernel("reverse", static=("axes",), movement=True)
def _reverse(x, axes=None):
    axes = list(range(x.dim())) if axes is None else list(axes)
    return torch.flip(x, axes) if axes else x


@kernel("reverse_sequence", static=("seq_axis", "batch_axis"), movement=True)
def _reverse_sequence(x, lengths, seq_axis=0, batch_axis=0):
    seq_axis %= x.dim()
    batch_axis %= x.dim()
    out = x.clone()
    for b, n in enumerate(lengths.tolist()):
        src = x.select(batch_axis, b)
        dst = out.select(batch_axis, b)
        d = seq_axis - (1 if seq_axis > batch_axis else 0)
        dst.narrow(d, 0, n).copy_(torch.flip(src.narrow(d, 0, n), [d]))
    return out


@kernel("sliding_windows", static=("axis", "size", "stride"), movement=True)
def _sliding_windows(x, axis, size, stride=1):
    axis %= x.dim()
    w = x.unfold(axis, size, stride)  # window dim goes last
    return w.movedim(-1, axis + 1)
