"""The I/O contract: every exported component's names, shapes and dtypes, in one place.

Wrappers, ``ct.convert`` input specs, metadata.json, ``context/coreml_component_io.md`` and
the tests all read this module. Shapes derive from the model config and the window, never
from constants: v3 at 15 s gives 240,000 samples -> 1501 mel frames -> 188 encoder frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .config import ModelConfig
from .model.preprocessor import min_samples_for_features

DEFAULT_WINDOW_SECONDS = 15.0
DEFAULT_TOP_K = 64
FILE_PREFIX = "parakeet_"

# Components in export order; fused ones last so a failure in a base part shows first.
COMPONENTS = (
    "preprocessor",
    "encoder",
    "mel_encoder",
    "decoder",
    "joint",
    "joint_decision",
    "joint_decision_single_step",
)

# Power spectra overflow fp16 and 2**-24 is an fp16 subnormal: the front end stays fp32.
FP32_BY_DEFAULT = frozenset({"preprocessor"})


@dataclass(frozen=True)
class TensorIO:
    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy dtype name: "float32" or "int32"
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


@dataclass(frozen=True)
class ComponentIO:
    name: str
    description: str
    inputs: tuple[TensorIO, ...]
    outputs: tuple[TensorIO, ...]

    @property
    def file(self) -> str:
        return f"{FILE_PREFIX}{self.name}.mlpackage"

    def input(self, name: str) -> TensorIO:
        return next(t for t in self.inputs if t.name == name)

    def output(self, name: str) -> TensorIO:
        return next(t for t in self.outputs if t.name == name)


@dataclass(frozen=True)
class Contract:
    """Fixed-window I/O for one model config."""

    config: ModelConfig
    window_seconds: float = DEFAULT_WINDOW_SECONDS
    top_k: int = DEFAULT_TOP_K
    components: dict[str, ComponentIO] = field(default_factory=dict, compare=False)

    @property
    def sample_rate(self) -> int:
        return self.config.preprocessor.sample_rate

    @property
    def window_samples(self) -> int:
        return int(round(self.window_seconds * self.sample_rate))

    @property
    def mel_frames(self) -> int:
        return self.config.preprocessor.padded_frames(self.window_samples)

    @property
    def encoder_frames(self) -> int:
        return self.config.encoder.frames(self.mel_frames)

    @property
    def has_durations(self) -> bool:
        return bool(self.config.durations)

    def __getitem__(self, name: str) -> ComponentIO:
        return self.components[name]

    def summary(self) -> dict[str, Any]:
        """Model-level facts for metadata.json."""
        c = self.config
        return {
            "sample_rate": self.sample_rate,
            "window_seconds": self.window_seconds,
            "window_samples": self.window_samples,
            "mel_features": c.preprocessor.features,
            "hop_length": c.preprocessor.hop_length,
            "subsampling_factor": c.encoder.subsampling_factor,
            "min_audio_samples": min_samples_for_features(c.preprocessor),
            "mel_frames": self.mel_frames,
            "encoder_frames": self.encoder_frames,
            "encoder_frame_seconds": c.frame_seconds,
            "encoder_hidden": c.encoder.d_model,
            "decoder_hidden": c.decoder.pred_hidden,
            "decoder_layers": c.decoder.pred_rnn_layers,
            "joint_hidden": c.joint.joint_hidden,
            "vocab_size": c.vocab_size,
            "blank_id": c.blank_id,
            "joint_outputs": c.num_outputs,
            "model_type": c.model_type,
            "durations": list(c.durations),
            "max_symbols_per_frame": c.max_symbols,
            "top_k": self.top_k,
        }


def build_contract(
    cfg: ModelConfig, window_seconds: float = DEFAULT_WINDOW_SECONDS, top_k: int = DEFAULT_TOP_K
) -> Contract:
    """Every component's I/O for ``cfg`` at a fixed ``window_seconds`` (batch 1)."""
    if window_seconds <= 0:
        raise ValueError(f"window must be positive, got {window_seconds} s")
    contract = Contract(cfg, window_seconds, min(top_k, cfg.vocab_size + 1))
    n, f, t = contract.window_samples, cfg.preprocessor.features, contract.mel_frames
    d, te = cfg.encoder.d_model, contract.encoder_frames
    h, layers, k = cfg.decoder.pred_hidden, cfg.decoder.pred_rnn_layers, contract.top_k
    f32, i32 = "float32", "int32"

    audio = (
        TensorIO("audio_signal", (1, n), f32, f"{contract.window_seconds:g} s of mono audio at {contract.sample_rate} Hz, zero-padded"),
        TensorIO("audio_length", (1,), i32, "number of valid samples in audio_signal"),
    )
    mel = (
        TensorIO("mel", (1, f, t), f32, "normalised log-mel features; frames past mel_length are 0"),
        TensorIO("mel_length", (1,), i32, "number of valid mel frames"),
    )
    enc = (
        TensorIO("encoder", (1, d, te), f32, "encoder output, channel-major"),
        TensorIO("encoder_length", (1,), i32, "number of valid encoder frames"),
    )
    state = (
        TensorIO("h_in", (layers, 1, h), f32, "LSTM hidden state"),
        TensorIO("c_in", (layers, 1, h), f32, "LSTM cell state"),
    )
    dec_in = (
        TensorIO("targets", (1, 1), i32, f"previous token id (blank {cfg.blank_id} starts)"),
        TensorIO("target_length", (1,), i32, "always 1"),
    ) + state
    dec_out = (
        TensorIO("decoder", (1, h, 1), f32, "prediction network output"),
        TensorIO("h_out", (layers, 1, h), f32, "next LSTM hidden state"),
        TensorIO("c_out", (layers, 1, h), f32, "next LSTM cell state"),
    )
    joint_in = (
        TensorIO("encoder", (1, d, te), f32, "encoder output"),
        TensorIO("decoder", (1, h, 1), f32, "prediction network output"),
    )

    def decision(frames: int) -> tuple[TensorIO, ...]:
        outs = [
            TensorIO("token_id", (1, frames, 1), i32, f"argmax over tokens and blank ({cfg.blank_id})"),
            TensorIO("token_prob", (1, frames, 1), f32, "softmax probability of token_id"),
        ]
        if contract.has_durations:
            outs.append(
                TensorIO("duration", (1, frames, 1), i32, f"index into durations {list(cfg.durations)}")
            )
        return tuple(outs)

    comps = [
        ComponentIO("preprocessor", "waveform -> normalised log-mel features", audio, mel),
        ComponentIO("encoder", "log-mel -> FastConformer encoder output", mel, enc),
        ComponentIO("mel_encoder", "waveform -> encoder output (preprocessor + encoder fused)", audio, enc),
        ComponentIO("decoder", "one prediction-network step with explicit LSTM state", dec_in, dec_out),
        ComponentIO(
            "joint", "joint network logits over every frame (tokens, blank, durations)", joint_in,
            (TensorIO("logits", (1, te, 1, cfg.num_outputs), f32, "raw joint logits"),),
        ),
        ComponentIO("joint_decision", "joint + token/duration decision for every frame", joint_in, decision(te)),
        ComponentIO(
            "joint_decision_single_step",
            "joint + decision for one frame, with the top-k token logits",
            (
                TensorIO("encoder_step", (1, d, 1), f32, "one encoder frame"),
                TensorIO("decoder_step", (1, h, 1), f32, "prediction network output"),
            ),
            decision(1)
            + (
                TensorIO("top_k_ids", (1, 1, 1, k), i32, "ids of the k largest token logits"),
                TensorIO("top_k_logits", (1, 1, 1, k), f32, "the k largest token logits"),
            ),
        ),
    ]
    contract.components.update({c.name: c for c in comps})
    return contract


