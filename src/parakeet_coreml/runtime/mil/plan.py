"""Turn a MIL function into an execution plan, once, at load time.

Every Var gets an integer slot in one flat environment (nested blocks share it, so ops in a
``while_loop`` body read outer values directly). Per op the plan holds the kernel, its
constant arguments already converted (static Python params, torch tensors), the slots it
reads, which of those to widen from fp16, its output slots with the declared storage dtype,
and the slots whose last reader it is (freed right after, so intermediates do not pile up).

Constants: ``const`` values become torch tensors once; ``constexpr_*`` compressed weights
are decompressed once into dense tensors; ops whose inputs are all constant are run once
here (constant folding, as Core ML's compiler does) with the same kernels.

fp16 constants are stored widened to fp32 (exactly: every fp16 is an fp32). Kernels compute
in fp32 anyway, so a fp16 weight is converted once at load instead of on every call; only
activations are held as ``torch.float16``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from coremltools.converters.mil.mil import types

from . import constexpr
from .dtypes import TORCH_STORAGE, mil_dtype_name, to_storage
from .registry import get_kernel

_NO_FOLD = {"read_state", "coreml_update_state", "while_loop", "cond"}


class Const:
    """A compile-time value: numpy/python ``raw`` plus a lazily built torch tensor."""

    __slots__ = ("_tensor", "dtype", "raw")

    def __init__(self, raw: Any, dtype: str, tensor: torch.Tensor | None = None):
        self.raw, self.dtype, self._tensor = raw, dtype, tensor

    def tensor(self):
        if self._tensor is None:
            if isinstance(self.raw, str) or self.dtype not in TORCH_STORAGE:
                return self.raw
            st = "fp32" if self.dtype == "fp16" else self.dtype  # widen once, exactly
            self._tensor = to_storage(self.raw, st, copy=True)
        return self._tensor

    def static(self):
        v = self.raw
        if v is None and self._tensor is not None:
            v = self._tensor.numpy()
        if isinstance(v, np.ndarray):
            return v.tolist()
        if isinstance(v, np.generic):
            return v.item()
        return v

    def numpy(self):
        if self.raw is None and self._tensor is not None:
            return self._tensor.numpy()
        return self.raw

    def drop_raw(self) -> None:
        """Forget the numpy copy once a tensor exists (one copy of each weight)."""
        if self._tensor is not None and isinstance(self._tensor, torch.Tensor):
            self.raw = None


@dataclass
class Step:
    fn: Callable
    op_type: str
    name: str
    consts: dict[str, Any]
    vars: list[tuple[str, int, bool]]
    tuples: list[tuple[str, list[tuple[int, bool, Any]]]]
    dyn_static: list[tuple[str, int]]
    outs: list[int]
    out_dtypes: list[torch.dtype | None]
    control: bool = False
    free: list[int] = field(default_factory=list)
    nested_reads: set[int] = field(default_factory=set)


@dataclass
class BlockPlan:
    steps: list[Step]
    input_slots: list[int]
    # (slot or -1, const tensor in declared storage dtype, mil dtype)
    outputs: list[tuple[int, Any, str]]
    defined: set[int]
    free_inputs: list[int] = field(default_factory=list)

    def reads(self) -> set[int]:
        r: set[int] = set()
        for st in self.steps:
            r.update(s for _, s, _ in st.vars)
            r.update(s for _, s in st.dyn_static)
            for _, items in st.tuples:
                r.update(s for s, _, _ in items if s >= 0)
            r |= st.nested_reads
        r.update(s for s, _, _ in self.outputs if s >= 0)
        return r


def read_output(plan: BlockPlan, i: int, env: list) -> Any:
    slot, const, _ = plan.outputs[i]
    return env[slot] if slot >= 0 else const


class Planner:
    """Builds :class:`BlockPlan` s for one function; owns slot numbering and constants."""

    def __init__(self) -> None:
        self.slots: dict[int, int] = {}
        self.consts: dict[int, Const] = {}
        self.keep: list[Any] = []  # keep Vars alive so id() stays unique while planning
        self.compressed: Counter[str] = Counter()
        self.op_counts: Counter[str] = Counter()

    # ------------------------------------------------------------ vars
    def slot(self, var) -> int:
        key = id(var)
        if key not in self.slots:
            self.slots[key] = len(self.slots)
            self.keep.append(var)
        return self.slots[key]

    @property
    def n_slots(self) -> int:
        return len(self.slots)

    def const_of(self, var) -> Const | None:
        return self.consts.get(id(var))

    def set_const(self, var, c: Const) -> None:
        self.consts[id(var)] = c
        self.keep.append(var)

    # ------------------------------------------------------------ blocks
    def plan_block(self, block, input_vars=None) -> BlockPlan:
        steps: list[Step] = []
        in_slots = [self.slot(v) for v in (input_vars if input_vars is not None else block.inputs)]
        defined = set(in_slots)
        for op in block.operations:
            step = self._plan_op(op)
            if step is not None:
                steps.append(step)
                defined.update(step.outs)
        outputs = []
        for v in block.outputs:
            c = self.const_of(v)
            dt = mil_dtype_name(v)
            if c is not None:
                t = c.tensor()
                outputs.append((-1, t.to(TORCH_STORAGE[dt]) if isinstance(t, torch.Tensor) else t, dt))
            else:
                outputs.append((self.slot(v), None, dt))
        plan = BlockPlan(steps, in_slots, outputs, defined)
        _assign_frees(plan)
        return plan

    def _plan_op(self, op) -> Step | None:
        t = op.op_type
        self.op_counts[t] += 1
        if t == "const":
            v = op.outputs[0]
            self.set_const(v, Const(v.val, mil_dtype_name(v)))
            return None
        if t.startswith("constexpr_"):
            self._materialize(op)
            return None
        if t in ("while_loop", "cond"):
            from .control import plan_control

            return plan_control(self, op)
        kern = get_kernel(t)
        if kern is None:
            raise NotImplementedError(
                f"MIL op type {t!r} (op {op.name!r}) is not supported by the MIL runtime"
            )
        step = self.make_step(op, kern.fn, kern.static, kern.movement)
        tuple_vars = any(s >= 0 for _, items in step.tuples for s, _, _ in items)
        if not step.vars and not tuple_vars and not step.dyn_static and t not in _NO_FOLD:
            self._fold(op, step)
            return None
        return step

    def make_step(self, op, fn, static=frozenset(), movement=False, control=False) -> Step:
        consts: dict[str, Any] = {}
        vars_: list[tuple[str, int, bool]] = []
        tuples: list[tuple[str, list[tuple[int, bool, Any]]]] = []
        dyn: list[tuple[str, int]] = []
        widen = not movement and not control
        for name, inp in op.inputs.items():
            if isinstance(inp, (list, tuple)):
                if name in static:
                    consts[name] = [self._static_of(op, name, v) for v in inp]
                    continue
                items = []
                for v in inp:
                    c = self.const_of(v)
                    if c is not None:
                        items.append((-1, False, c.tensor()))
                    else:
                        items.append((self.slot(v), widen and _is_fp16(v), None))
                tuples.append((name, items))
                continue
            c = self.const_of(inp)
            if c is not None:
                consts[name] = c.static() if name in static else c.tensor()
            elif name in static:
                dyn.append((name, self.slot(inp)))
            else:
                vars_.append((name, self.slot(inp), widen and _is_fp16(inp)))
        outs = [self.slot(v) for v in op.outputs]
        out_dt = [_storage_of(v) for v in op.outputs]
        return Step(fn, op.op_type, op.name, consts, vars_, tuples, dyn, outs, out_dt, control)

    def _static_of(self, op, name, v):
        c = self.const_of(v)
        if c is None:
            raise NotImplementedError(
                f"op {op.name!r} ({op.op_type}): non-constant tuple parameter {name!r}"
            )
        return c.static()

    # ------------------------------------------------------------ constants
    def _fold(self, op, step: Step) -> None:
        kw = dict(step.consts)
        for name, items in step.tuples:
            kw[name] = [c for _, _, c in items]
        with torch.inference_mode():
            try:
                res = step.fn(**kw)
            except Exception as e:
                raise RuntimeError(f"folding op {op.name!r} ({op.op_type}) failed: {e}") from e
        res = res if isinstance(res, (tuple, list)) else (res,)
        for v, r, dt in zip(op.outputs, res, step.out_dtypes):
            name = mil_dtype_name(v)
            if isinstance(r, torch.Tensor) and dt is not None:
                r = r.to(dt)
                if name == "fp16":
                    r = r.float()
            self.set_const(v, Const(None, name, r))

    def _materialize(self, op) -> None:
        args = {}
        for name, v in op.inputs.items():
            c = self.const_of(v)
            args[name] = c.numpy() if c is not None else v.val
        outs = constexpr.materialize(op.op_type, args)
        for v, val in zip(op.outputs, outs):
            self.set_const(v, Const(np.asarray(val), mil_dtype_name(v)))
        self.compressed[op.op_type] += 1


# ---------------------------------------------------------------- helpers


def _is_fp16(var) -> bool:
    return mil_dtype_name(var) == "fp16"


def _storage_of(var) -> torch.dtype | None:
    if types.is_list(var.sym_type):
        return None
    return TORCH_STORAGE.get(mil_dtype_name(var))


def _assign_frees(plan: BlockPlan) -> None:
    """Free each value defined in this block right after its last reader in this block."""
    keep = {s for s, _, _ in plan.outputs if s >= 0}
    last: dict[int, int] = {}
    for i, st in enumerate(plan.steps):
        reads = {s for _, s, _ in st.vars} | {s for _, s in st.dyn_static} | st.nested_reads
        for _, items in st.tuples:
            reads.update(s for s, _, _ in items if s >= 0)
        for s in reads:
            last[s] = i
        for s in st.outs:  # values never read are dropped at once
            last.setdefault(s, i)
    for s in plan.input_slots:
        last.setdefault(s, -1)
    free_at: dict[int, list[int]] = {}
    for s, i in last.items():
        if s in plan.defined and s not in keep:
            free_at.setdefault(i, []).append(s)
    for i, st in enumerate(plan.steps):
        st.free = free_at.get(i, [])
    plan.free_inputs = free_at.get(-1, [])
