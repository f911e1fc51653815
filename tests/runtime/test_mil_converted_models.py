"""Torch modules shaped like Parakeet's parts, converted by coremltools, saved, reloaded from
disk and executed by the MIL runtime, against the torch module itself.

Tolerances (scale-relative, max |err| / max |ref|): fp32 programs 1e-4; fp16 programs
1e-2 (fp16 has a 2^-11 relative step and these graphs chain dozens of rounded ops; a log-mel
front end in fp16 is known to sit near 5e-3). Integer outputs must match exactly.
"""

from __future__ import annotations

import coremltools as ct
import numpy as np
import pytest
import torch
from _mil_helpers import rel_err, save_and_load
from _torch_models import Encoder, Joint, Predictor, Preprocessor

from parakeet_coreml.runtime.mil import supported_op_types

FP32_TOL, FP16_TOL = 1e-4, 1e-2
F32, F16 = ct.precision.FLOAT32, ct.precision.FLOAT16
IOS17, IOS18 = ct.target.iOS17, ct.target.iOS18


def _convert(module, example, inputs, outputs, target, precision):
    traced = torch.jit.trace(module, example)
    return ct.convert(
        traced,
        inputs=inputs,
        outputs=[ct.TensorType(name=n) for n in outputs],
        convert_to="mlprogram",
        minimum_deployment_target=target,
        compute_precision=precision,
    )


def _compare(rt, module, example, precision):
    with torch.no_grad():
        refs = module(*example)
    refs = refs if isinstance(refs, tuple) else (refs,)
    feed = {s.name: e.numpy() for s, e in zip(rt.inputs, example)}
    got = rt.predict(feed)
    assert list(got) == [s.name for s in rt.outputs]
    want_float = np.float16 if precision == F16 else np.float32
    for spec, ref in zip(rt.outputs, refs):
        g, r = got[spec.name], ref.numpy()
        assert g.shape == r.shape, spec.name
        if np.issubdtype(r.dtype, np.floating):
            assert g.dtype == want_float, (spec.name, g.dtype)
            tol = FP16_TOL if precision == F16 else FP32_TOL
            assert rel_err(g, r) < tol, (spec.name, rel_err(g, r))
        else:
            np.testing.assert_array_equal(g, r.astype(g.dtype), err_msg=spec.name)
    return got


def _ops(rt) -> set[str]:
    return set(rt.op_counts)


@pytest.mark.parametrize(
    "target,precision", [(IOS17, F32), (IOS18, F16)], ids=["ios17-fp32", "ios18-fp16"]
)
def test_encoder(tmp_path, target, precision):
    torch.manual_seed(0)
    enc = Encoder(layers=1).eval()
    ex = (torch.randn(1, 16, 40), torch.tensor([37], dtype=torch.int32))
    inputs = [
        ct.TensorType("feats", shape=(1, 16, 40)),
        ct.TensorType("length", shape=(1,), dtype=np.int32),
    ]
    ml = _convert(enc, ex, inputs, ["encoded", "encoded_length"], target, precision)
    rt = save_and_load(ml, tmp_path)
    assert [s.name for s in rt.outputs] == ["encoded", "encoded_length"]
    _compare(rt, enc, ex, precision)
    assert {"conv", "linear", "layer_norm", "softmax", "matmul", "pad", "select"} <= _ops(rt)
    assert _ops(rt) - {"const"} <= set(supported_op_types())


def test_encoder_flexible_length(tmp_path):
    """RangeDim input: shapes (and shape arithmetic in the graph) vary per call."""
    torch.manual_seed(1)
    enc = Encoder(layers=1).eval()
    ex = (torch.randn(1, 16, 40), torch.tensor([40], dtype=torch.int32))
    inputs = [
        ct.TensorType("feats", shape=(1, 16, ct.RangeDim(16, 200, default=40))),
        ct.TensorType("length", shape=(1,), dtype=np.int32),
    ]
    ml = _convert(enc, ex, inputs, ["encoded", "encoded_length"], IOS18, F32)
    rt = save_and_load(ml, tmp_path)
    assert rt.inputs[0].shape == (1, 16, -1)
    for t, n in ((40, 40), (64, 50), (23, 23)):
        _compare(rt, enc, (torch.randn(1, 16, t), torch.tensor([n], dtype=torch.int32)), F32)


@pytest.mark.parametrize(
    "target,precision", [(IOS18, F32), (IOS17, F16)], ids=["ios18-fp32", "ios17-fp16"]
)
def test_preprocessor(tmp_path, target, precision):
    torch.manual_seed(2)
    pre = Preprocessor().eval()
    ex = (torch.randn(1, 800), torch.tensor([700], dtype=torch.int32))
    inputs = [
        ct.TensorType("audio", shape=(1, 800)),
        ct.TensorType("audio_length", shape=(1,), dtype=np.int32),
    ]
    ml = _convert(pre, ex, inputs, ["mel", "mel_length"], target, precision)
    rt = save_and_load(ml, tmp_path)
    _compare(rt, pre, ex, precision)
    assert {"conv", "matmul", "log", "sqrt", "concat", "floor_div"} <= _ops(rt)


@pytest.mark.parametrize(
    "target,precision", [(IOS17, F32), (IOS18, F16)], ids=["ios17-fp32", "ios18-fp16"]
)
def test_predictor(tmp_path, target, precision):
    torch.manual_seed(3)
    pred = Predictor().eval()
    ex = (torch.tensor([[3]], dtype=torch.int32), torch.randn(2, 1, 16), torch.randn(2, 1, 16))
    inputs = [
        ct.TensorType("token", shape=(1, 1), dtype=np.int32),
        ct.TensorType("h_in", shape=(2, 1, 16), dtype=np.float32),
        ct.TensorType("c_in", shape=(2, 1, 16), dtype=np.float32),
    ]
    ml = _convert(pred, ex, inputs, ["decoder", "h_out", "c_out"], target, precision)
    rt = save_and_load(ml, tmp_path)
    _compare(rt, pred, ex, precision)
    assert rt.op_counts["lstm"] == 2 and "gather" in _ops(rt)


@pytest.mark.parametrize(
    "target,precision", [(IOS18, F32), (IOS17, F16)], ids=["ios18-fp32", "ios17-fp16"]
)
def test_joint(tmp_path, target, precision):
    torch.manual_seed(4)
    joint = Joint().eval()
    ex = (torch.randn(1, 32, 1), torch.randn(1, 16, 1))
    inputs = [
        ct.TensorType("enc", shape=(1, 32, 1), dtype=np.float32),
        ct.TensorType("pred", shape=(1, 16, 1), dtype=np.float32),
    ]
    names = ["logits", "token", "prob", "duration", "top_v", "top_i", "picked"]
    ml = _convert(joint, ex, inputs, names, target, precision)
    rt = save_and_load(ml, tmp_path)
    got = _compare(rt, joint, ex, precision)
    assert {"reduce_argmax", "topk", "softmax", "gather_along_axis", "reduce_max"} <= _ops(rt)
    # decisions are consistent with the program's own logits
    assert got["token"][0] == np.argmax(got["logits"][0, :21])
