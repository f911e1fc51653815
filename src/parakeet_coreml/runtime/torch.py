"""The PyTorch reference of a component, behind the same interface as a package.

It runs the very export wrapper that was traced for the package, so compare feeds one
function to torch and to CoreML; only the runtime differs.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

from ..contract import Contract
from ..export.wrappers import build_wrapper
from ..model import ParakeetModel
from .base import TensorSpec, validate_inputs


class TorchRuntime:
    """``predict`` over a component's export wrapper, fp32 on the CPU."""

    kind = "torch"

    def __init__(self, model: ParakeetModel, contract: Contract, component: str):
        io = contract[component]
        self.component = component
        self.module = build_wrapper(component, model, contract)
        self.inputs = [TensorSpec(t.name, t.shape, t.dtype) for t in io.inputs]
        self.outputs = [TensorSpec(t.name, t.shape, t.dtype) for t in io.outputs]

    @torch.inference_mode()
    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        arrays = validate_inputs(inputs, self.inputs)
        args = [torch.from_numpy(arrays[s.name]) for s in self.inputs]
        result = self.module(*args)
        result = result if isinstance(result, tuple) else (result,)
        return {s.name: r.detach().numpy().astype(s.dtype, copy=False) for s, r in zip(self.outputs, result)}
