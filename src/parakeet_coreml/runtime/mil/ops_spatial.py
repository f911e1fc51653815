"""Spatial MIL ops: pooling, nearest/bilinear upsampling, depth/space rearrangements."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .ops_linalg import pad_spatial, spatial_pads
from .registry import kernel

_AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
_MAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_POOL_STATIC = ("kernel_sizes", "strides", "pad_type", "pad", "ceil_mode")


def _pool_args(x, kernel_sizes, strides, pad_type, pad):
    n = len(kernel_sizes)
    strides = list(strides or [1] * n)
    pads = spatial_pads(x, kernel_sizes, strides, [1] * n, pad_type, pad)
    return list(kernel_sizes), strides, pads


@kernel("avg_pool", static=_POOL_STATIC + ("exclude_padding_from_average",))
def _avg_pool(
    x, kernel_sizes, strides=None, pad_type="valid", pad=None, ceil_mode=False,
    exclude_padding_from_average=False,
):
    k, s, pads = _pool_args(x, kernel_sizes, strides, pad_type, pad)
    pool = _AVG[len(k)]
    y = pool(pad_spatial(x, pads), k, s, 0, ceil_mode)
    if exclude_padding_from_average and any(b or a for b, a in pads):
        ones = torch.ones((1, 1) + tuple(x.shape[2:]), dtype=x.dtype)
        y = y / pool(pad_spatial(ones, pads), k, s, 0, ceil_mode)
    return y


@kernel("max_pool", static=_POOL_STATIC)
def _max_pool(x, kernel_sizes, strides=None, pad_type="valid", pad=None, ceil_mode=False):
    k, s, pads = _pool_args(x, kernel_sizes, strides, pad_type, pad)
    return _MAX[len(k)](pad_spatial(x, pads, float("-inf")), k, s, 0, 1, ceil_mode)


@kernel("l2_pool", static=_POOL_STATIC)
def _l2_pool(x, kernel_sizes, strides=None, pad_type="valid", pad=None, ceil_mode=False):
    k, s, pads = _pool_args(x, kernel_sizes, strides, pad_type, pad)
    mean_sq = _AVG[len(k)](pad_spatial(x.square(), pads), k, s, 0, ceil_mode)
    return torch.sqrt(mean_sq * float(torch.tensor(k).prod()))


@kernel("upsample_nearest_neighbor", static=("scale_factor_height", "scale_factor_width"))
def _upsample_nn(x, scale_factor_height=1, scale_factor_width=1):
    return F.interpolate(
        x, scale_factor=(float(scale_factor_height), float(scale_factor_width)), mode="nearest"
    )


@kernel("depth_to_space", static=("block_size",), movement=True)
def _depth_to_space(x, block_size):
    # DCR order, as TensorFlow (and MIL) define it.
    n, c, h, w = x.shape
    b = block_size
    y = x.reshape(n, b, b, c // (b * b), h, w).permute(0, 3, 4, 1, 5, 2)
    return y.reshape(n, c // (b * b), h * b, w * b)


@kernel("space_to_depth", static=("block_size",), movement=True)
def _space_to_depth(x, block_size):
    n, c, h, w = x.shape
    b = block_size
    y = x.reshape(n, c, h // b, b, w // b, b).permute(0, 3, 5, 1, 2, 4)
    return y.reshape(n, c * b * b, h // b, w // b)


@kernel("pixel_shuffle", static=("upscale_factor",), movement=True)
def _pixel_shuffle(x, upscale_factor):
    return F.pixel_shuffle(x, upscale_factor)


@kernel("pixel_unshuffle", static=("downscale_factor",), movement=True)
def _pixel_unshuffle(x, downscale_factor):
    return F.pixel_unshuffle(x, downscale_factor)
