"""Whole programs written with the MIL builder, converted, saved and loaded back from disk:
numerics, fp16 rounding, control flow, state, multifunction packages, errors, liveness."""

from __future__ import annotations

import platform

import coremltools as ct
import numpy as np
import pytest
from _mil_helpers import convert_program, rel_err, save_and_load
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import types

from parakeet_coreml.runtime import MilRuntime, Runtime, TensorSpec, load_runtime

IOS17, IOS18 = ct.target.iOS17, ct.target.iOS18


def test_builder_program_matches_numpy(tmp_path, rng):
    w = rng.standard_normal((8, 6)).astype(np.float32)
    bias = rng.standard_normal(8).astype(np.float32)

    @mb.program(
        input_specs=[mb.TensorSpec((2, 5, 6)), mb.TensorSpec((2,), dtype=types.int32)],
        opset_version=IOS17,
    )
    def prog(x, n):
        h = mb.linear(x=x, weight=w, bias=bias)
        h = mb.layer_norm(x=mb.silu(x=h), axes=[-1], epsilon=1e-5)
        mask = mb.less(x=mb.range_1d(start=0, end=5, step=1), y=mb.expand_dims(x=n, axes=[1]))
        h = mb.select(cond=mb.expand_dims(x=mask, axes=[-1]), a=h, b=np.float32(0.0))
        return mb.reduce_sum(x=h, axes=[1], name="pooled"), mb.reduce_argmax(
            x=h, axis=-1, name="best"
        )

    rt = save_and_load(convert_program(prog, IOS17, ct.precision.FLOAT32), tmp_path)
    assert isinstance(rt, Runtime) and rt.kind == "mil"
    assert rt.inputs == [TensorSpec("x", (2, 5, 6), "float32"), TensorSpec("n", (2,), "int32")]
    x = rng.standard_normal((2, 5, 6)).astype(np.float32)
    n = np.array([3, 5], np.int32)
    out = rt.predict({"x": x, "n": n})
    assert list(out) == ["pooled", "best"]

    h = x.astype(np.float64) @ w.T + bias
    h = h / (1 + np.exp(-h))
    h = (h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, keepdims=True) + 1e-5)
    h = np.where((np.arange(5)[None, :] < n[:, None])[..., None], h, 0.0)
    assert rel_err(out["pooled"], h.sum(1)) < 1e-5
    np.testing.assert_array_equal(out["best"], h.argmax(-1))


def test_fp16_program_rounds_every_op(tmp_path):
    """fp16 vars hold fp16 values: products round at each op, overflow becomes inf."""

    @mb.program(input_specs=[mb.TensorSpec((3,), dtype=types.fp16)], opset_version=IOS17)
    def prog(x):
        sq = mb.mul(x=x, y=x, name="sq")
        return sq, mb.sub(x=sq, y=np.float16(1.0), name="frac")

    rt = save_and_load(convert_program(prog, IOS17, ct.precision.FLOAT16), tmp_path)
    x = np.array([1 + 3 * 2**-10, 300.0, 0.1], np.float16)
    out = rt.predict({"x": x})
    x32 = x.astype(np.float32)
    exact = x32 * x32  # exact in fp32 for these inputs
    assert out["sq"].dtype == np.float16 and out["frac"].dtype == np.float16
    # (1 + 3*2^-10)^2 = 1 + 6*2^-10 + 9*2^-20 is not an fp16 number: it comes back rounded
    assert exact[0] != np.float32(exact[0].astype(np.float16))
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(out["sq"], exact.astype(np.float16))
    assert np.isinf(out["sq"][1])  # 90000 > fp16 max
    # the subtraction sees the rounded product (6*2^-10), not the fp32 one, whose
    # difference would round to 6*2^-10 + 2^-17 in fp16
    assert out["frac"][0] == np.float16(6 * 2**-10)
    assert out["frac"][0] != np.float16(exact[0] - 1)


