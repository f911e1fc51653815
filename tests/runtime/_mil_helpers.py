"""Helpers shared by the runtime tests (imported by path; tests/ is not a package)."""

from __future__ import annotations

from pathlib import Path

import coremltools as ct
import numpy as np

from parakeet_coreml.runtime.mil import MilRuntime


def save_and_load(mlmodel, tmp_path: Path, name: str = "m") -> MilRuntime:
    """Save a converted model and load it back from disk (the path we ship)."""
    path = tmp_path / f"{name}.mlpackage"
    mlmodel.save(str(path))
    return MilRuntime(path)


def convert_program(prog, target=ct.target.iOS17, precision=ct.precision.FLOAT32):
    return ct.convert(
        prog,
        convert_to="mlprogram",
        minimum_deployment_target=target,
        compute_precision=precision,
    )


def rel_err(got: np.ndarray, ref: np.ndarray) -> float:
    """max |got - ref| / max |ref| (scale-relative error)."""
    got = np.asarray(got, np.float64)
    ref = np.asarray(ref, np.float64)
    scale = max(float(np.abs(ref).max()), 1e-12)
    return float(np.abs(got - ref).max()) / scale


def fp16_ulp_close(got: np.ndarray, ref32: np.ndarray, ulps: float = 1.0) -> None:
    """``got`` (fp16) equals ``ref32`` rounded to fp16 within ``ulps`` fp16 ulps."""
    assert got.dtype == np.float16, got.dtype
    want = np.asarray(ref32, np.float32).astype(np.float16)
    g, w = got.astype(np.float64), want.astype(np.float64)
    finite = np.isfinite(w)
    assert np.array_equal(np.isfinite(g), finite), "inf/nan pattern differs"
    spacing = np.spacing(np.abs(want).astype(np.float16)).astype(np.float64)
    tol = ulps * np.maximum(spacing, 2.0**-24)
    assert np.all(np.abs(g - w)[finite] <= tol[finite]), np.abs(g - w)[finite].max()


def run_mil(build, inputs: dict, opset=ct.target.iOS17) -> list[np.ndarray]:
    """Build a program whose placeholders are ``inputs`` (name -> array), with ``build``
    mapping those vars (by name) to output var(s); run it with MilRuntime; outputs in order."""
    from coremltools.converters.mil.mil import Function, Program, types
    from coremltools.converters.mil.mil.program import Placeholder

    dtypes = {
        np.float32: types.fp32,
        np.float16: types.fp16,
        np.int32: types.int32,
        np.bool_: types.bool,
    }
    holders = {n: Placeholder(a.shape, dtype=dtypes[a.dtype.type]) for n, a in inputs.items()}
    with Function(holders, opset_version=opset) as func:
        outs = build(**func.inputs)
        func.set_outputs(list(outs) if isinstance(outs, (list, tuple)) else [outs])
    prog = Program()
    prog.add_function("main", func)
    rt = MilRuntime(prog)
    out = rt.predict(inputs)
    return [out[s.name] for s in rt.outputs]
