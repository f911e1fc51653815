"""Trace each component's wrapper and convert it to a fixed-window mlprogram package.

Everything is built in a temporary sibling of the output folder and swapped in only when
every requested component converted; a failure names the component and leaves the previous
output untouched.
"""

from __future__ import annotations

import gc
import os
import platform
import shutil
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .. import __version__
from ..checkpoint import Checkpoint
from ..contract import COMPONENTS, FP32_BY_DEFAULT, ComponentIO, Contract, build_contract
from ..errors import ConversionError, OutputError
from ..model import ParakeetModel
from .package import move_into_place, package_bytes, read_json, remove, spec_io, temp_sibling, write_json_atomic
from .wrappers import build_wrapper

TARGETS = ("ios17", "ios18")
PRECISIONS = ("fp16", "fp32")
METADATA_FILE = "metadata.json"
VOCAB_FILE = "parakeet_vocab.json"
TOKENIZER_FILE = "parakeet_tokenizer.model"  # the SentencePiece model, for exact detokenisation

LAYOUTS: dict[str, dict[str, str]] = {
    "default": {name: f"parakeet_{name}.mlpackage" for name in COMPONENTS},
    # What FluidAudio's Parakeet TDT v3 manager loads (it compiles these to .mlmodelc).
    "fluidaudio": {
        "preprocessor": "Preprocessor.mlpackage",
        "encoder": "Encoder.mlpackage",
        "decoder": "Decoder.mlpackage",
        "joint_decision_single_step": "JointDecisionv3.mlpackage",
    },
}


@dataclass
class ComponentResult:
    name: str
    file: str
    precision: str
    target: str
    trace_seconds: float
    convert_seconds: float
    save_seconds: float
    size_bytes: int
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]

    def to_metadata(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "precision": self.precision,
            "target": self.target,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "size_bytes": self.size_bytes,
            "convert_seconds": round(self.trace_seconds + self.convert_seconds + self.save_seconds, 2),
        }


@dataclass
class ConvertResult:
    output_dir: Path
    components: list[ComponentResult] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


def resolve_precisions(
    components: list[str], precision: str, overrides: dict[str, str] | None = None
) -> dict[str, str]:
    """Per-component precision: the global one, fp32 for the front end, then overrides."""
    overrides = dict(overrides or {})
    for name, p in overrides.items():
        if name not in COMPONENTS:
            raise ConversionError(f"unknown component {name!r} in a precision override")
        if p not in PRECISIONS:
            raise ConversionError(f"precision {p!r} for {name} is not one of {', '.join(PRECISIONS)}")
    if precision not in PRECISIONS:
        raise ConversionError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    out = {}
    for name in components:
        # mel_encoder at fp16 still computes its front end in fp32 (see front_end_in_fp32).
        default = "fp32" if name in FP32_BY_DEFAULT else precision
        out[name] = overrides.get(name, default)
    return out


