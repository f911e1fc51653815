"""Kernel registry: MIL op type -> torch implementation.

A kernel is called with the op's inputs as keyword arguments. Inputs named in ``static`` are
passed as plain Python values (ints, lists, strings: axes, perms, modes) resolved once at load
time when constant; every other input is a torch tensor (tuple inputs are lists of tensors).
``movement`` kernels only move or select data, so fp16 inputs are handed over unconverted;
all other kernels see fp16 inputs widened to fp32 (see :mod:`.program` for the fp16 model).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

KERNELS: dict[str, Kernel] = {}


@dataclass(frozen=True)
class Kernel:
    fn: Callable
    static: frozenset[str]
    movement: bool


def kernel(*op_types: str, static: tuple[str, ...] = (), movement: bool = False):
    """Register ``fn`` as the kernel for each of ``op_types``."""

    def deco(fn: Callable) -> Callable:
        for t in op_types:
            KERNELS[t] = Kernel(fn, frozenset(static), movement)
        return fn

    return deco


def get_kernel(op_type: str) -> Kernel | None:
    _load_all()
    return KERNELS.get(op_type)


def supported_op_types() -> list[str]:
    _load_all()
    return sorted(KERNELS)


def _load_all() -> None:
    # Importing the kernel modules registers them.
    from . import (  # noqa: F401
        ops_elementwise,
        ops_index,
        ops_linalg,
        ops_norm,
        ops_recurrent,
        ops_reduce,
        ops_shape,
        ops_spatial,
        ops_state,
    )
