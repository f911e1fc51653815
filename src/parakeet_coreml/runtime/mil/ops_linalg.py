"""Linear algebra MIL ops: linear, matmul, einsum, conv, conv_transpose, attention.

All run as fp32 torch kernels (fp32 accumulation); fp16 programs round the results.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .registry import kernel

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


@kernel("linear")
def _linear(x, weight, bias=None):
    return F.linear(x, weight, bias)


@kernel("matmul", static=("transpose_x", "transpose_y"))
def _matmul(x, y, transpose_x=False, transpose_y=False):
    if transpose_x and x.dim() > 1:
        x = x.transpose(-1, -2)
    if transpose_y and y.dim() > 1:
        y = y.transpose(-1, -2)
    return torch.matmul(x, y)


@kernel("einsum", static=("equation",))
def _einsum(values, equation):
    return torch.einsum(equation, *values)


def same_pads(
    in_sizes, kernel, strides, dilations, lower: bool = False
) -> list[tuple[int, int]]:
    """(before, after) padding per spatial dim for MIL ``same``/``same_lower``."""
    pads = []
    for i, k, s, d in zip(in_sizes, kernel, strides, dilations):
        eff = (k - 1) * d + 1
        total = max(0, s * math.ceil(i / s) - i + eff - s)
        small, big = total // 2, total - total // 2
        pads.append((big, small) if lower else (small, big))
    return pads


def spatial_pads(x, kernel, strides, dilations, pad_type, pad) -> list[tuple[int, int]]:
    n = len(kernel)
    if pad_type in ("same", "same_lower"):
        return same_pads(x.shape[2:], kernel, strides, dilations, pad_type == "same_lower")
    if pad_type == "custom" and pad is not None:
        return [(int(pad[2 * i]), int(pad[2 * i + 1])) for i in range(n)]
    return [(0, 0)] * n


def pad_spatial(x: torch.Tensor, pads, value: float = 0.0) -> torch.Tensor:
    if not any(b or a for b, a in pads):
        return x
    flat: list[int] = []
    for b, a in reversed(pads):
        flat += [b, a]
    return F.pad(x, flat, value=value)


@kernel("conv", static=("strides", "pad_type", "pad", "dilations", "groups"))
def _conv(x, weight, bias=None, strides=None, pad_type="valid", pad=None, dilations=None, groups=1):
    n = weight.dim() - 2
    strides = list(strides or [1] * n)
    dilations = list(dilations or [1] * n)
    pads = spatial_pads(x, weight.shape[2:], strides, dilations, pad_type, pad)
    if all(b == a for b, a in pads):
        return _CONV[n](x, weight, bias, strides, [b for b, _ in pads], dilations, groups)
    return _CONV[n](pad_spatial(x, pads), weight, bias, strides, 0, dilations, groups)


@kernel(
    "conv_transpose",
    static=("pad", "output_shape", "pad_type", "strides", "dilations", "groups"),
)
def _conv_transpose(
    x,
    weight,
    bias=None,
    pad=None,
    output_shape=None,
    pad_type="valid",
    strides=None,
    dilations=None,
    groups=1,
):
    n = weight.dim() - 2
    strides = list(strides or [1] * n)
    dilations = list(dilations or [1] * n)
    full = _CONV_T[n](x, weight, None, strides, 0, 0, groups, dilations)
    d_in = x.shape[2:]
    out = full
    for i in range(n):
        size = full.shape[2 + i]
        if output_shape is not None:
            target = int(output_shape[2 + i])
            begin = int(pad[2 * i]) if (pad_type == "custom" and pad is not None) else 0
            if pad_type == "same":
                begin = max(0, size - target) // 2
        elif pad_type == "same":
            target = d_in[i] * strides[i]
            begin = (size - target) // 2
        elif pad_type == "custom" and pad is not None:
            begin = int(pad[2 * i])
            target = size - begin - int(pad[2 * i + 1])
        else:
            begin, target = 0, size
        take = min(target, size - begin)
        out = out.narrow(2 + i, begin, take)
        if take < target:  # requested output larger than the transposed conv reaches
            pads = [(0, 0)] * n
            pads[i] = (0, target - take)
            out = pad_spatial(out, pads)
    if bias is not None:
        out = out + bias.reshape([1, -1] + [1] * n)
    return out


@kernel("scaled_dot_product_attention")
def _sdpa(query, key, value, attn_mask=None):
    return F.scaled_dot_product_attention(query, key, value, attn_mask=attn_mask)