def example_inputs(model: ParakeetModel, contract: Contract, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Plausible inputs for every component (noise audio through the reference model)."""
    rng = np.random.default_rng(seed)
    n = contract.window_samples
    audio = (0.1 * rng.standard_normal((1, n))).astype(np.float32)
    length = np.array([n], dtype=np.int32)
    cfg = model.cfg
    with torch.inference_mode():
        mel, mel_len = model.preprocessor(torch.from_numpy(audio), torch.from_numpy(length).long())
        enc, enc_len = model.encoder(mel, mel_len)
    h = np.zeros(contract["decoder"].input("h_in").shape, dtype=np.float32)
    dec = model.decoder
    with torch.inference_mode():
        g, _ = dec.predict(torch.tensor([[cfg.blank_id]]), (torch.from_numpy(h), torch.from_numpy(h)))
    decoder_out = g.transpose(1, 2).numpy().astype(np.float32)
    encoder_out = enc.numpy().astype(np.float32)
    audio_in = {"audio_signal": audio, "audio_length": length}
    return {
        "preprocessor": audio_in,
        "encoder": {"mel": mel.numpy(), "mel_length": mel_len.numpy().astype(np.int32)},
        "mel_encoder": audio_in,
        "decoder": {
            "targets": np.array([[cfg.blank_id]], dtype=np.int32),
            "target_length": np.array([1], dtype=np.int32),
            "h_in": h,
            "c_in": h.copy(),
        },
        "joint": {"encoder": encoder_out, "decoder": decoder_out},
        "joint_decision": {"encoder": encoder_out, "decoder": decoder_out},
        "joint_decision_single_step": {
            "encoder_step": np.ascontiguousarray(encoder_out[:, :, :1]),
            "decoder_step": decoder_out,
        },
    }


def _ct_dtype(dtype: str) -> Any:
    return {"float32": np.float32, "int32": np.int32, "float16": np.float16}[dtype]


def front_end_in_fp32(model: ParakeetModel) -> Callable[[Any], bool]:
    """``op_selector`` for a fp16 ``mel_encoder``: the mel front end stays fp32.

    Power spectra overflow fp16 (a full-scale tone near Nyquist, after pre-emphasis, passes
    65504 and the package returns NaN) and ``log(mel + 2^-24)`` needs fp32's range at the low
    end, which is why the standalone preprocessor is fp32. Inside ``mel_encoder`` the front end
    is every operation before the encoder's first subsampling convolution, found by its weight
    shape (the trace records the front end first, and MIL passes keep that order). Those run in
    fp32; the encoder from that convolution on runs in fp16.
    """
    first_conv = tuple(model.encoder.pre_encode.conv[0].weight.shape)
    front: dict[int, set[int]] = {}

    def fp16(op: Any) -> bool:
        block = op.enclosing_block
        if id(block) not in front:
            ops = [o for o in block.operations if o.op_type != "const"]
            boundary = next(
                (i for i, o in enumerate(ops)
                 if o.op_type == "conv" and tuple(o.inputs["weight"].shape) == first_conv),
                None,
            )
            if boundary is None:
                raise ConversionError("mel_encoder: could not find the encoder's first convolution "
                                      "to keep the front end in fp32")
            front[id(block)] = {id(o) for o in ops[:boundary]}
        return id(op) not in front[id(block)]

    return fp16


def convert_component(
    model: ParakeetModel,
    contract: Contract,
    name: str,
    precision: str,
    target: str,
    example: dict[str, np.ndarray],
) -> tuple[Any, float, float]:
    """Trace and convert one component; returns (MLModel, trace seconds, convert seconds)."""
    import coremltools as ct

    io: ComponentIO = contract[name]
    wrapper = build_wrapper(name, model, contract)
    args = tuple(torch.from_numpy(np.ascontiguousarray(example[t.name])) for t in io.inputs)
    t0 = time.perf_counter()
    with torch.no_grad(), warnings.catch_warnings():
        # Shape checks inside nn.LSTM and our fixed-window code are constants by design.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(wrapper, args, check_trace=False)
    t1 = time.perf_counter()
    if precision == "fp32":
        compute_precision: Any = ct.precision.FLOAT32
    elif name == "mel_encoder":
        compute_precision = ct.transform.FP16ComputePrecision(op_selector=front_end_in_fp32(model))
    else:
        compute_precision = ct.precision.FLOAT16
    mlmodel = ct.convert(
        traced,
        inputs=[ct.TensorType(name=t.name, shape=t.shape, dtype=_ct_dtype(t.dtype)) for t in io.inputs],
        outputs=[ct.TensorType(name=t.name, dtype=_ct_dtype(t.dtype)) for t in io.outputs],
        convert_to="mlprogram",
        minimum_deployment_target={"ios17": ct.target.iOS17, "ios18": ct.target.iOS18}[target],
        compute_precision=compute_precision,
        skip_model_load=True,
    )
    t2 = time.perf_counter()
    del traced
    return mlmodel, t1 - t0, t2 - t1


def describe(mlmodel: Any, io: ComponentIO, source: str, precision: str, contract: Contract) -> None:
    """Author, descriptions and user metadata on the package itself."""
    mlmodel.author = f"parakeet-coreml {__version__}"
    mlmodel.license = "See the source checkpoint's license"
    mlmodel.version = __version__
    mlmodel.short_description = (
        f"Parakeet {io.name}: {io.description} ({contract.window_seconds:g} s window, {precision}). "
        f"Source: {source}"
    )
    for t in io.inputs:
        mlmodel.input_description[t.name] = t.description
    for t in io.outputs:
        mlmodel.output_description[t.name] = t.description
    meta = mlmodel.user_defined_metadata
    meta["com.parakeet-coreml.component"] = io.name
    meta["com.parakeet-coreml.precision"] = precision
    meta["com.parakeet-coreml.window_samples"] = str(contract.window_samples)
    meta["com.parakeet-coreml.blank_id"] = str(contract.config.blank_id)
    meta["com.parakeet-coreml.durations"] = ",".join(map(str, contract.config.durations))


def _check_spec(mlmodel: Any, io: ComponentIO) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    inputs, outputs = spec_io(mlmodel.get_spec())
    want_in = [t.to_dict() for t in io.inputs]
    want_out = [t.to_dict() for t in io.outputs]
    if inputs != want_in or outputs != want_out:
        raise ConversionError(
            f"{io.name}: converted package I/O {inputs} -> {outputs} does not match the contract "
            f"{want_in} -> {want_out}"
        )
    return inputs, outputs


def _source_fields(ckpt: Checkpoint) -> dict[str, Any]:
    return {
        "model_id": ckpt.model_id,
        "nemo_path": None if ckpt.model_id else str(Path(ckpt.source).resolve()),
        "sha256": ckpt.sha256(),
        "target": ckpt.config.target,
    }


def _versions() -> dict[str, str]:
    import coremltools as ct

    return {
        "parakeet_coreml": __version__,
        "coremltools": ct.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def convert(
    ckpt: Checkpoint,
    output_dir: str | Path,
    components: list[str] | None = None,
    layout: str = "default",
    overwrite: bool = False,
    target: str = "ios17",
    precision: str = "fp16",
    precision_overrides: dict[str, str] | None = None,
    window_seconds: float = 15.0,
    top_k: int = 64,
    progress: Callable[[str], None] = lambda msg: None,
) -> ConvertResult:
    """Convert ``components`` of ``ckpt`` into ``output_dir`` (see the module docstring)."""
    output_dir = Path(output_dir)
    if layout not in LAYOUTS:
        raise ConversionError(f"layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    files = LAYOUTS[layout]
    names = list(files) if components is None else list(dict.fromkeys(components))
    for n in names:
        if n not in files:
            raise ConversionError(
                f"component {n!r} is not part of the {layout} layout (choose from {', '.join(files)})"
            )
    if target not in TARGETS:
        raise ConversionError(f"target {target!r} is not one of {', '.join(TARGETS)}")
    precisions = resolve_precisions(names, precision, precision_overrides)
    if output_dir.exists() and not output_dir.is_dir():
        raise OutputError(f"{output_dir}: exists and is not a folder")
    if output_dir.exists() and not overwrite:
        raise OutputError(f"{output_dir}: already exists (pass --overwrite to replace its packages)")
    if not output_dir.parent.exists():
        raise OutputError(f"{output_dir.parent}: folder does not exist")

    contract = build_contract(ckpt.config, window_seconds, top_k)
    model = ParakeetModel.from_checkpoint(ckpt)
    examples = example_inputs(model, contract)
    source = ckpt.model_id or Path(ckpt.source).name
    result = ConvertResult(output_dir)
    staging = temp_sibling(output_dir)
    staging.mkdir()
    try:
        for name in names:
            io = contract[name]
            try:
                mlmodel, t_trace, t_convert = convert_component(
                    model, contract, name, precisions[name], target, examples[name]
                )
                describe(mlmodel, io, source, precisions[name], contract)
                inputs, outputs = _check_spec(mlmodel, io)
                t0 = time.perf_counter()
                mlmodel.save(str(staging / files[name]))
                t_save = time.perf_counter() - t0
            except ConversionError:
                raise
            except Exception as e:  # coremltools and torch raise anything
                raise ConversionError(
                    f"{name}: conversion failed ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                    f"{output_dir} was left as it was"
                ) from e
            finally:
                mlmodel = None
                gc.collect()
            comp = ComponentResult(
                name, files[name], precisions[name], target, t_trace, t_convert, t_save,
                package_bytes(staging / files[name]), inputs, outputs,
            )
            result.components.append(comp)
            progress(
                f"{name}: {files[name]} ({precisions[name]}, {comp.size_bytes / 2**20:.1f} MiB; "
                f"trace {t_trace:.1f} s, convert {t_convert:.1f} s, save {t_save:.1f} s)"
            )

        ckpt.tokenizer.write_vocab_json(staging / VOCAB_FILE)
        (staging / TOKENIZER_FILE).write_bytes(ckpt.tokenizer.model_proto)
        metadata: dict[str, Any] = {
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "versions": _versions(),
            "source": _source_fields(ckpt),
            "model": contract.summary(),
            "layout": layout,
            "vocab_file": VOCAB_FILE,
            "tokenizer_file": TOKENIZER_FILE,
            "components": {c.name: c.to_metadata() for c in result.components},
        }
        result.kept = _carry_over(output_dir, staging, metadata)
        write_json_atomic(staging / METADATA_FILE, metadata)
        _swap_in(staging, output_dir)
        result.metadata = metadata
    finally:
        remove(staging)
    return result


def _carry_over(output_dir: Path, staging: Path, metadata: dict[str, Any]) -> list[str]:
    """Keep packages we did not rebuild if they come from the same checkpoint and window.

    Anything else in an overwritten folder is stale and goes with the old folder.
    """
    old = read_json(output_dir / METADATA_FILE)
    if not old or old.get("source") != metadata["source"] or old.get("model") != metadata["model"]:
        return []
    if old.get("layout") != metadata["layout"]:
        return []
    kept = []
    for name, entry in (old.get("components") or {}).items():
        if name in metadata["components"] or not isinstance(entry, dict):
            continue
        src = output_dir / str(entry.get("file", ""))
        if entry.get("file") and src.exists():
            _link_copy(src, staging / entry["file"])
            metadata["components"][name] = entry
            kept.append(name)
    return kept


def _link_copy(src: Path, dst: Path) -> None:
    """Copy a package by hard links (instant, no extra space); plain copies across devices."""
    def link(a: str, b: str) -> None:
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    if src.is_dir():
        shutil.copytree(src, dst, copy_function=link)
    else:
        link(str(src), str(dst))


def _swap_in(staging: Path, output_dir: Path) -> None:
    """The new folder replaces the old in two renames; the old is deleted last."""
    move_into_place(staging, output_dir)
