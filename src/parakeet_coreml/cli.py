"""The ``parakeet-coreml`` command line: Typer parses and prints, the library does the work.

Imports of heavy modules happen inside commands so ``--help`` and ``transcribe`` start fast
(coremltools and matplotlib are never imported on the transcription path).
"""

from __future__ import annotations

import functools
import json
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from .errors import ParakeetError

app = typer.Typer(
    name="parakeet-coreml",
    help="Convert NVIDIA Parakeet TDT/RNNT models to CoreML and prove the result is right.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def error_line(e: ParakeetError) -> str:
    """``error: <message>`` on one line (messages may quote multi-line library errors)."""
    return "error: " + " ".join(str(e).split())


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a ParakeetError into one ``error:`` line on stderr and exit status 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ParakeetError as e:
            typer.echo(error_line(e), err=True)
            raise typer.Exit(1) from None

    return wrapper


NemoPath = typer.Option(None, "--nemo-path", help="A .nemo file or a folder extracted from one.")
ModelId = typer.Option(
    None, "--model-id", help="A Hugging Face model id, e.g. nvidia/parakeet-tdt-0.6b-v3."
)


def _load(nemo_path: Optional[Path], model_id: Optional[str]) -> Any:
    from .checkpoint import load_checkpoint

    return load_checkpoint(nemo_path=nemo_path, model_id=model_id)


class RuntimeKind(str, Enum):
    auto = "auto"
    coreml = "coreml"
    mil = "mil"


RuntimeOpt = typer.Option(
    RuntimeKind.auto, "--runtime", help="auto: native Core ML on macOS, the portable MIL interpreter elsewhere."
)


@app.command()
@friendly
def transcribe(
    audio: list[Path] = typer.Argument(..., help="Audio files (anything soundfile reads)."),
    nemo_path: Optional[Path] = NemoPath,
    model_id: Optional[str] = ModelId,
    model_dir: Optional[Path] = typer.Option(
        None, "--model-dir", help="Transcribe through the exported packages in this folder instead."
    ),
    runtime: RuntimeKind = RuntimeOpt,
    fused: bool = typer.Option(False, "--fused", help="With --model-dir: use mel_encoder instead of preprocessor + encoder."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON with tokens and timestamps."),
) -> None:
    """Transcribe audio with the PyTorch reference (no NeMo needed) or through CoreML packages."""
    if model_dir is not None:
        if nemo_path or model_id:
            raise ParakeetError("give either --model-dir or a checkpoint (--nemo-path/--model-id), not both")
        from .pipeline import PackageSet

        packages = PackageSet(model_dir, runtime.value)

        def run(path: Path) -> Any:
            from .transcribe import FileTranscript

            seconds, transcript = packages.transcribe_file(path, fused=fused)
            return FileTranscript(str(path), seconds, transcript)
    else:
        from .transcribe import Transcriber

        transcriber = Transcriber(_load(nemo_path, model_id))
        run = transcriber.transcribe_file
    results = []
    failed = 0
    for path in audio:
        try:
            result = run(path)
        except ParakeetError as e:
            typer.echo(error_line(e), err=True)
            failed += 1
            continue
        results.append(result)
        if not as_json:
            typer.echo(f"{path}: {result.transcript.text}" if len(audio) > 1 else result.transcript.text)
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in results], indent=2, ensure_ascii=False))
    if failed:
        raise typer.Exit(1)


class PresetName(str, Enum):
    tiny = "tiny"
    v3 = "v3"


class Emission(str, Enum):
    random = "random"
    realistic = "realistic"
    saturated = "saturated"


