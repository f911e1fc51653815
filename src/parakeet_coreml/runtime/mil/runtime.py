"""``MilRuntime``: run a saved ML program (or an in-memory MIL ``Program``) with torch on CPU.

Numerics (the choice and why): Core ML's GPU and Neural Engine store fp16 tensors but
accumulate matmuls, convolutions and reductions in higher precision. We emulate that as
"fp16 storage, fp32 compute": every value a program declares fp16 is held as a
``torch.float16`` tensor (so it is fp16-rounded), each op widens its fp16 inputs to fp32,
computes with the fp32 torch kernel, and rounds each output to its declared dtype (round to
nearest even). Ops that only move data (reshape, slice, concat, gather, ...) run on the
fp16 values directly, which gives identical results. Composite ops (layer_norm, softmax,
lstm over a whole sequence) round only their outputs. int32/bool/fp32 values are kept
exactly as declared, and ``cast`` converts exactly (float to int truncates toward zero, as
numpy's ``astype`` in coremltools' value_inference does).

Bit-equality with Apple hardware is not the goal (its kernels fuse ops, tile reductions and
round differently); a faithful error model is: fp16 overflow becomes inf, tiny values lose
precision or become zero, and every op boundary adds one fp16 rounding, so fp16 problems
(mask constants, power spectra, log of small numbers) show up here before they show up on a
device.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from coremltools.converters.mil.mil import Program, types

from ..base import TensorSpec, validate_inputs
from ..model_spec import default_function, io_specs
from .dtypes import NUMPY_NAME, mil_dtype_name, to_numpy, to_storage, var_shape
from .executor import run_steps
from .loader import load_package
from .ops_state import StateCell
from .plan import Planner, read_output


def _spec_of(var) -> TensorSpec:
    return TensorSpec(var.name, var_shape(var), NUMPY_NAME.get(mil_dtype_name(var), "float32"))


class MilRuntime:
    """Portable interpreter for ML programs; satisfies :class:`~..base.Runtime`."""

    kind = "mil"

    def __init__(self, path_or_program: str | Path | Program, function: str | None = "main"):
        spec = None
        if isinstance(path_or_program, Program):
            program = path_or_program
            self.path = None
        else:
            program, spec = load_package(path_or_program)
            self.path = Path(path_or_program)
        if function is None or (spec is not None and function == "main"
                                and "main" not in program.functions):
            function = default_function(spec) if spec is not None else "main"
        if function not in program.functions:
            raise ValueError(
                f"function {function!r} not in program; has {sorted(program.functions)}"
            )
        self.function = function
        func = program.functions[function]

        self.inputs: list[TensorSpec] = []
        self.states: list[TensorSpec] = []
        self._state_dtypes: dict[str, str] = {}
        self._in: dict[str, str] = {}
        self._order = list(func.inputs)  # names in plan.input_slots order
        for var in func.inputs.values():
            if types.is_state(var.sym_type):
                self.states.append(_spec_of(var))
                self._state_dtypes[var.name] = mil_dtype_name(var)
            else:
                self.inputs.append(_spec_of(var))
                self._in[var.name] = mil_dtype_name(var)
        self.outputs = [_spec_of(v) for v in func.outputs]
        if spec is not None:  # declared names, in declared order
            _, declared, _ = io_specs(spec, function if spec.description.functions else None)
            if len(declared) == len(self.outputs):
                self.outputs = [
                    TensorSpec(d.name, o.shape, o.dtype) for d, o in zip(declared, self.outputs)
                ]

        planner = Planner()
        with torch.inference_mode():
            self._plan = planner.plan_block(func, input_vars=list(func.inputs.values()))
        self._n_slots = planner.n_slots
        self.compressed_ops: dict[str, int] = dict(planner.compressed)
        self.op_counts: dict[str, int] = dict(planner.op_counts)
        for c in planner.consts.values():
            c.drop_raw()
        del planner, program, func  # the plan holds the only copy of every weight

    # ---------------------------------------------------------------- state
    def make_state(self) -> dict[str, np.ndarray]:
        """Zero-initialised state tensors (iOS18 stateful models), keyed by state name."""
        return {s.name: np.zeros([max(d, 1) for d in s.shape], s.dtype) for s in self.states}

    # ---------------------------------------------------------------- predict
    def predict(
        self,
        inputs: Mapping[str, np.ndarray],
        state: dict[str, np.ndarray] | None = None,
    ) -> dict[str, np.ndarray]:
        """Run the function. ``state`` (from :meth:`make_state`) is updated in place."""
        arrays = validate_inputs(inputs, self.inputs)
        if self.states and state is None:
            raise ValueError(f"this model has state {[s.name for s in self.states]}; "
                             "pass state=runtime.make_state()")
        env: list = [None] * self._n_slots
        plan = self._plan
        cells: dict[str, StateCell] = {}
        with torch.inference_mode():
            for slot, name in zip(plan.input_slots, self._order):
                if name in self._state_dtypes:
                    value = to_storage(np.asarray(state[name]), self._state_dtypes[name])
                    env[slot] = cells[name] = StateCell(value)
                else:
                    env[slot] = to_storage(arrays[name], self._in[name])
            for s in plan.free_inputs:
                env[s] = None
            run_steps(plan.steps, env)
            out = {}
            for i, spec in enumerate(self.outputs):
                t = read_output(plan, i, env)
                out[spec.name] = np.array(to_numpy(t, plan.outputs[i][2]), copy=True)
        for name, cell in cells.items():
            state[name][...] = to_numpy(cell.value, self._state_dtypes[name])
        return out

    def __repr__(self) -> str:
        ins = ", ".join(s.describe() for s in self.inputs)
        outs = ", ".join(s.describe() for s in self.outputs)
        return f"MilRuntime({self.function}: {ins} -> {outs})"
