"""iOS18 state ops. A state input's slot holds a :class:`StateCell`; writes replace its
tensor (never mutate in place), so earlier reads keep the value they saw."""

from __future__ import annotations

import torch

from .registry import kernel


class StateCell:
    """Mutable holder for one state tensor across ``predict`` calls."""

    __slots__ = ("value",)

    def __init__(self, value: torch.Tensor):
        self.value = value


@kernel("read_state", movement=True)
def _read_state(input: StateCell):
    return input.value


@kernel("coreml_update_state", movement=True)
def _update_state(state: StateCell, value: torch.Tensor):
    state.value = value.to(state.value.dtype)
    return state.value