@app.command("make-checkpoint")
@friendly
def make_checkpoint_cmd(
    out: Path = typer.Argument(..., help="Where to write the .nemo file."),
    preset: PresetName = typer.Option(PresetName.tiny, "--preset", help="tiny (tests) or v3 (0.6B shapes)."),
    seed: int = typer.Option(0, "--seed", help="Random seed for weights and tokenizer."),
    emission: Emission = typer.Option(
        Emission.random,
        "--emission",
        help="random: the joint as initialised; realistic: blank bias calibrated to a trained "
        "model's ~40 tokens per 15 s; saturated: a token at every step up to the 10-per-frame cap.",
    ),
    blank_bias: Optional[float] = typer.Option(
        None, "--blank-bias", help="Explicit offset added to the blank logit (overrides --emission)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing file."),
) -> None:
    """Write a random-weight .nemo with real Parakeet architecture (NeMo can restore it)."""
    from .synthetic import EMISSION_BLANK_BIAS, make_checkpoint

    bias = blank_bias if blank_bias is not None else EMISSION_BLANK_BIAS[preset.value].get(emission.value, 0.0)
    t0 = time.perf_counter()
    path = make_checkpoint(out, preset.value, seed=seed, blank_bias=bias, emission=emission.value, overwrite=overwrite)
    size = path.stat().st_size / 2**20
    typer.echo(f"wrote {path} ({preset.value}, seed {seed}, {emission.value} emission, blank bias {bias:g}, {size:.1f} MiB, "
               f"{time.perf_counter() - t0:.1f} s)")


def _demo_clip() -> Path:
    from importlib.resources import files

    return Path(str(files("parakeet_coreml") / "data" / "speech_short.wav"))


DEMO_MARKER = ".parakeet-coreml-demo"


@app.command()
@friendly
def demo(
    output_dir: Path = typer.Option(Path("parakeet_demo"), "--output-dir", help="Folder for the demo's files."),
) -> None:
    """Build a tiny random checkpoint, convert every component, and gate the packages on parity.

    Runs anywhere: the packages execute in the portable MIL runtime (native Core ML on macOS).
    """
    import platform

    from .errors import OutputError
    from .export.convert import convert
    from .synthetic import make_checkpoint
    from .transcribe import Transcriber
    from .validate.compare import compare
    from .validate.report import parity_table

    if output_dir.exists() and not (output_dir / DEMO_MARKER).exists():
        raise OutputError(f"{output_dir}: exists and was not made by the demo; pick another --output-dir")
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / DEMO_MARKER).touch()
    t0 = time.perf_counter()
    nemo = make_checkpoint(output_dir / "tiny.nemo", "tiny", seed=0, overwrite=True)
    typer.echo(f"1. checkpoint: {nemo} (tiny preset, random weights, real Parakeet-TDT architecture)")
    ckpt = _load(nemo, None)
    clip = _demo_clip()
    result = Transcriber(ckpt).transcribe_file(clip)
    typer.echo(f"   reference transcript of {clip.name} ({result.seconds:.2f} s): {len(result.transcript.tokens)} "
               "tokens (random weights: the text is noise)")

    packages = output_dir / "packages"
    typer.echo(f"2. convert: every component, fp16 (preprocessor fp32), iOS17, 15 s window -> {packages}")
    converted = convert(ckpt, packages, overwrite=True, progress=lambda msg: typer.echo(f"   {msg}"))
    typer.echo(f"   wrote {len(converted.components)} packages, metadata.json, parakeet_vocab.json")

    runtime = "coreml" if platform.system() == "Darwin" else "mil"
    plots = output_dir / "plots" / "compare-components"
    typer.echo(f"3. compare: packages against the torch reference through the {runtime} runtime")
    cmp = compare(packages, ckpt, runtime=runtime, runs=3, warmup=1, plots_dir=plots)
    typer.echo(parity_table(cmp))
    e2e = cmp.end_to_end
    typer.echo(f"end to end on the built-in 15 s clip: {e2e['package_tokens']} tokens through the packages vs "
               f"{e2e['reference_tokens']} from the reference, identical {e2e['tokens_identical']}, "
               f"WER {e2e['wer']['wer']:.4f}")
    typer.echo(f"plots: {plots} ({len(cmp.plots)} PNG); report: {packages / 'compare_report.md'}")
    if not cmp.passed:
        for f in cmp.failures:
            typer.echo(f"FAIL {f.line()}", err=True)
        raise typer.Exit(1)
    typer.echo(f"PASS in {time.perf_counter() - t0:.1f} s")


