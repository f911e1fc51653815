"""The command line: one clear error line per failure, real console scripts and entry files.

Error paths run in-process through Typer's ``CliRunner`` (any exception other than the exit
is a failure: that is what a traceback would be); a few run as real processes, to prove what a
user's terminal shows, and the console scripts / top-level files run as real processes too.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from parakeet_coreml.cli import app

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MODEL_ID = "nvidia/parakeet-tdt-0.6b-v3"


def run_cli(*args: str | Path):
    return CliRunner().invoke(app, [str(a) for a in args])


def assert_one_error_line(result, *fragments: str) -> str:
    """Non-zero exit, nothing on stdout, exactly one ``error:`` line naming ``fragments``."""
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"unexpected {type(result.exception).__name__}: {result.exception}"
    )
    assert result.exit_code != 0
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("error: ") and "Traceback" not in line
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    return line


def process(*args: str | Path, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    """A real process from the repository root; offline and with a wide, plain terminal."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200", "NO_COLOR": "1", **(env or {})}
    return subprocess.run(
        [str(a) for a in args], cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout,
        check=False,
    )


def write_wav(path: Path, samples: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    sf.write(path, (0.1 * rng.standard_normal(samples)).astype(np.float32), 16000, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory, tiny_nemo: Path, tiny_ckpt) -> dict[str, Path]:
    """Broken inputs of every kind, next to a good clip."""
    d = tmp_path_factory.mktemp("bad_inputs")
    (d / "garbage.wav").write_bytes(np.random.default_rng(0).bytes(4000))
    write_wav(d / "empty.wav", 0)
    # NeMo needs two valid mel frames (valid frames = samples // hop): one sample fewer fails.
    hop = tiny_ckpt.config.preprocessor.hop_length
    write_wav(d / "short.wav", 2 * hop - 1)
    write_wav(d / "shortest.wav", 2 * hop)
    write_wav(d / "good.wav", 16000)
    data = tiny_nemo.read_bytes()
    (d / "half.nemo").write_bytes(data[: len(data) // 2])
    (d / "notatar.nemo").write_bytes(b"this is not a tar archive\n" * 200)
    with tarfile.open(tiny_nemo) as src, tarfile.open(d / "badyaml.nemo", "w:") as dst:
        for m in src.getmembers():
            payload = src.extractfile(m).read()
            if m.name.endswith("model_config.yaml"):
                payload = b"encoder: [unclosed\n  - : {\n"
            info = tarfile.TarInfo(m.name)
            info.size = len(payload)
            dst.addfile(info, io.BytesIO(payload))
    return {p.stem: p for p in d.iterdir()}


# --------------------------------------------------------------------------------------
# Error paths (in-process)
# --------------------------------------------------------------------------------------


def test_missing_audio(bad, tiny_nemo: Path) -> None:
    missing = bad["good"].with_name("missing.wav")
    assert_one_error_line(run_cli("transcribe", missing, "--nemo-path", tiny_nemo), str(missing), "no such file")


def test_unreadable_audio(bad, tiny_nemo: Path) -> None:
    assert_one_error_line(
        run_cli("transcribe", bad["garbage"], "--nemo-path", tiny_nemo), str(bad["garbage"]), "cannot read audio"
    )


def test_empty_audio(bad, tiny_nemo: Path) -> None:
    assert_one_error_line(
        run_cli("transcribe", bad["empty"], "--nemo-path", tiny_nemo), str(bad["empty"]), "empty", "0 samples"
    )


def test_audio_too_short_for_one_frame(bad, tiny_nemo: Path, tiny_ckpt) -> None:
    hop = tiny_ckpt.config.preprocessor.hop_length
    line = assert_one_error_line(run_cli("transcribe", bad["short"], "--nemo-path", tiny_nemo), str(bad["short"]))
    assert f"{2 * hop - 1} samples" in line and "too short" in line and f"at least {2 * hop} samples" in line
    # one sample more is enough: the boundary is where NeMo's is
    ok = run_cli("transcribe", bad["shortest"], "--nemo-path", tiny_nemo)
    assert ok.exit_code == 0 and ok.exception is None, ok.output


@pytest.mark.parametrize(
    "name, problem",
    [("half", "truncated"), ("notatar", "not a .nemo archive"), ("badyaml", "model_config.yaml is not valid YAML")],
)
def test_broken_checkpoint(bad, name: str, problem: str) -> None:
    for command in (["transcribe", bad["good"]], ["convert", "--output-dir", bad["good"].with_name(f"out_{name}")]):
        assert_one_error_line(run_cli(*command, "--nemo-path", bad[name]), str(bad[name]), problem)
    assert not bad["good"].with_name(f"out_{name}").exists()


@pytest.mark.parametrize("command", ["transcribe", "convert", "compare"])
def test_no_checkpoint_given(bad, command: str) -> None:
    args = [command, bad["good"]] if command == "transcribe" else [command]
    assert_one_error_line(run_cli(*args), "--nemo-path", "--model-id")


def test_checkpoint_and_model_dir_together(bad, tiny_nemo: Path) -> None:
    result = run_cli("transcribe", bad["good"], "--nemo-path", tiny_nemo, "--model-dir", bad["good"].parent)
    assert_one_error_line(result, "--model-dir", "--nemo-path")


def test_one_line_per_failed_file_and_the_rest_transcribed(bad, tiny_nemo: Path) -> None:
    result = run_cli("transcribe", bad["good"], bad["garbage"], bad["empty"], "--nemo-path", tiny_nemo)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    errors = result.stderr.splitlines()
    assert len(errors) == 2 and str(bad["garbage"]) in errors[0] and str(bad["empty"]) in errors[1]
    assert result.stdout.startswith(f"{bad['good']}: ") and len(result.stdout.splitlines()) == 1


def test_convert_refuses_existing_output_and_leaves_it_alone(tiny_nemo: Path, tmp_path: Path) -> None:
    out = tmp_path / "packages"
    (out / "parakeet_encoder.mlpackage").mkdir(parents=True)
    files = {
        out / "metadata.json": b'{"mine": true}',
        out / "notes.txt": b"keep me",
        out / "parakeet_encoder.mlpackage" / "Manifest.json": b"{}",
    }
    for path, data in files.items():
        path.write_bytes(data)
        os.utime(path, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
    listing = sorted(tmp_path.rglob("*"))

    result = run_cli("convert", "--nemo-path", tiny_nemo, "--output-dir", out)
    assert_one_error_line(result, str(out), "already exists", "--overwrite")
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files} == before
    assert sorted(tmp_path.rglob("*")) == listing  # nothing added, nothing staged beside it


def test_inspect_missing_package(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.mlpackage"
    assert_one_error_line(run_cli("inspect", missing), str(missing), "no such package")


def test_inspect_unreadable_package(tmp_path: Path) -> None:
    fake = tmp_path / "fake.mlpackage"
    fake.mkdir()
    (fake / "Manifest.json").write_text("not json")
    assert_one_error_line(run_cli("inspect", fake), str(fake), "cannot read the package")


# --------------------------------------------------------------------------------------
# Real processes
# --------------------------------------------------------------------------------------


def test_real_process_error_is_one_line_without_traceback(bad) -> None:
    # The non-tar case: tarfile's own message spans several lines.
    r = process(BIN / "parakeet-coreml", "transcribe", bad["good"], "--nemo-path", bad["notatar"])
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.splitlines() == [f"error: {bad['notatar']}: not a .nemo archive (not a tar file)"]


def test_model_id_offline_suggests_nemo_path(tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = process(BIN / "convert", "--model-id", MODEL_ID, "--output-dir", out, env={"HF_HOME": str(tmp_path / "hf")})
    assert r.returncode == 1 and r.stdout == "" and "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"error: {MODEL_ID}: cannot download") and "--nemo-path" in lines[0]
    assert not out.exists()


def test_transcribe_json(speech_paths: dict[str, Path], tiny_nemo: Path, tiny_ckpt) -> None:
    clip = speech_paths["speech_short"]
    r = process(BIN / "parakeet-coreml", "transcribe", clip, "--nemo-path", tiny_nemo, "--json")
    assert r.returncode == 0, r.stderr
    (result,) = json.loads(r.stdout)  # stdout holds the JSON and nothing else
    info = sf.info(str(clip))
    assert result["path"] == str(clip) and result["seconds"] == pytest.approx(info.frames / info.samplerate)
    tokens = result["tokens"]
    assert tokens and result["words"]
    cfg = tiny_ckpt.config
    frame_s = cfg.preprocessor.hop_length * cfg.encoder.subsampling_factor / cfg.preprocessor.sample_rate
    last_frame = (info.frames // cfg.preprocessor.hop_length - 1) // cfg.encoder.subsampling_factor
    frames = [t["frame"] for t in tokens]
    assert frames == sorted(frames) and 0 <= frames[0] and frames[-1] <= last_frame
    for t in tokens:
        assert set(t) == {"id", "piece", "frame", "duration", "start", "end"}
        assert t["duration"] in cfg.durations and t["piece"] == tiny_ckpt.tokenizer.pieces[t["id"]]
        assert t["start"] == pytest.approx(t["frame"] * frame_s, abs=1e-6)
        assert t["end"] == pytest.approx((t["frame"] + t["duration"]) * frame_s, abs=1e-6)
    # TDT: a token's duration is how far time moved, so the next token is no earlier
    for a, b in itertools.pairwise(tokens):
        assert b["frame"] >= a["frame"] + a["duration"]
    assert result["text"] == tiny_ckpt.tokenizer.decode([t["id"] for t in tokens])
    for w in result["words"]:
        assert set(w) == {"word", "start", "end"} and w["start"] <= w["end"]


def options(help_text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", help_text))


@pytest.mark.parametrize("command", ["convert", "compare"])
def test_console_scripts_and_entry_files_offer_the_same_options(command: str) -> None:
    entry_file = {"convert": "convert_parakeet.py", "compare": "compare_components.py"}[command]
    assert (BIN / command).is_file(), f"console script {command} is not installed"
    main = process(BIN / "parakeet-coreml", command, "--help")
    alias = process(BIN / command, "--help")
    script = process(sys.executable, entry_file, command, "--help")
    for r in (main, alias, script):
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    expected = options(main.stdout)
    assert {"--nemo-path", "--model-id", "--help"} <= expected and len(expected) > 6
    assert options(alias.stdout) == expected
    assert options(script.stdout) == expected


# --------------------------------------------------------------------------------------
# inspect and io-doc
# --------------------------------------------------------------------------------------


def _table_rows(text: str, title: str) -> dict[str, tuple[str, str]]:
    block = text.split(f"\n{title}:\n", 1)[1].split("\n\n", 1)[0]
    rows = {}
    for line in block.splitlines()[2:]:  # header and rule
        name, dtype, shape = re.match(r"\s*(\S+)\s+(\S+)\s+(\[.*\])\s*$", line).groups()
        rows[name] = (dtype, shape)
    return rows


@pytest.mark.parametrize("component", ["encoder", "decoder", "joint_decision_single_step"])
def test_inspect_prints_the_packages_inputs_and_outputs(tiny_export_fp32: Path, component: str) -> None:
    import coremltools as ct

    package = tiny_export_fp32 / f"parakeet_{component}.mlpackage"
    result = run_cli("inspect", package)
    assert result.exit_code == 0 and result.exception is None, result.output
    spec = ct.utils.load_spec(str(package))
    dtypes = {ct.proto.FeatureTypes_pb2.ArrayFeatureType.FLOAT32: "float32",
              ct.proto.FeatureTypes_pb2.ArrayFeatureType.FLOAT16: "float16",
              ct.proto.FeatureTypes_pb2.ArrayFeatureType.INT32: "int32"}
    for title, features in (("Inputs", spec.description.input), ("Outputs", spec.description.output)):
        expected = {
            f.name: (dtypes[f.type.multiArrayType.dataType], "[" + ", ".join(map(str, f.type.multiArrayType.shape)) + "]")
            for f in features
        }
        assert _table_rows(result.stdout, title) == expected

    as_json = json.loads(run_cli("inspect", package, "--json").stdout)
    assert [i["name"] for i in as_json["inputs"]] == [f.name for f in spec.description.input]
    assert [o["name"] for o in as_json["outputs"]] == [f.name for f in spec.description.output]


def test_io_doc_prints_and_writes_the_committed_contract(tmp_path: Path) -> None:
    committed = (ROOT / "context" / "coreml_component_io.md").read_text()
    printed = run_cli("io-doc")
    assert printed.exit_code == 0 and printed.stdout == committed
    out = tmp_path / "io.md"
    written = run_cli("io-doc", "--output", out)
    assert written.exit_code == 0 and out.read_text() == committed
