"""Native Core ML prediction (macOS only), behind the same :class:`Runtime` contract."""

from __future__ import annotations

import platform
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .base import TensorSpec, validate_inputs
from .model_spec import io_specs

_UNITS = ("ALL", "CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE")


class CoreMLRuntime:
    """Wraps ``coremltools.models.MLModel``; predictions run in Apple's Core ML framework."""

    kind = "coreml"

    def __init__(self, path: str | Path, compute_units: str = "ALL", function: str | None = None):
        if platform.system() != "Darwin":
            raise RuntimeError(
                "native Core ML prediction needs macOS (MLModel.predict only exists there); "
                f"on {platform.system()} use runtime='mil' to execute the package's MIL program "
                "with the portable interpreter"
            )
        if compute_units not in _UNITS:
            raise ValueError(f"compute_units must be one of {_UNITS}, got {compute_units!r}")
        import coremltools as ct

        self.path = Path(path)
        kwargs = {"compute_units": ct.ComputeUnit[compute_units]}
        if function is not None:
            kwargs["function_name"] = function
        self.model = ct.models.MLModel(str(path), **kwargs)
        spec = self.model.get_spec()
        self.inputs: list[TensorSpec]
        self.outputs: list[TensorSpec]
        self.states: list[TensorSpec]
        self.inputs, self.outputs, self.states = io_specs(
            spec, function if spec.description.functions else None
        )

    def make_state(self):
        """A fresh Core ML state object (iOS18 stateful models)."""
        return self.model.make_state()

    def predict(self, inputs: Mapping[str, np.ndarray], state=None) -> dict[str, np.ndarray]:
        arrays = validate_inputs(inputs, self.inputs)
        raw = self.model.predict(arrays, state=state) if state is not None else self.model.predict(arrays)
        out = {}
        for spec in self.outputs:
            out[spec.name] = np.asarray(raw[spec.name]).astype(spec.dtype, copy=False)
        return out