def test_fp16_program_from_fp32_inputs_has_cast_boundaries(tmp_path, rng):
    @mb.program(input_specs=[mb.TensorSpec((4, 4))], opset_version=IOS17)
    def prog(x):
        return mb.softmax(x=mb.mul(x=x, y=np.float32(3.0)), axis=-1, name="p")

    rt = save_and_load(convert_program(prog, IOS17, ct.precision.FLOAT16), tmp_path)
    assert rt.op_counts["cast"] >= 1 and rt.outputs[0].dtype == "float32"
    x = rng.standard_normal((4, 4)).astype(np.float32)
    got = rt.predict({"x": x})["p"]
    # model: x -> fp16, mul in fp32 -> fp16, softmax in fp32 -> fp16, cast -> fp32
    x16 = x.astype(np.float16).astype(np.float32)
    z = (x16 * 3).astype(np.float16).astype(np.float64)
    e = np.exp(z - z.max(-1, keepdims=True))
    want = (e / e.sum(-1, keepdims=True)).astype(np.float16).astype(np.float32)
    np.testing.assert_allclose(got, want, atol=2 * 2.0**-11, rtol=0)
    assert np.all(got == got.astype(np.float16).astype(np.float32))  # fp16 values in fp32


def test_while_loop_and_cond(tmp_path):
    @mb.program(input_specs=[mb.TensorSpec((1,)), mb.TensorSpec((2, 3))], opset_version=IOS17)
    def prog(n, x):
        i0 = mb.mul(x=n, y=0.0)
        i, acc = mb.while_loop(
            _cond=lambda i, acc: mb.less(x=i, y=n),
            _body=lambda i, acc: (mb.add(x=i, y=1.0), mb.mul(x=acc, y=1.5)),
            loop_vars=(i0, x),
        )
        pred = mb.greater(x=mb.reduce_sum(x=acc), y=0.0)
        out = mb.cond(
            pred=pred, _true_fn=lambda: mb.mul(x=acc, y=2.0), _false_fn=lambda: mb.sub(x=acc, y=1.0)
        )
        return mb.identity(x=out, name="out"), mb.identity(x=i, name="steps")

    rt = save_and_load(convert_program(prog, IOS17, ct.precision.FLOAT32), tmp_path)
    assert {"while_loop", "cond"} <= set(rt.op_counts)
    x = np.arange(6, dtype=np.float32).reshape(2, 3) - 2
    for n, sign in ((3, 1), (2, -1), (0, 1)):
        out = rt.predict({"n": np.array([n], np.float32), "x": sign * np.abs(x) + 0.5})
        acc = (sign * np.abs(x) + 0.5) * 1.5**n
        want = acc * 2 if acc.sum() > 0 else acc - 1
        np.testing.assert_allclose(out["out"], want, rtol=1e-6)
        assert out["steps"][0] == n


def test_stateful_program_accumulates(tmp_path):
    @mb.program(
        input_specs=[
            mb.StateTensorSpec((1, 3), dtype=types.fp16),
            mb.TensorSpec((1, 3), dtype=types.fp16),
        ],
        opset_version=IOS18,
    )
    def prog(acc, x):
        new = mb.add(x=mb.read_state(input=acc), y=x)
        mb.coreml_update_state(state=acc, value=new)
        return mb.mul(x=new, y=np.float16(2.0), name="twice")

    rt = save_and_load(convert_program(prog, IOS18, ct.precision.FLOAT16), tmp_path)
    assert [s.name for s in rt.states] == ["acc"] and rt.inputs[0].name == "x"
    state = rt.make_state()
    x = np.array([[1.0, 2.0, 0.5]], np.float16)
    first = rt.predict({"x": x}, state=state)["twice"]
    second = rt.predict({"x": x}, state=state)["twice"]
    np.testing.assert_array_equal(first, 2 * x)
    np.testing.assert_array_equal(second, 4 * x)
    np.testing.assert_array_equal(state["acc"], 2 * x)
    with pytest.raises(ValueError, match="state"):
        rt.predict({"x": x})


def _scale_program(scale: float):
    @mb.program(input_specs=[mb.TensorSpec((2,))], opset_version=IOS18)
    def prog(x):
        return mb.mul(x=x, y=np.float32(scale), name="y")

    return prog


def test_multifunction_package(tmp_path):
    paths = []
    for k, scale in enumerate((2.0, -3.0)):
        p = tmp_path / f"f{k}.mlpackage"
        convert_program(_scale_program(scale), IOS18, ct.precision.FLOAT32).save(str(p))
        paths.append(p)
    desc = ct.utils.MultiFunctionDescriptor()
    desc.add_function(str(paths[0]), src_function_name="main", target_function_name="double")
    desc.add_function(str(paths[1]), src_function_name="main", target_function_name="neg3")
    desc.default_function_name = "neg3"
    out = tmp_path / "multi.mlpackage"
    ct.utils.save_multifunction(desc, str(out))
    x = np.array([1.0, -2.0], np.float32)
    assert np.array_equal(MilRuntime(out, function="double").predict({"x": x})["y"], 2 * x)
    assert np.array_equal(load_runtime(out, runtime="mil").predict({"x": x})["y"], -3 * x)
    with pytest.raises(ValueError, match="double"):
        MilRuntime(out, function="missing")


