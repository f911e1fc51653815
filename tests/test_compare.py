"""The compare gate on real exported packages, run through the portable MIL runtime.

The packages are the tiny model's fp32 and fp16 exports (``core_fixtures``); the reference is
the toolkit's torch model, whose agreement with NeMo is proven in ``test_nemo_parity.py``.
A gate that cannot fail proves nothing, so one test perturbs a weight inside a saved package
(load the MIL program, scale its largest constant, convert and save it) and checks the gate
names that component and exits non-zero.
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from parakeet_coreml.cli import app
from parakeet_coreml.contract import COMPONENTS
from parakeet_coreml.validate.compare import compare
from parakeet_coreml.validate.tolerances import MAX_WER

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EXPECTED_PLOTS = {
    "mel_composite.png",
    "encoder_time_l2.png",
    "mel_encoder_time_l2.png",
    "decoder_steps_l2.png",
    "joint_topk.png",
    "joint_time_l2.png",
    "joint_decision_token_agree.png",
    "joint_decision_prob.png",
    "latency_summary.png",
    "latency_speedup.png",
    "latency_fused_vs_separate.png",
}


def _copy(export: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "packages"
    shutil.copytree(export, dst)
    return dst


@pytest.fixture(scope="module")
def fp32_result(tiny_export_fp32: Path, tiny_ckpt, tmp_path_factory: pytest.TempPathFactory):
    model_dir = _copy(tiny_export_fp32, tmp_path_factory.mktemp("cmp32"))
    plots = model_dir.parent / "plots"
    return compare(model_dir, tiny_ckpt, runtime="mil", runs=2, warmup=0, symbol_steps=8, plots_dir=plots), plots


def test_fp32_export_passes_the_gate(fp32_result) -> None:
    result, _ = fp32_result
    assert result.runtime == "mil"
    assert result.passed, [f.line() for f in result.failures]
    assert set(result.components) == set(COMPONENTS)
    for name, report in result.components.items():
        assert report.match, name
        assert report.precision == "fp32"
        for output, entry in report.outputs.items():
            # fp32 of the same graph: within 1e-4 of the output's scale. The log-mel is the
            # exception (its table entry says why): log() of near-silent bins amplifies the
            # rounding of a different FFT, so it is held to the table only.
            if "max_abs" in entry and name != "preprocessor":
                assert entry["max_abs"] <= 1e-4 * max(entry["scale"], 1.0) + 1e-6, (name, output, entry)
    e2e = result.end_to_end
    assert e2e["tokens_identical"] and e2e["package_tokens"] == e2e["reference_tokens"] > 0
    assert e2e["wer"]["wer"] == 0.0
    # latency: reference and package timed, labelled by runtime, RTF for the window components
    lat = result.components["encoder"].latency
    assert set(lat) == {"reference_torch", "package_mil"}
    assert lat["package_mil"]["runs"] == 2 and lat["package_mil"]["median_ms"] > 0
    assert lat["reference_torch"]["rtf"] > 0


def test_fp16_export_passes_with_fp16_tolerances(tiny_export_fp16: Path, tiny_ckpt, tmp_path: Path) -> None:
    model_dir = _copy(tiny_export_fp16, tmp_path)
    result = compare(model_dir, tiny_ckpt, runtime="mil", runs=1, warmup=0, symbol_steps=8, plots_dir=None)
    assert result.passed, [f.line() for f in result.failures]
    assert result.components["encoder"].precision == "fp16"
    assert result.components["preprocessor"].precision == "fp32"
    enc = result.components["encoder"].outputs["encoder"]
    # fp16 really computed in fp16: the error is far above fp32 rounding, yet within the table
    assert 1e-5 * enc["scale"] < enc["max_abs"] <= enc["limit_max_abs"]
    e2e = result.end_to_end
    assert e2e["precision"] == "fp16" and e2e["wer"]["wer"] <= MAX_WER["fp16"]


def test_every_plot_is_a_valid_non_empty_png(fp32_result) -> None:
    result, plots = fp32_result
    names = {p.name for p in result.plots}
    assert names == EXPECTED_PLOTS
    assert {p.name for p in plots.glob("*.png")} == EXPECTED_PLOTS  # no temporary leftovers
    import matplotlib.image as mpimg

    for path in result.plots:
        data = path.read_bytes()
        assert data[:8] == PNG_SIGNATURE, path
        width, height = struct.unpack(">II", data[16:24])
        assert width >= 200 and height >= 200, path
        pixels = mpimg.imread(path)
        assert pixels.shape[:2] == (height, width)
        assert float(np.ptp(pixels[..., :3])) > 0.1, f"{path.name} is blank"


def test_validation_is_merged_into_metadata_keeping_other_blocks(
    tiny_export_fp32: Path, tiny_ckpt, tmp_path: Path
) -> None:
    model_dir = _copy(tiny_export_fp32, tmp_path)
    meta_path = model_dir / "metadata.json"
    before = json.loads(meta_path.read_text())
    before["release_notes"] = {"kept": True}
    meta_path.write_text(json.dumps(before))
    compare(model_dir, tiny_ckpt, runtime="mil", runs=1, warmup=0, symbol_steps=4, plots_dir=None)
    after = json.loads(meta_path.read_text())
    assert {k: v for k, v in after.items() if k != "validation"} == before
    v = after["validation"]
    assert v["passed"] is True and v["runtime"] == "mil" and v["failures"] == []
    assert set(v["components"]) == set(COMPONENTS)
    assert v["end_to_end"]["tokens_identical"] is True
    report = json.loads((model_dir / "compare_report.json").read_text())
    assert report["passed"] is True and "not device numbers" in report["runtime_note"]
    assert "| encoder" in (model_dir / "compare_report.md").read_text()
    assert not [p for p in model_dir.iterdir() if p.name.startswith(".")]  # no temp files left


def _perturb_package(package: Path, factor: float = 1.5) -> str:
    """Scale the largest weight of a saved package's MIL program and save it in place.

    Returns the name of the constant that was changed.
    """
    import coremltools as ct
    from coremltools.converters.mil.mil import Builder as mb

    from parakeet_coreml.runtime.mil.loader import load_package

    program, spec = load_package(package)
    consts = [
        op
        for fn in program.functions.values()
        for op in fn.operations
        if op.op_type == "const" and op.outputs[0].val is not None and np.asarray(op.outputs[0].val).size > 1
    ]
    big = max(consts, key=lambda op: np.asarray(op.outputs[0].val).size)
    weight = np.asarray(big.outputs[0].val)
    block = big.enclosing_block
    with block:
        new = mb.const(val=(weight * factor).astype(weight.dtype), before_op=big, name=f"{big.name}_perturbed")
        block.replace_uses_of_var_after_op(anchor_op=big, old_var=big.outputs[0], new_var=new)
        block.remove_ops([big])
    model = ct.convert(
        program,
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS17,
        compute_precision=ct.precision.FLOAT32,
    )
    model.user_defined_metadata.update(dict(spec.description.metadata.userDefined))
    shutil.rmtree(package)
    model.save(str(package))
    return big.name


def test_perturbed_encoder_fails_the_gate_naming_it(tiny_export_fp32: Path, tiny_nemo: Path, tmp_path: Path) -> None:
    model_dir = _copy(tiny_export_fp32, tmp_path)
    changed = _perturb_package(model_dir / "parakeet_encoder.mlpackage")
    assert changed  # a real weight was edited
    result = CliRunner().invoke(
        app,
        [
            "compare", "--model-dir", str(model_dir), "--nemo-path", str(tiny_nemo), "--runtime", "mil",
            "--runs", "1", "--warmup", "0", "--symbol-steps", "4", "--plots-dir", str(tmp_path / "plots"),
        ],
    )
    assert result.exit_code == 1, result.output
    fail_lines = [line for line in result.output.splitlines() if line.startswith("FAIL ")]
    assert fail_lines, result.output
    assert any(line.startswith("FAIL encoder: encoder max_abs") and "tolerance" in line for line in fail_lines)
    # only the edited package (and what consumes its output end to end) is blamed
    blamed = {line[5:].split(":")[0] for line in fail_lines}
    assert blamed <= {"encoder", "end_to_end"}, fail_lines
    meta = json.loads((model_dir / "metadata.json").read_text())
    assert meta["validation"]["passed"] is False
    assert meta["validation"]["components"]["encoder"]["match"] is False
    assert meta["validation"]["components"]["mel_encoder"]["match"] is True


def test_packages_from_another_checkpoint_are_refused(tiny_export_fp32: Path, tmp_path: Path) -> None:
    from parakeet_coreml.synthetic import make_checkpoint

    other = make_checkpoint(tmp_path / "other.nemo", "tiny", seed=1)
    result = CliRunner().invoke(
        app, ["compare", "--model-dir", str(tiny_export_fp32), "--nemo-path", str(other), "--runtime", "mil"]
    )
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "not from" in lines[0] and str(other) in lines[0], result.output
