"""convert: packages match the contract, metadata matches the packages, outputs are never half-written."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest

from parakeet_coreml.contract import COMPONENTS, build_contract
from parakeet_coreml.errors import ConversionError, OutputError
from parakeet_coreml.export import convert as convert_mod
from parakeet_coreml.export.convert import LAYOUTS, convert
from parakeet_coreml.export.package import spec_io


def _spec(path: Path):
    import coremltools as ct

    return ct.models.MLModel(str(path), skip_model_load=True).get_spec()


def _mil_ops(path: Path) -> list:
    """Load the saved package back into a MIL program (works on Linux)."""
    import coremltools as ct
    from coremltools.converters.mil.frontend.milproto.load import load

    m = ct.models.MLModel(str(path), skip_model_load=True)
    spec = m.get_spec()
    prog = load(model_spec=spec, specification_version=spec.specificationVersion, file_weights_dir=m.weights_dir)
    ops = []

    def walk(block) -> None:
        for op in block.operations:
            ops.append(op)
            for b in op.blocks:
                walk(b)

    walk(prog.functions["main"])
    return ops


def _compute_dtypes(path: Path) -> Counter:
    from coremltools.converters.mil.mil import types

    heavy = {"conv", "linear", "matmul", "lstm", "softmax", "layer_norm", "batch_norm"}
    return Counter(
        types.builtin_to_string(op.outputs[0].dtype) for op in _mil_ops(path) if op.op_type in heavy
    )


@pytest.mark.parametrize("export", ["tiny_export_fp32", "tiny_export_fp16"])
def test_every_package_has_exactly_the_contract_io(export: str, request: pytest.FixtureRequest, tiny_ckpt) -> None:
    out: Path = request.getfixturevalue(export)
    contract = build_contract(tiny_ckpt.config)
    for name in COMPONENTS:
        inputs, outputs = spec_io(_spec(out / LAYOUTS["default"][name]))
        assert inputs == [t.to_dict() for t in contract[name].inputs], name
        assert outputs == [t.to_dict() for t in contract[name].outputs], name


def test_fp16_packages_compute_in_fp16_and_fp32_in_fp32(tiny_export_fp16: Path, tiny_export_fp32: Path) -> None:
    for name in COMPONENTS:
        f32 = _compute_dtypes(tiny_export_fp32 / f"parakeet_{name}.mlpackage")
        f16 = _compute_dtypes(tiny_export_fp16 / f"parakeet_{name}.mlpackage")
        assert f32 and set(f32) == {"fp32"}, (name, f32)
        if name == "preprocessor":  # power spectra overflow fp16: fp32 unless asked
            assert set(f16) == {"fp32"}, f16
        elif name == "mel_encoder":  # the same front end in fp32, the encoder in fp16
            front = _compute_dtypes(tiny_export_fp16 / "parakeet_preprocessor.mlpackage")
            assert f16["fp16"] > 0 and f16["fp32"] == front["fp32"], (f16, front)
        else:
            assert f16["fp16"] > 0 and "fp32" not in f16, (name, f16)


def test_metadata_agrees_with_packages_and_source(tiny_export_fp16: Path, tiny_nemo: Path, tiny_ckpt) -> None:
    meta = json.loads((tiny_export_fp16 / "metadata.json").read_text())
    assert meta["source"]["sha256"] == hashlib.sha256(tiny_nemo.read_bytes()).hexdigest()
    assert meta["model"]["window_samples"] == 240000
    assert meta["model"]["blank_id"] == tiny_ckpt.config.vocab_size
    assert meta["model"]["durations"] == [0, 1, 2, 3, 4]
    assert set(meta["versions"]) >= {"parakeet_coreml", "coremltools", "torch"}
    assert set(meta["components"]) == set(COMPONENTS)
    for name, entry in meta["components"].items():
        spec = _spec(tiny_export_fp16 / entry["file"])
        inputs, outputs = spec_io(spec)
        assert entry["inputs"] == inputs and entry["outputs"] == outputs
        assert entry["target"] == "ios18" and spec.specificationVersion == 9  # iOS18 = spec 9
        assert entry["precision"] == ("fp32" if name == "preprocessor" else "fp16")
        assert spec.description.metadata.author.startswith("parakeet-coreml")
        assert name in spec.description.metadata.shortDescription


def test_vocab_json_maps_ids_to_pieces(tiny_export_fp32: Path, tiny_ckpt) -> None:
    vocab = json.loads((tiny_export_fp32 / "parakeet_vocab.json").read_text())
    assert len(vocab) == tiny_ckpt.config.vocab_size
    assert [vocab[str(i)] for i in range(len(vocab))] == tiny_ckpt.tokenizer.pieces


def test_packages_load_back_into_mil(tiny_export_fp32: Path) -> None:
    for name in COMPONENTS:
        ops = _mil_ops(tiny_export_fp32 / f"parakeet_{name}.mlpackage")
        assert len(ops) > 3, name


def test_fluidaudio_layout_has_fluidaudios_files_and_feature_names(tiny_ckpt, tmp_path: Path) -> None:
    out = tmp_path / "fluid"
    convert(tiny_ckpt, out, layout="fluidaudio")
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted(
        ["Preprocessor.mlpackage", "Encoder.mlpackage", "Decoder.mlpackage", "JointDecisionv3.mlpackage",
         "parakeet_vocab.json", "parakeet_tokenizer.model", "metadata.json"]
    )
    # Feature names FluidAudio reads (shared/reference/anchors.md), written out independently.
    expected = {
        "Preprocessor.mlpackage": (["audio_signal", "audio_length"], ["mel", "mel_length"]),
        "Encoder.mlpackage": (["mel", "mel_length"], ["encoder", "encoder_length"]),
        "Decoder.mlpackage": (["targets", "target_length", "h_in", "c_in"], ["decoder", "h_out", "c_out"]),
        "JointDecisionv3.mlpackage": (
            ["encoder_step", "decoder_step"],
            ["token_id", "token_prob", "duration", "top_k_ids", "top_k_logits"],
        ),
    }
    for file, (ins, outs) in expected.items():
        inputs, outputs = spec_io(_spec(out / file))
        assert [t["name"] for t in inputs] == ins and [t["name"] for t in outputs] == outs
    enc = spec_io(_spec(out / "Encoder.mlpackage"))[1][0]
    assert enc["dtype"] == "float32" and enc["shape"][:2] == [1, tiny_ckpt.config.encoder.d_model]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_existing_output_is_refused_without_overwrite(tiny_ckpt, tmp_path: Path) -> None:
    out = tmp_path / "existing"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(OutputError, match="existing: already exists .*--overwrite"):
        convert(tiny_ckpt, out, components=["decoder"])
    assert _snapshot(out) == {"keep.txt": b"mine"}


def test_failure_part_way_names_component_and_keeps_previous_output(
    tiny_ckpt, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "pkgs"
    convert(tiny_ckpt, out, components=["decoder", "joint"])
    before = _snapshot(out)
    real = convert_mod.build_wrapper

    def failing(name, model, contract):  # fault injection into our own code, not a mock of coremltools
        if name == "joint":
            raise RuntimeError("simulated failure")
        return real(name, model, contract)

    monkeypatch.setattr(convert_mod, "build_wrapper", failing)
    with pytest.raises(ConversionError, match=r"^joint: conversion failed \(RuntimeError: simulated failure\); .*left as it was"):
        convert(tiny_ckpt, out, components=["decoder", "joint"], overwrite=True, precision="fp32")
    assert _snapshot(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["pkgs"]  # no staging folder left behind


def test_overwrite_of_some_components_keeps_the_others(tiny_ckpt, tmp_path: Path) -> None:
    out = tmp_path / "pkgs"
    convert(tiny_ckpt, out, components=["decoder", "joint"])
    joint_before = _snapshot(out / "parakeet_joint.mlpackage")
    result = convert(tiny_ckpt, out, components=["decoder"], overwrite=True, precision="fp32")
    assert result.kept == ["joint"]
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["components"]["decoder"]["precision"] == "fp32"
    assert meta["components"]["joint"]["precision"] == "fp16"
    assert _snapshot(out / "parakeet_joint.mlpackage") == joint_before


def test_precision_overrides_and_bad_options(tiny_ckpt, tmp_path: Path) -> None:
    precisions = convert_mod.resolve_precisions(list(COMPONENTS), "fp16", {"encoder": "fp32"})
    assert precisions["preprocessor"] == "fp32" and precisions["encoder"] == "fp32"
    assert precisions["decoder"] == "fp16"
    assert convert_mod.resolve_precisions(["preprocessor"], "fp16", {"preprocessor": "fp16"}) == {
        "preprocessor": "fp16"
    }
    with pytest.raises(ConversionError, match="not part of the fluidaudio layout"):
        convert(tiny_ckpt, tmp_path / "x", components=["joint"], layout="fluidaudio")
    with pytest.raises(ConversionError, match="unknown component 'encodr'"):
        convert(tiny_ckpt, tmp_path / "x", precision_overrides={"encodr": "fp32"})
    assert not (tmp_path / "x").exists()


def test_fp16_mel_encoder_survives_full_scale_high_frequencies(tiny_export_fp16: Path, tiny_ckpt) -> None:
    """A full-scale square wave at Nyquist: after pre-emphasis its power spectrum passes fp16's
    65504, so an all-fp16 mel_encoder returns NaN; ours keeps the front end in fp32 and stays
    within the fp16 tolerance of the reference."""
    import numpy as np

    from parakeet_coreml.model import ParakeetModel
    from parakeet_coreml.runtime import MilRuntime
    from parakeet_coreml.runtime.torch import TorchRuntime
    from parakeet_coreml.validate.metrics import diff
    from parakeet_coreml.validate.tolerances import float_tolerance

    contract = build_contract(tiny_ckpt.config)
    n = contract.window_samples
    audio = np.where(np.arange(n) % 2 == 0, 1.0, -1.0).astype(np.float32)[None]
    inputs = {"audio_signal": audio, "audio_length": np.array([n], np.int32)}
    ref = TorchRuntime(ParakeetModel.from_checkpoint(tiny_ckpt), contract, "mel_encoder").predict(inputs)["encoder"]
    got = MilRuntime(tiny_export_fp16 / "parakeet_mel_encoder.mlpackage").predict(inputs)["encoder"]
    assert np.isfinite(got).all()
    d = diff(ref, got)
    assert d.max_abs <= float_tolerance("mel_encoder", "fp16").limit(float(np.abs(ref).max())), d