def test_unsupported_op_names_type_and_op():
    @mb.program(input_specs=[mb.TensorSpec((3, 1, 2))], opset_version=IOS17)
    def prog(x):
        y, _ = mb.gru(
            x=x,
            initial_h=np.zeros((1, 4), np.float32),
            weight_ih=np.ones((12, 2), np.float32),
            weight_hh=np.ones((12, 4), np.float32),
            name="my_gru",
        )
        return y

    with pytest.raises(NotImplementedError, match=r"'gru'.*'my_gru'"):
        MilRuntime(prog)


def test_intermediates_are_freed_after_last_use():
    @mb.program(input_specs=[mb.TensorSpec((4,))], opset_version=IOS17)
    def prog(x):
        a = mb.exp(x=x)
        b = mb.add(x=a, y=x)  # last use of x and a
        c = mb.mul(x=b, y=b)
        return mb.sqrt(x=c, name="out"), mb.identity(x=b, name="b_out")

    rt = MilRuntime(prog)
    plan = rt._plan
    defined = set(plan.input_slots) | {s for st in plan.steps for s in st.outs}
    freed = set(plan.free_inputs) | {s for st in plan.steps for s in st.free}
    kept = {s for s, _, _ in plan.outputs}
    assert freed == defined - kept  # everything but the outputs is released
    by_op = {st.op_type: st for st in plan.steps}
    x_slot, a_slot = plan.input_slots[0], by_op["exp"].outs[0]
    assert {x_slot, a_slot} <= set(by_op["add"].free)  # freed right after their last reader
    out = rt.predict({"x": np.array([0.0, 1.0, -1.0, 2.0], np.float32)})
    x = np.array([0.0, 1.0, -1.0, 2.0])
    np.testing.assert_allclose(out["out"], np.abs(np.exp(x) + x), rtol=1e-6)


def test_input_validation_messages(tmp_path):
    @mb.program(
        input_specs=[mb.TensorSpec((2, 3)), mb.TensorSpec((1,), dtype=types.int32)],
        opset_version=IOS17,
    )
    def prog(x, n):
        return mb.add(x=x, y=mb.cast(x=n, dtype="fp32"), name="y")

    rt = MilRuntime(prog)
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="missing.*'n'"):
        rt.predict({"x": x})
    with pytest.raises(ValueError, match="unexpected.*'z'"):
        rt.predict({"x": x, "n": np.array([1], np.int32), "z": x})
    with pytest.raises(ValueError, match=r"'x'.*\(2, 3\).*\(3, 2\)"):
        rt.predict({"x": np.zeros((3, 2), np.float32), "n": np.array([1], np.int32)})
    with pytest.raises(ValueError, match="'n'.*unsafe"):
        rt.predict({"x": x, "n": np.array([1.5], np.float32)})
    # safe casts are applied: float64 -> float32, int64 -> int32
    out = rt.predict({"x": np.ones((2, 3)), "n": np.array([2], np.int64)})
    np.testing.assert_array_equal(out["y"], np.full((2, 3), 3.0, np.float32))


def test_load_runtime_picks_backend(tmp_path):
    @mb.program(input_specs=[mb.TensorSpec((2,))], opset_version=IOS17)
    def prog(x):
        return mb.relu(x=x, name="y")

    path = tmp_path / "relu.mlpackage"
    convert_program(prog, IOS17, ct.precision.FLOAT32).save(str(path))
    with pytest.raises(ValueError, match="runtime"):
        load_runtime(path, runtime="onnx")
    if platform.system() != "Darwin":
        assert isinstance(load_runtime(path), MilRuntime)
        with pytest.raises(RuntimeError, match=r"macOS.*runtime='mil'"):
            load_runtime(path, runtime="coreml")
    rt = load_runtime(path, runtime="mil")
    assert rt.predict({"x": np.array([-1.0, 2.0], np.float32)})["y"].tolist() == [0.0, 2.0]
