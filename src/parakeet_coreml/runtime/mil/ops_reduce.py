"""Reduction MIL ops (reduce_* and arg-reductions); accumulate in fp32 (or int64 for ints)."""

from __future__ import annotations

import torch

from .registry import kernel


def _dims(x: torch.Tensor, axes) -> tuple[int, ...]:
    return tuple(range(x.dim())) if axes is None else tuple(a % x.dim() for a in axes)


def _reduction(op_type: str, fn) -> None:
    @kernel(op_type, static=("axes", "keep_dims"))
    def _k(x, axes=None, keep_dims=False):
        dims = _dims(x, axes)
        if not dims:
            return x
        return fn(x, dims, keep_dims)


def _prod(x, dims, keep):
    for d in sorted(dims, reverse=True):
        x = torch.prod(x, dim=d, keepdim=keep)
    return x


_reduction("reduce_sum", lambda x, d, k: torch.sum(x, dim=d, keepdim=k))
_reduction("reduce_mean", lambda x, d, k: torch.mean(x, dim=d, keepdim=k))
_reduction("reduce_max", lambda x, d, k: torch.amax(x, dim=d, keepdim=k))
_reduction("reduce_min", lambda x, d, k: torch.amin(x, dim=d, keepdim=k))
_reduction("reduce_prod", _prod)
_reduction("reduce_sum_square", lambda x, d, k: torch.sum(x * x, dim=d, keepdim=k))
_reduction("reduce_l1_norm", lambda x, d, k: torch.sum(torch.abs(x), dim=d, keepdim=k))
_reduction("reduce_l2_norm", lambda x, d, k: torch.sqrt(torch.sum(x * x, dim=d, keepdim=k)))
_reduction("reduce_log_sum", lambda x, d, k: torch.log(torch.sum(x, dim=d, keepdim=k)))
_reduction("reduce_log_sum_exp", lambda x, d, k: torch.logsumexp(x, dim=d, keepdim=k))


@kernel("reduce_argmax", static=("axis", "keep_dims", "output_dtype"))
def _argmax(x, axis=-1, keep_dims=False, output_dtype="int32"):
    return torch.argmax(x, dim=axis, keepdim=keep_dims)


@kernel("reduce_argmin", static=("axis", "keep_dims", "output_dtype"))
def _argmin(x, axis=-1, keep_dims=False, output_dtype="int32"):
    return torch.argmin(x, dim=axis, keepdim=keep_dims)
