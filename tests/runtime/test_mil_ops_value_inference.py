"""Each kernel against coremltools' own numpy ``value_inference`` for the same op.

A program of constants is built with the MIL builder: coremltools computes the op's value
while building it, and the MIL runtime computes it with its torch kernel. fp32 programs must
agree to float32 precision; for fp16 programs the expectation is our stated error model:
the fp32 value_inference on the same (fp16) inputs, rounded once to fp16, within 1 ulp.
"""

from __future__ import annotations

import coremltools as ct
import numpy as np
import pytest
from _mil_helpers import fp16_ulp_close
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import types

from parakeet_coreml.runtime.mil import MilRuntime

R = np.random.default_rng(1234)
IOS17, IOS18 = ct.target.iOS17, ct.target.iOS18


def f(*shape, lo=-2.0, hi=2.0):
    """Random floats that are exactly representable in fp16."""
    return R.uniform(lo, hi, size=shape).astype(np.float16).astype(np.float32)


def i32(*shape, lo=-5, hi=6):
    return R.integers(lo, hi, size=shape).astype(np.int32)


def b(*shape):
    return R.random(shape) > 0.5


X = f(2, 3, 4)
POS = f(2, 3, 4, lo=0.1, hi=3.0)
UNIT = f(2, 3, 4, lo=-0.9, hi=0.9)
Y = f(3, 4)

