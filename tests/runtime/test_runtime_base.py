"""Runtime contract pieces that need no model execution: TensorSpec parsing from a model
spec, input validation, and the native Core ML runtime's behaviour off macOS."""

from __future__ import annotations

import platform

import coremltools as ct
import numpy as np
import pytest
from _mil_helpers import convert_program
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import types

from parakeet_coreml.runtime import CoreMLRuntime, TensorSpec, validate_inputs
from parakeet_coreml.runtime.model_spec import io_specs


def test_io_specs_from_model_description(tmp_path):
    @mb.program(
        input_specs=[mb.TensorSpec((1, 80, 100)), mb.TensorSpec((1,), dtype=types.int32)],
        opset_version=ct.target.iOS17,
    )
    def prog(x, n):
        return mb.mul(x=x, y=mb.cast(x=n, dtype="fp32"), name="scaled")

    model = convert_program(prog, ct.target.iOS17, ct.precision.FLOAT16)
    model.save(str(tmp_path / "m.mlpackage"))
    spec = ct.utils.load_spec(str(tmp_path / "m.mlpackage"))
    inputs, outputs, states = io_specs(spec)
    assert inputs == [TensorSpec("x", (1, 80, 100), "float32"), TensorSpec("n", (1,), "int32")]
    assert outputs == [TensorSpec("scaled", (1, 80, 100), "float32")]
    assert states == []


def test_validate_inputs_casts_and_errors():
    specs = [TensorSpec("a", (2, -1), "float16"), TensorSpec("b", (1,), "int32")]
    out = validate_inputs({"a": np.ones((2, 5)), "b": [3]}, specs)
    assert out["a"].dtype == np.float16 and out["a"].shape == (2, 5)
    assert out["b"].dtype == np.int32 and out["b"].tolist() == [3]
    with pytest.raises(ValueError, match=r"'a'.*\(2, -1\).*\(3, 5\)"):
        validate_inputs({"a": np.ones((3, 5)), "b": [3]}, specs)
    with pytest.raises(ValueError, match="'b'.*out of range"):
        validate_inputs({"a": np.ones((2, 5)), "b": np.array([2**40])}, specs)


@pytest.mark.skipif(platform.system() == "Darwin", reason="off-macOS behaviour")
def test_coreml_runtime_needs_macos(tmp_path):
    with pytest.raises(RuntimeError, match=r"needs macOS.*runtime='mil'"):
        CoreMLRuntime(tmp_path / "any.mlpackage")