def _split(values: Optional[list[str]]) -> Optional[list[str]]:
    """Accept ``--components a,b`` and repeated ``--components a --components b``."""
    if not values:
        return None
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def _precision_overrides(values: Optional[list[str]]) -> dict[str, str]:
    from .errors import ConversionError

    out = {}
    for item in _split(values) or []:
        name, sep, prec = item.partition("=")
        if not sep:
            raise ConversionError(f"--component-precision {item!r}: expected COMPONENT=fp16|fp32")
        out[name.strip()] = prec.strip()
    return out


class Layout(str, Enum):
    default = "default"
    fluidaudio = "fluidaudio"


class Target(str, Enum):
    ios17 = "ios17"
    ios18 = "ios18"


class Precision(str, Enum):
    fp16 = "fp16"
    fp32 = "fp32"


@app.command("convert")
@friendly
def convert_cmd(
    nemo_path: Optional[Path] = NemoPath,
    model_id: Optional[str] = ModelId,
    output_dir: Path = typer.Option(Path("parakeet_coreml"), "--output-dir", help="Folder for the packages."),
    components: Optional[list[str]] = typer.Option(
        None, "--components", help="Components to convert (comma-separated or repeated); default: all of the layout."
    ),
    layout: Layout = typer.Option(
        Layout.default, "--layout", help="default: parakeet_<component>.mlpackage; fluidaudio: what FluidAudio loads."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace packages in an existing folder."),
    target: Target = typer.Option(Target.ios17, "--target", help="Minimum deployment target."),
    precision: Precision = typer.Option(
        Precision.fp16, "--precision", help="Compute precision (the preprocessor stays fp32 unless overridden)."
    ),
    component_precision: Optional[list[str]] = typer.Option(
        None, "--component-precision", help="Per-component override, e.g. encoder=fp32 (repeatable)."
    ),
    window_seconds: float = typer.Option(15.0, "--window-seconds", help="Fixed audio window of the packages."),
    top_k: int = typer.Option(64, "--top-k", help="Top-k size of joint_decision_single_step."),
) -> None:
    """Convert every Parakeet component to a fixed-window CoreML package, with metadata.json."""
    from .export.convert import convert

    ckpt = _load(nemo_path, model_id)
    t0 = time.perf_counter()
    result = convert(
        ckpt,
        output_dir,
        components=_split(components),
        layout=layout.value,
        overwrite=overwrite,
        target=target.value,
        precision=precision.value,
        precision_overrides=_precision_overrides(component_precision),
        window_seconds=window_seconds,
        top_k=top_k,
        progress=lambda msg: typer.echo(msg),
    )
    if result.kept:
        typer.echo(f"kept from the previous conversion: {', '.join(result.kept)}")
    typer.echo(f"wrote {len(result.components)} packages, metadata.json and parakeet_vocab.json to "
               f"{result.output_dir} in {time.perf_counter() - t0:.1f} s")


@app.command("io-doc")
@friendly
def io_doc_cmd(
    output: Optional[Path] = typer.Option(None, "--output", help="Write here instead of printing."),
    window_seconds: float = typer.Option(15.0, "--window-seconds"),
) -> None:
    """Print the component I/O contract for the v3 shapes (context/coreml_component_io.md)."""
    from .contract import build_contract, contract_markdown
    from .synthetic import preset_config

    text = contract_markdown(
        build_contract(preset_config("v3"), window_seconds),
        "Parakeet-TDT v3 (0.6B) CoreML component I/O",
    )
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)
        typer.echo(f"wrote {output}")


