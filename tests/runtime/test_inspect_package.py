"""inspect_package on small packages: I/O, op counts, weight kinds and sizes, warnings."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict

import coremltools as ct
import coremltools.optimize.coreml as cto
import numpy as np
import torch
from _mil_helpers import convert_program
from _torch_models import Predictor
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import types

from parakeet_coreml.inspection import ANE_MAX_DIM, format_report, inspect_package
from parakeet_coreml.runtime import TensorSpec

IOS17, IOS18 = ct.target.iOS17, ct.target.iOS18
R = np.random.default_rng(3)
W1 = R.standard_normal((64, 128)).astype(np.float32)
W2 = R.standard_normal((16, 64)).astype(np.float32)


def _mlp(target, precision=ct.precision.FLOAT16):
    @mb.program(input_specs=[mb.TensorSpec((2, 128))], opset_version=target)
    def prog(x):
        h = mb.relu(x=mb.linear(x=x, weight=W1, bias=np.ones(64, np.float32)))
        h = mb.add(x=h, y=np.float32(1.0))
        return mb.add(x=mb.linear(x=h, weight=W2), y=np.float32(2.0), name="y")

    return convert_program(prog, target, precision)


def test_io_metadata_and_op_counts(tmp_path):
    model = _mlp(IOS17)
    model.author = "parakeet-coreml tests"
    model.short_description = "two-layer MLP"
    model.user_defined_metadata["stage"] = "unit"
    path = tmp_path / "mlp.mlpackage"
    model.save(str(path))
    rep = inspect_package(path)
    assert rep.spec_version == 8 and rep.deployment_target.startswith("iOS17")
    assert rep.inputs == [TensorSpec("x", (2, 128), "float32")]
    assert rep.outputs == [TensorSpec("y", (2, 16), "float32")]
    assert rep.metadata["author"] == "parakeet-coreml tests"
    assert rep.metadata["description"] == "two-layer MLP" and rep.metadata["stage"] == "unit"
    # op counts agree with the converter's own in-memory program
    want = Counter(
        (op.op_type, types.builtin_to_string(op.outputs[0].dtype))
        for op in model._mil_program.functions["main"].operations
        if op.op_type != "const"
    )
    assert {(o.op, o.dtype): o.count for o in rep.ops} == dict(want)
    assert rep.op_count("linear") == 2 and rep.op_count("linear", "fp16") == 2
    assert rep.op_count("linear", "fp32") == 0
    json.dumps(asdict(rep))  # the CLI prints reports as JSON
    dense = rep.weights["dense fp16"]
    assert dense.params == W1.size + W2.size + 64 + 16  # both weights and both biases
    assert dense.bytes == 2 * dense.params
    assert rep.warnings == []


def test_compression_kinds_and_sizes(tmp_path):
    n_w = W1.size + W2.size
    cases = {
        "int8": (
            IOS17,
            lambda m: cto.linear_quantize_weights(
                m,
                cto.OptimizationConfig(
                    global_config=cto.OpLinearQuantizerConfig(dtype="int8", weight_threshold=512)
                ),
            ),
            "affine int8",
            1.0,
        ),
        "lut4": (
            IOS17,
            lambda m: cto.palettize_weights(
                m,
                cto.OptimizationConfig(
                    global_config=cto.OpPalettizerConfig(
                        mode="uniform", nbits=4, weight_threshold=512
                    )
                ),
            ),
            "lut 4-bit",
            0.5,
        ),
        "sparse": (
            IOS18,
            lambda m: cto.prune_weights(
                m,
                cto.OptimizationConfig(
                    global_config=cto.OpMagnitudePrunerConfig(
                        target_sparsity=0.75, weight_threshold=512
                    )
                ),
            ),
            "sparse",
            0.25 * 2 + 1 / 8,
        ),
        "int4-block": (
            IOS18,
            lambda m: cto.linear_quantize_weights(
                m,
                cto.OptimizationConfig(
                    global_config=cto.OpLinearQuantizerConfig(
                        dtype="int4", granularity="per_block", block_size=32, weight_threshold=512
                    )
                ),
            ),
            "blockwise int4 (block 32)",
            0.5,
        ),
    }
    for name, (target, compress, kind, bytes_per_param) in cases.items():
        path = tmp_path / f"{name}.mlpackage"
        compress(_mlp(target)).save(str(path))
        rep = inspect_package(path)
        g = rep.weights[kind]
        assert (g.tensors, g.params) == (2, n_w), name
        # stored size: the payload at the expected bits per weight, plus small scales/palettes
        assert 0.99 * bytes_per_param * n_w <= g.bytes < bytes_per_param * n_w * 1.15 + 256, (
            name,
            g.bytes,
        )
        assert rep.weights["dense fp16"].params == 64 + 16  # biases stay dense
        per_block = any("per-block" in w for w in rep.warnings)
        assert per_block == (name == "int4-block"), (name, rep.warnings)
        assert kind in format_report(rep)


def test_lstm_and_large_dimension_warnings(tmp_path):
    torch.manual_seed(0)
    pred = Predictor().eval()
    ex = (torch.tensor([[1]], dtype=torch.int32), torch.zeros(2, 1, 16), torch.zeros(2, 1, 16))
    ml = ct.convert(
        torch.jit.trace(pred, ex),
        inputs=[
            ct.TensorType("token", shape=(1, 1), dtype=np.int32),
            ct.TensorType("h_in", shape=(2, 1, 16)),
            ct.TensorType("c_in", shape=(2, 1, 16)),
        ],
        outputs=[ct.TensorType(name=n) for n in ("decoder", "h_out", "c_out")],
        convert_to="mlprogram",
        minimum_deployment_target=IOS17,
    )
    ml.save(str(tmp_path / "pred.mlpackage"))
    rep = inspect_package(tmp_path / "pred.mlpackage")
    assert rep.op_count("lstm") == 2
    assert any("lstm" in w and "Neural Engine" in w for w in rep.warnings)
    assert not any(str(ANE_MAX_DIM) in w for w in rep.warnings)

    n = 240000

    @mb.program(input_specs=[mb.TensorSpec((1, n))], opset_version=IOS17)
    def wave(x):
        return mb.reduce_mean(x=mb.reshape(x=x, shape=[1, n // 160, 160]), axes=[-1], name="frames")

    convert_program(wave, IOS17).save(str(tmp_path / "wave.mlpackage"))
    rep = inspect_package(tmp_path / "wave.mlpackage")
    (w,) = [w for w in rep.warnings if str(ANE_MAX_DIM) in w]
    assert "'x'" in w and str(n) in w
    assert "lstm" not in " ".join(rep.warnings)
    text = format_report(rep)
    assert "x" in text and "float32" in text and str(n) in text and "reduce_mean" in text


def test_neural_network_model_is_described_without_weights_checks(tmp_path):
    @mb.program(input_specs=[mb.TensorSpec((2, 3))], opset_version=ct.target.iOS15)
    def prog(x):
        return mb.relu(x=mb.add(x=x, y=np.float32(1.0)), name="y")

    path = tmp_path / "nn.mlmodel"
    ct.convert(prog, convert_to="neuralnetwork").save(str(path))
    rep = inspect_package(path)
    assert rep.inputs == [TensorSpec("x", (2, 3), "float32")]
    assert rep.op_count("add") == 1 and rep.op_count("activation") == 1
    assert rep.weights == {} and "not an ML program" in rep.warnings[0]
    assert "not an ML program" in format_report(rep)