# (case id, op type, kwargs, opset). Float arrays switch to fp16 in the fp16 variant.
CASES = [
    ("abs", "abs", dict(x=X), IOS17),
    ("acos", "acos", dict(x=UNIT), IOS17),
    ("asin", "asin", dict(x=UNIT), IOS17),
    ("atan", "atan", dict(x=X), IOS17),
    ("atanh", "atanh", dict(x=UNIT), IOS17),
    ("ceil", "ceil", dict(x=X), IOS17),
    ("cos", "cos", dict(x=X), IOS17),
    ("cosh", "cosh", dict(x=X), IOS17),
    ("erf", "erf", dict(x=X), IOS17),
    ("exp", "exp", dict(x=X), IOS17),
    ("exp2", "exp2", dict(x=X), IOS17),
    ("floor", "floor", dict(x=X), IOS17),
    (
        "round",
        "round",
        dict(x=f(50, lo=-4, hi=4) * 0 + np.arange(-25, 25, dtype=np.float32) / 2),
        IOS17,
    ),
    ("sign", "sign", dict(x=X), IOS17),
    ("sin", "sin", dict(x=X), IOS17),
    ("sinh", "sinh", dict(x=X), IOS17),
    ("sqrt", "sqrt", dict(x=POS), IOS17),
    ("square", "square", dict(x=X), IOS17),
    ("tan", "tan", dict(x=UNIT), IOS17),
    ("tanh", "tanh", dict(x=X), IOS17),
    ("inverse", "inverse", dict(x=POS, epsilon=1e-3), IOS17),
    ("log", "log", dict(x=POS, epsilon=1e-3), IOS17),
    ("rsqrt", "rsqrt", dict(x=POS, epsilon=1e-3), IOS17),
    ("threshold", "threshold", dict(x=X, alpha=0.25), IOS17),
    ("clip", "clip", dict(x=X, alpha=-0.5, beta=1.25), IOS17),
    ("relu", "relu", dict(x=X), IOS17),
    ("relu6", "relu6", dict(x=X * 4), IOS17),
    ("sigmoid", "sigmoid", dict(x=X), IOS17),
    ("softplus", "softplus", dict(x=X), IOS17),
    ("softsign", "softsign", dict(x=X), IOS17),
    ("clamped_relu", "clamped_relu", dict(x=X, alpha=0.25, beta=1.5), IOS17),
    ("elu", "elu", dict(x=X, alpha=0.75), IOS17),
    ("gelu_exact", "gelu", dict(x=X, mode="EXACT"), IOS17),
    ("gelu_tanh", "gelu", dict(x=X, mode="TANH_APPROXIMATION"), IOS17),
    ("gelu_sigmoid", "gelu", dict(x=X, mode="SIGMOID_APPROXIMATION"), IOS17),
    ("leaky_relu", "leaky_relu", dict(x=X, alpha=0.125), IOS17),
    ("linear_activation", "linear_activation", dict(x=X, alpha=1.5, beta=-0.25), IOS17),
    ("prelu", "prelu", dict(x=f(2, 3, 4, 2), alpha=f(3, lo=0, hi=1)), IOS17),
    ("scaled_tanh", "scaled_tanh", dict(x=X, alpha=1.5, beta=0.5), IOS17),
    ("sigmoid_hard", "sigmoid_hard", dict(x=X, alpha=0.25, beta=0.5), IOS17),
    (
        "softplus_parametric",
        "softplus_parametric",
        dict(x=X, alpha=f(3, lo=0.5, hi=1.5), beta=f(3, lo=0.5, hi=1.5)),
        IOS17,
    ),
    ("thresholded_relu", "thresholded_relu", dict(x=X, alpha=0.5), IOS17),
    ("softmax_last", "softmax", dict(x=X * 3, axis=-1), IOS17),
    ("softmax_mid", "softmax", dict(x=X * 3, axis=1), IOS17),
    # binary, with broadcasting
    ("add", "add", dict(x=X, y=Y), IOS17),
    ("sub", "sub", dict(x=X, y=Y), IOS17),
    ("mul", "mul", dict(x=X, y=Y), IOS17),
    ("real_div", "real_div", dict(x=X, y=f(3, 4, lo=0.5, hi=2)), IOS17),
    ("floor_div", "floor_div", dict(x=X * 3, y=f(3, 4, lo=0.5, hi=2)), IOS17),
    ("mod", "mod", dict(x=X * 3, y=f(3, 4, lo=0.5, hi=2)), IOS17),
    ("pow", "pow", dict(x=POS, y=f(3, 4, lo=-2, hi=2)), IOS17),
    ("maximum", "maximum", dict(x=X, y=Y), IOS17),
    ("minimum", "minimum", dict(x=X, y=Y), IOS17),
    ("equal", "equal", dict(x=np.round(X), y=np.round(Y)), IOS17),
    ("not_equal", "not_equal", dict(x=np.round(X), y=np.round(Y)), IOS17),
    ("greater", "greater", dict(x=X, y=Y), IOS17),
    ("greater_equal", "greater_equal", dict(x=np.round(X), y=np.round(Y)), IOS17),
    ("less", "less", dict(x=X, y=Y), IOS17),
    ("less_equal", "less_equal", dict(x=np.round(X), y=np.round(Y)), IOS17),
    ("add_int", "add", dict(x=i32(2, 3), y=i32(3)), IOS17),
    ("mul_int", "mul", dict(x=i32(2, 3), y=i32(3)), IOS17),
    ("floor_div_int", "floor_div", dict(x=i32(2, 3, lo=-20, hi=20), y=i32(3, lo=1, hi=4)), IOS17),
    ("mod_int", "mod", dict(x=i32(2, 3, lo=-20, hi=20), y=i32(3, lo=1, hi=4)), IOS17),
    ("real_div_int", "real_div", dict(x=i32(2, 3, lo=-20, hi=20), y=i32(3, lo=1, hi=4)), IOS17),
    ("less_int", "less", dict(x=i32(2, 3), y=i32(3)), IOS17),
    ("logical_and", "logical_and", dict(x=b(2, 3), y=b(2, 3)), IOS17),
    ("logical_or", "logical_or", dict(x=b(2, 3), y=b(2, 3)), IOS17),
    ("logical_xor", "logical_xor", dict(x=b(2, 3), y=b(2, 3)), IOS17),
    ("logical_not", "logical_not", dict(x=b(2, 3)), IOS17),
    # casts
    ("cast_f2i", "cast", dict(x=X * 3, dtype="int32"), IOS17),
    ("cast_i2f", "cast", dict(x=i32(2, 3, lo=-1000, hi=1000), dtype="fp32"), IOS17),
    ("cast_i2f16", "cast", dict(x=i32(2, 3, lo=-3000, hi=3000), dtype="fp16"), IOS17),
    ("cast_f2b", "cast", dict(x=np.round(X), dtype="bool"), IOS17),
    ("cast_b2i", "cast", dict(x=b(2, 3), dtype="int32"), IOS17),
    # linear algebra
    ("linear", "linear", dict(x=f(2, 5, 6), weight=f(4, 6), bias=f(4)), IOS17),
    ("matmul", "matmul", dict(x=f(2, 3, 4, 5), y=f(3, 5, 6)), IOS17),
    (
        "matmul_tt",
        "matmul",
        dict(x=f(2, 5, 4), y=f(2, 6, 5), transpose_x=True, transpose_y=True),
        IOS17,
    ),
    ("matmul_vec", "matmul", dict(x=f(5), y=f(2, 5, 3)), IOS17),
    (
        "einsum4",
        "einsum",
        dict(values=(f(2, 3, 4, 5), f(2, 5, 4, 6)), equation="nchw,nwhu->nchu"),
        IOS17,
    ),
    ("einsum3", "einsum", dict(values=(f(3, 4, 5), f(5, 1, 6)), equation="chw,whr->chr"), IOS17),
    ("layer_norm", "layer_norm", dict(x=X, axes=[-1], gamma=f(4), beta=f(4), epsilon=1e-5), IOS17),
    ("layer_norm_2ax", "layer_norm", dict(x=X, axes=[1, 2], epsilon=1e-3), IOS17),
    ("layer_norm_mid", "layer_norm", dict(x=X, axes=[1], gamma=f(3), beta=f(3)), IOS17),
    ("l2_norm", "l2_norm", dict(x=f(2, 2, 3, 4), epsilon=1e-6), IOS17),
    # reductions
    ("reduce_sum", "reduce_sum", dict(x=X, axes=[-1], keep_dims=True), IOS17),
    ("reduce_sum_all", "reduce_sum", dict(x=X), IOS17),
    ("reduce_mean", "reduce_mean", dict(x=X, axes=[0, 2]), IOS17),
    ("reduce_max", "reduce_max", dict(x=X, axes=[1]), IOS17),
    ("reduce_min", "reduce_min", dict(x=X, axes=[1, 2], keep_dims=True), IOS17),
    ("reduce_prod", "reduce_prod", dict(x=X, axes=[2]), IOS17),
    ("reduce_sum_square", "reduce_sum_square", dict(x=X, axes=[-1]), IOS17),
    ("reduce_l1_norm", "reduce_l1_norm", dict(x=X, axes=[-1]), IOS17),
    ("reduce_l2_norm", "reduce_l2_norm", dict(x=X, axes=[0]), IOS17),
    ("reduce_log_sum", "reduce_log_sum", dict(x=POS, axes=[-1]), IOS17),
    ("reduce_log_sum_exp", "reduce_log_sum_exp", dict(x=X, axes=[1]), IOS17),
    ("reduce_argmax", "reduce_argmax", dict(x=X, axis=1, keep_dims=True), IOS17),
    ("reduce_argmin", "reduce_argmin", dict(x=X, axis=-1), IOS17),
    ("reduce_sum_int", "reduce_sum", dict(x=i32(3, 4), axes=[1]), IOS17),
    # tensor manipulation
    ("concat", "concat", dict(values=(f(2, 3), f(2, 2)), axis=1), IOS17),
    ("split_n", "split", dict(x=f(2, 6), num_splits=3, axis=1), IOS17),
    ("split_sizes", "split", dict(x=f(5, 2), split_sizes=[1, 4], axis=0), IOS17),
    ("stack", "stack", dict(values=(f(2, 3), f(2, 3)), axis=1), IOS17),
    ("expand_dims", "expand_dims", dict(x=f(2, 3), axes=[0, -1]), IOS17),
    ("squeeze", "squeeze", dict(x=f(1, 3, 1, 2), axes=[0, 2]), IOS17),
    ("squeeze_all", "squeeze", dict(x=f(1, 3, 1, 2)), IOS17),
    ("reshape", "reshape", dict(x=X, shape=[0, -1, 2]), IOS17),
    ("reshape_2d", "reshape", dict(x=f(4, 6), shape=[-1, 3]), IOS17),
    ("reshape_int", "reshape", dict(x=i32(2, 6), shape=[3, 4]), IOS17),
    ("transpose", "transpose", dict(x=X, perm=[2, 0, 1]), IOS17),
    (
        "slice_by_index",
        "slice_by_index",
        dict(x=f(5, 6), begin=[1, 0], end=[4, 5], stride=[2, 1]),
        IOS17,
    ),
    (
        "slice_masks",
        "slice_by_index",
        dict(
            x=f(5, 6, 3),
            begin=[1, 2, 1],
            end=[0, 5, 0],
            begin_mask=[False, False, True],
            end_mask=[True, False, False],
            squeeze_mask=[False, False, True],
        ),
        IOS17,
    ),
    (
        "slice_negstride",
        "slice_by_index",
        dict(x=f(5, 6), begin=[4, -1], end=[0, 0], stride=[-1, -2], end_mask=[True, False]),
        IOS17,
    ),
    ("slice_neg", "slice_by_index", dict(x=f(5, 6), begin=[-3, 1], end=[-1, -1]), IOS17),
    ("slice_by_size", "slice_by_size", dict(x=f(5, 6), begin=[1, 2], size=[3, -1]), IOS17),
    ("tile", "tile", dict(x=f(2, 3), reps=[2, 3]), IOS17),
    ("pad_const", "pad", dict(x=X, pad=np.array([1, 0, 2, 1], np.int32), constant_val=0.5), IOS17),
    ("pad_reflect", "pad", dict(x=X, pad=np.array([1, 2], np.int32), mode="reflect"), IOS17),
    (
        "pad_replicate",
        "pad",
        dict(x=X, pad=np.array([1, 1, 2, 0], np.int32), mode="replicate"),
        IOS17,
    ),
    ("reverse", "reverse", dict(x=X, axes=[0, 2]), IOS17),
    ("flatten2d", "flatten2d", dict(x=X, axis=2), IOS17),
    ("shape", "shape", dict(x=X), IOS17),
    ("band_part", "band_part", dict(x=f(4, 5), lower=1, upper=0), IOS17),
    ("cumsum", "cumsum", dict(x=X, axis=1), IOS17),
    ("fill", "fill", dict(shape=np.array([2, 3], np.int32), value=1.5), IOS17),
    ("fill_like", "fill_like", dict(ref_tensor=f(2, 3), value=2.0), IOS17),
    ("range_1d", "range_1d", dict(start=np.int32(2), end=np.int32(11), step=np.int32(3)), IOS17),
    (
        "range_1d_f",
        "range_1d",
        dict(start=np.float32(0.5), end=np.float32(3.0), step=np.float32(0.5)),
        IOS17,
    ),
    ("non_zero", "non_zero", dict(x=np.round(X)), IOS17),
    ("argsort", "argsort", dict(x=X, axis=-1), IOS17),
    ("argsort_asc", "argsort", dict(x=X, axis=1, ascending=True), IOS17),
    ("topk", "topk", dict(x=X, k=2, axis=-1), IOS17),
    ("topk_asc", "topk", dict(x=X, k=2, axis=1, ascending=True), IOS17),
    (
        "gather",
        "gather",
        dict(x=f(5, 3), indices=np.array([[0, 4], [-1, 2]], np.int32), axis=0),
        IOS17,
    ),
    ("gather_ax1", "gather", dict(x=X, indices=np.array([2, 0], np.int32), axis=1), IOS17),
    (
        "gather_batch",
        "gather",
        dict(x=f(2, 4, 3), indices=np.array([[0, 3], [1, 1]], np.int32), axis=1, batch_dims=1),
        IOS17,
    ),
    (
        "gather_along_axis",
        "gather_along_axis",
        dict(x=f(3, 4), indices=np.array([[0, 3], [1, 1], [2, 0]], np.int32), axis=1),
        IOS17,
    ),
    (
        "scatter_along_axis",
        "scatter_along_axis",
        dict(
            data=f(3, 4),
            indices=np.array([[0, 3], [1, 2], [2, 0]], np.int32),
            updates=f(3, 2),
            axis=1,
            mode="update",
        ),
        IOS17,
    ),
    ("select", "select", dict(cond=b(3, 4), a=f(3, 4), b=f(4)), IOS17),
    (
        "slice_update",
        "slice_update",
        dict(
            x=f(4, 5),
            update=f(2, 2),
            begin=np.array([1, 1], np.int32),
            end=np.array([5, 4], np.int32),
            stride=np.array([2, 2], np.int32),
        ),
        IOS18,
    ),
    (
        "sdpa",
        "scaled_dot_product_attention",
        dict(query=f(2, 3, 4), key=f(2, 5, 4), value=f(2, 5, 6)),
        IOS18,
    ),
    (
        "sdpa_mask",
        "scaled_dot_product_attention",
        dict(query=f(2, 3, 4), key=f(2, 5, 4), value=f(2, 5, 6), attn_mask=f(3, 5)),
        IOS18,
    ),
]