@app.command("inspect")
@friendly
def inspect_cmd(
    package: Path = typer.Argument(..., help="An .mlpackage (or .mlmodel) to describe."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Inputs, outputs, target, op counts, weight bytes and Neural Engine warnings of a package."""
    from dataclasses import asdict

    from .inspection import format_report, inspect_package

    if not package.exists():
        raise ParakeetError(f"{package}: no such package")
    try:
        report = inspect_package(package)
    except ParakeetError:
        raise
    except Exception as e:
        raise ParakeetError(f"{package}: cannot read the package ({type(e).__name__}: {e})") from None
    typer.echo(json.dumps(asdict(report), indent=2, default=str) if as_json else format_report(report))


def _tolerances(values: Optional[list[str]], flag: str) -> dict[str, float]:
    """``--atol 0.01`` (every component) or ``--atol encoder=0.01`` (one component)."""
    out: dict[str, float] = {}
    for item in _split(values) or []:
        name, sep, value = item.rpartition("=")
        try:
            out[name.strip() if sep else "*"] = float(value)
        except ValueError:
            raise ParakeetError(f"{flag} {item!r}: expected a number or COMPONENT=number") from None
    return out


@app.command("compare")
@friendly
def compare_cmd(
    model_dir: Path = typer.Option(Path("parakeet_coreml"), "--model-dir", help="Folder written by convert."),
    nemo_path: Optional[Path] = NemoPath,
    model_id: Optional[str] = ModelId,
    audio: Optional[Path] = typer.Option(None, "--audio", help="Validation audio (default: built-in 15 s speech)."),
    runtime: RuntimeKind = RuntimeOpt,
    compute_units: str = typer.Option("ALL", "--compute-units", help="Native Core ML compute units."),
    runs: int = typer.Option(10, "--runs", help="Timed runs per component."),
    warmup: int = typer.Option(3, "--warmup", help="Untimed runs before timing."),
    symbol_steps: int = typer.Option(32, "--symbol-steps", help="Decoder steps unrolled with state carried."),
    atol: Optional[list[str]] = typer.Option(None, "--atol", help="Override atol: VALUE or COMPONENT=VALUE."),
    rtol: Optional[list[str]] = typer.Option(None, "--rtol", help="Override rtol (of scale): VALUE or COMPONENT=VALUE."),
    plots_dir: Path = typer.Option(Path("plots/compare-components"), "--plots-dir", help="Where plots go."),
) -> None:
    """Gate every package on parity with the reference and on the transcript; exit 1 on mismatch."""
    from .validate.compare import compare
    from .validate.report import latency_table, parity_table

    result = compare(
        model_dir,
        _load(nemo_path, model_id),
        audio=audio,
        runtime=runtime.value,
        compute_units=compute_units,
        runs=runs,
        warmup=warmup,
        symbol_steps=symbol_steps,
        atol=_tolerances(atol, "--atol"),
        rtol=_tolerances(rtol, "--rtol"),
        plots_dir=plots_dir,
        progress=lambda msg: typer.echo(msg, err=True),
    )
    typer.echo(parity_table(result))
    typer.echo("")
    e2e = result.end_to_end
    if "skipped" not in e2e:
        typer.echo(f"end to end: {e2e['package_tokens']} tokens vs reference {e2e['reference_tokens']}, "
                   f"identical {e2e['tokens_identical']}, token agreement {e2e['token_agreement']:.4f}, "
                   f"WER {e2e['wer']['wer']:.4f}")
    typer.echo("")
    typer.echo(latency_table(result))
    if result.runtime == "mil":
        typer.echo("(package timings: portable MIL interpreter on this CPU, not device numbers)")
    typer.echo(f"\nreports: {result.model_dir / 'compare_report.md'}, compare_report.json; "
               f"validation merged into {result.model_dir / 'metadata.json'}; {len(result.plots)} plots in {plots_dir}")
    if not result.passed:
        for f in result.failures:
            typer.echo(f"FAIL {f.line()}", err=True)
        raise typer.Exit(1)
    typer.echo("PASS")


def _single(command: Callable[..., Any]) -> Callable[[], None]:
    """A console script that runs one command (``uv run convert ...``)."""

    def run() -> None:
        quiet_third_party()
        one = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
        one.command()(command)
        one()

    return run


convert_main = _single(convert_cmd)
compare_main = _single(compare_cmd)


def quiet_third_party() -> None:
    """coremltools logs a warning per missing macOS binding and version notes at import, and
    draws progress bars per pass; none of that helps a user of this CLI."""
    import logging
    import os
    import warnings

    logging.getLogger("coremltools").setLevel(logging.ERROR)
    # numeric-range bookkeeping inside a coremltools pass; harmless and not actionable
    warnings.filterwarnings("ignore", category=RuntimeWarning, module="coremltools")
    os.environ.setdefault("TQDM_DISABLE", "1")


def main() -> None:
    quiet_third_party()
    app()


if __name__ == "__main__":
    sys.exit(main())