def contract_markdown(contract: Contract, title: str) -> str:
    """The component I/O document (``context/coreml_component_io.md`` is this, for v3)."""
    s = contract.summary()
    lines = [
        f"# {title}",
        "",
        "Generated by `parakeet-coreml io-doc` from `src/parakeet_coreml/contract.py`; do not edit",
        "by hand (a test fails when this file drifts from the contract).",
        "",
        f"- Window: {s['window_seconds']:g} s = {s['window_samples']:,} samples at {s['sample_rate']:,} Hz"
        f" -> {s['mel_frames']:,} mel frames -> {s['encoder_frames']:,} encoder frames"
        f" ({s['encoder_frame_seconds']:g} s each).",
        f"- Vocabulary {s['vocab_size']:,} tokens; blank id {s['blank_id']} (also the decoder's start"
        f" symbol); joint width {s['joint_outputs']:,}"
        + (f" = tokens + blank + {len(s['durations'])} durations {s['durations']}." if s["durations"] else "."),
        f"- Batch 1, float32 values, int32 lengths and ids. Top-k = {s['top_k']}.",
        "",
        "| component | file | inputs | outputs |",
        "|---|---|---|---|",
    ]

    def fmt(ts: tuple[TensorIO, ...]) -> str:
        return "<br>".join(f"`{t.name}` {t.dtype} [{', '.join(map(str, t.shape))}]" for t in ts)

    for name in COMPONENTS:
        c = contract[name]
        lines.append(f"| {name} | `{c.file}` | {fmt(c.inputs)} | {fmt(c.outputs)} |")
    lines += ["", "## Tensors", ""]
    for name in COMPONENTS:
        c = contract[name]
        lines.append(f"### {name}")
        lines.append("")
        lines.append(c.description[0].upper() + c.description[1:] + ".")
        lines.append("")
        for kind, ts in (("in", c.inputs), ("out", c.outputs)):
            for t in ts:
                lines.append(f"- {kind} `{t.name}` {t.dtype} [{', '.join(map(str, t.shape))}]: {t.description}")
        lines.append("")
    return "\n".join(lines)