def _as(kwargs: dict, fp16: bool) -> dict:
    """Fresh copies (some value_inference mutates its input) on the fp16 grid; float
    scalars typed to match (MIL requires params of the tensor's dtype)."""

    def conv(v):
        if isinstance(v, np.ndarray) and v.dtype == np.float32:
            v16 = v.astype(np.float16)
            return v16 if fp16 else v16.astype(np.float32)
        if isinstance(v, np.ndarray):
            return v.copy()
        if isinstance(v, float):
            return np.float16(v) if fp16 else np.float32(v)
        if isinstance(v, tuple):
            return tuple(conv(e) for e in v)
        return v

    return {k: conv(v) for k, v in kwargs.items()}


def _program(op_type: str, kwargs: dict, opset):
    @mb.program(input_specs=[], opset_version=opset)
    def prog():
        return getattr(mb, op_type)(**kwargs)

    return prog


def _has_float(kwargs) -> bool:
    vals = [e for v in kwargs.values() for e in (v if isinstance(v, tuple) else (v,))]
    return any(isinstance(v, np.ndarray) and v.dtype == np.float32 for v in vals)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_matches_value_inference(case):
    _, op_type, kwargs, opset = case
    prog32 = _program(op_type, _as(kwargs, False), opset)
    outs32 = prog32.functions["main"].outputs
    expected = [v.val for v in outs32]
    assert all(e is not None for e in expected), "coremltools has no value for this case"
    rt = MilRuntime(prog32)
    got = rt.predict({})
    assert [s.name for s in rt.outputs] == [v.name for v in outs32]
    for var, want in zip(outs32, expected):
        g = got[var.name]
        want = np.asarray(want)
        assert g.shape == want.shape
        assert g.dtype.name == rt.outputs[[v.name for v in outs32].index(var.name)].dtype
        if types.is_float(var.dtype):
            np.testing.assert_allclose(g, want, rtol=2e-6, atol=2e-6 * max(1.0, np.abs(want).max()))
        else:
            np.testing.assert_array_equal(g, want.astype(g.dtype))

    if not _has_float(kwargs):
        return
    prog16 = _program(op_type, _as(kwargs, True), opset)
    outs16 = prog16.functions["main"].outputs
    got16 = MilRuntime(prog16).predict({})
    for v16, want in zip(outs16, expected):
        g = got16[v16.name]
        if types.builtin_to_string(v16.dtype) == "fp16":
            fp16_ulp_close(g, want)
        elif op_type in ("topk", "argsort", "reduce_argmax", "reduce_argmin"):
            continue  # indices can legitimately differ on fp16 ties
        else:
            np.testing.assert_array_equal(g, np.asarray(want).astype(g.dtype))
