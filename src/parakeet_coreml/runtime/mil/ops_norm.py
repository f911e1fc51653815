"""Normalisation MIL ops: layer/batch/instance/l2/local-response norm (fp32 statistics)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .registry import kernel


@kernel("layer_norm", static=("axes", "epsilon"))
def _layer_norm(x, axes=None, gamma=None, beta=None, epsilon=1e-5):
    rank = x.dim()
    axes = sorted(a % rank for a in (range(rank) if axes is None else axes))
    if axes == list(range(rank - len(axes), rank)):
        return F.layer_norm(x, x.shape[rank - len(axes) :], gamma, beta, epsilon)
    shape = [x.shape[i] if i in axes else 1 for i in range(rank)]
    mean = x.mean(dim=axes, keepdim=True)
    var = (x - mean).square().mean(dim=axes, keepdim=True)
    y = (x - mean) / torch.sqrt(var + epsilon)
    if gamma is not None:
        y = y * gamma.reshape(shape)
    if beta is not None:
        y = y + beta.reshape(shape)
    return y


@kernel("batch_norm", static=("epsilon",))
def _batch_norm(x, mean, variance, gamma=None, beta=None, epsilon=1e-5):
    return F.batch_norm(x, mean, variance, gamma, beta, training=False, eps=epsilon)


@kernel("instance_norm", static=("epsilon",))
def _instance_norm(x, gamma=None, beta=None, epsilon=1e-5):
    return F.instance_norm(x, weight=gamma, bias=beta, eps=epsilon)


@kernel("l2_norm", static=("epsilon",))
def _l2_norm(x, epsilon=1e-6):
    # The last three dims are normalised together; leading dims are batch.
    lead = x.shape[: max(0, x.dim() - 3)]
    flat = x.reshape(lead + (-1,))
    norm = torch.sqrt(flat.square().sum(dim=-1, keepdim=True) + epsilon)
    return (flat / norm).reshape(x.shape)


@kernel("local_response_norm", static=("size", "alpha", "beta", "k"))
def _lrn(x, size, alpha=1e-4, beta=0.75, k=1.0):
    return F.local_response_norm(x, size, alpha=alpha, beta=beta, k=k)
