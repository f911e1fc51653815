"""Compressed-weight packages (coremltools.optimize.coreml) run with weights decompressed at
load; results must equal the same program with coremltools' own ``decompress_weights``."""

from __future__ import annotations

import coremltools as ct
import coremltools.optimize.coreml as cto
import numpy as np
import pytest
from _mil_helpers import convert_program, rel_err
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil.ops.defs.iOS18.compression import constexpr_lut_to_dense

from parakeet_coreml.runtime.mil import MilRuntime
from parakeet_coreml.runtime.mil.constexpr import lut_to_dense

IOS17, IOS18 = ct.target.iOS17, ct.target.iOS18
R = np.random.default_rng(0)
W_LIN = R.standard_normal((64, 128)).astype(np.float32)
W_CONV = R.standard_normal((32, 64, 3)).astype(np.float32)
X = R.standard_normal((1, 4, 128)).astype(np.float32)


def _base(target, precision=ct.precision.FLOAT16):
    @mb.program(input_specs=[mb.TensorSpec((1, 4, 128))], opset_version=target)
    def prog(x):
        h = mb.transpose(x=mb.linear(x=x, weight=W_LIN), perm=[0, 2, 1])
        return mb.conv(x=h, weight=W_CONV, pad_type="same", name="y")

    return convert_program(prog, target, precision)


def _q(**kw):
    return cto.OptimizationConfig(
        global_config=cto.OpLinearQuantizerConfig(weight_threshold=512, **kw)
    )


def _p(**kw):
    return cto.OptimizationConfig(global_config=cto.OpPalettizerConfig(weight_threshold=512, **kw))


def _s(**kw):
    return cto.OptimizationConfig(
        global_config=cto.OpMagnitudePrunerConfig(weight_threshold=512, target_sparsity=0.5, **kw)
    )


def _quant(cfg):
    return lambda m: cto.linear_quantize_weights(m, cfg)


def _pal(cfg):
    return lambda m: cto.palettize_weights(m, cfg)


def _prune(cfg):
    return lambda m: cto.prune_weights(m, cfg)


def _joint(first, second_fn, cfg):
    return lambda m: second_fn(first(m), cfg, joint_compression=True)


CASES = {
    "ios17-int8-per-channel": (
        IOS17,
        _quant(_q(mode="linear", dtype="int8")),
        {"constexpr_affine_dequantize"},
    ),
    "ios17-uint8-per-tensor": (
        IOS17,
        _quant(_q(dtype="uint8", granularity="per_tensor")),
        {"constexpr_affine_dequantize"},
    ),
    "ios17-lut4": (IOS17, _pal(_p(mode="uniform", nbits=4)), {"constexpr_lut_to_dense"}),
    "ios17-sparse": (IOS17, _prune(_s()), {"constexpr_sparse_to_dense"}),
    "ios18-int8": (
        IOS18,
        _quant(_q(mode="linear", dtype="int8")),
        {"constexpr_blockwise_shift_scale"},
    ),
    "ios18-int4-block16": (
        IOS18,
        _quant(_q(dtype="int4", granularity="per_block", block_size=16)),
        {"constexpr_blockwise_shift_scale"},
    ),
    "ios18-lut3-grouped": (
        IOS18,
        _pal(_p(mode="uniform", nbits=3, granularity="per_grouped_channel", group_size=8)),
        {"constexpr_lut_to_dense"},
    ),
    "ios18-lut4-channel-scale": (
        IOS18,
        _pal(_p(mode="uniform", nbits=4, enable_per_channel_scale=True)),
        {"constexpr_lut_to_dense", "constexpr_blockwise_shift_scale"},
    ),
    "ios18-lut4-vector2": (
        IOS18,
        _pal(_p(mode="kmeans", nbits=4, cluster_dim=2)),
        {"constexpr_lut_to_dense"},
    ),
    "ios18-sparse": (IOS18, _prune(_s()), {"constexpr_sparse_to_dense"}),
    "ios18-sparse+int8": (
        IOS18,
        _joint(_prune(_s()), cto.linear_quantize_weights, _q(dtype="int8")),
        {"constexpr_sparse_blockwise_shift_scale", "constexpr_sparse_to_dense"},
    ),
    "ios18-sparse+lut4": (
        IOS18,
        _joint(_prune(_s()), cto.palettize_weights, _p(mode="uniform", nbits=4)),
        {"constexpr_lut_to_sparse", "constexpr_sparse_to_dense"},
    ),
    "ios18-lut4+int8": (
        IOS18,
        _joint(
            _pal(_p(mode="uniform", nbits=4)),
            cto.linear_quantize_weights,
            _q(dtype="int8", granularity="per_tensor"),
        ),
        {"constexpr_lut_to_dense", "constexpr_blockwise_shift_scale"},
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_compressed_package_matches_decompressed(tmp_path, name):
    target, compress, kinds = CASES[name]
    model = compress(_base(target))
    path, dense_path = tmp_path / "c.mlpackage", tmp_path / "d.mlpackage"
    model.save(str(path))
    cto.decompress_weights(model).save(str(dense_path))
    rt, ref = MilRuntime(path), MilRuntime(dense_path)
    assert set(rt.compressed_ops) == kinds
    assert ref.compressed_ops == {}
    got, want = rt.predict({"x": X})["y"], ref.predict({"x": X})["y"]
    np.testing.assert_array_equal(got, want)  # same dense weights -> same numbers
    # and compression really changed the weights, but not wildly (sanity of the reference)
    assert 0 < rel_err(got, _uncompressed(target)) < 0.5


_FULL: dict = {}


def _uncompressed(target) -> np.ndarray:
    if target not in _FULL:
        _FULL[target] = MilRuntime(_base(target)._mil_program).predict({"x": X})["y"]
    return _FULL[target]


def test_fp32_program_with_int8_weights(tmp_path):
    model = cto.linear_quantize_weights(_base(IOS17, ct.precision.FLOAT32), _q())
    model.save(str(tmp_path / "q.mlpackage"))
    rt = MilRuntime(tmp_path / "q.mlpackage")
    assert rt.compressed_ops == {"constexpr_affine_dequantize": 2}
    y = rt.predict({"x": X})["y"]
    assert y.dtype == np.float32
    h = X[0] @ W_LIN.T  # [4, 64] -> conv over length 4 with "same" padding
    hp = np.pad(h.T, [(0, 0), (1, 1)])
    want = np.stack([np.einsum("oik,ik->o", W_CONV, hp[:, t : t + 3]) for t in range(4)], -1)
    assert rel_err(y[0], want) < 2e-2  # int8 weights: ~1% error


@pytest.mark.parametrize(
    "shape,lut_shape,vector_axis",
    [
        ((6, 8), (1, 1, 16, 1), None),  # per-tensor 4-bit
        ((6, 8), (3, 1, 8, 1), None),  # grouped along axis 0 (blocks of 2 rows)
        ((6, 8, 2), (2, 4, 1, 4, 1), None),  # blocks along two axes
        ((6, 4), (1, 1, 16, 2), 1),  # vector palettes along axis 1
        ((3, 8), (3, 1, 4, 2), 0),  # vector along axis 0 with per-row palettes
    ],
)
def test_lut_to_dense_matches_coremltools(shape, lut_shape, vector_axis):
    """Our memory-light LUT gather equals coremltools' decompress (which repeats the LUT)."""
    idx = R.integers(0, lut_shape[-2], size=shape).astype(np.uint8)
    lut = R.standard_normal(lut_shape).astype(np.float16)
    ours = lut_to_dense(idx, lut, vector_axis)
    theirs = constexpr_lut_to_dense.decompress(idx, lut, vector_axis)
    assert ours.dtype == theirs.dtype
    np.testing.assert_array_equal(ours, theirs)


def test_constexpr_cast_and_materialized_value(tmp_path):
    """fp16-stored weights widened at load; equals coremltools' materialized value."""
    w16 = R.standard_normal((4, 3)).astype(np.float16)

    @mb.program(input_specs=[mb.TensorSpec((2, 3))], opset_version=IOS17)
    def prog(x):
        w = mb.constexpr_cast(source_val=w16, output_dtype="fp32")
        return mb.linear(x=x, weight=w, name="y")

    (cast_op,) = [op for op in prog.functions["main"].operations if op.op_type == "constexpr_cast"]
    dense = cast_op.materialized_val_inference()
    path = tmp_path / "cast.mlpackage"
    convert_program(prog, IOS17, ct.precision.FLOAT32).save(str(path))
    rt = MilRuntime(path)
    assert rt.compressed_ops == {"constexpr_cast": 1}
    x = R.standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_allclose(rt.predict({"x": x})["y"], x @ dense.T, rtol=1e-6, atol=1e-6)
