"""Random-weight checkpoints with real Parakeet architecture, written as real ``.nemo`` files.

Hugging Face is out of reach in CI, so tests, the demo and benchmarks run on checkpoints we
build: ``tiny`` (v3's structure at toy size) and ``v3`` (the exact v3 0.6B shapes). The
config is the NeMo layout, so NeMo itself restores these files.

How often a random joint emits a token decides how long greedy decoding takes, so the
emission rate is a preset option (``EMISSIONS``), measured on the built-in 15 s speech clip
with ``bench/emission_rate.py``:

* ``random``: the joint as initialised (v3 shapes: 114 tokens per 15 s; tiny: 92).
* ``realistic``: the blank logit lifted so greedy decoding emits about what a trained v3 emits
  on read English (~40 tokens per 15 s, ``EMISSION_BLANK_BIAS``).
* ``saturated``: a token with duration 0 at every step, up to the 10-per-frame cap (1880 tokens
  per 15 s): the worst case, and what NeMo's own default initialisation produces.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from .checkpoint import write_nemo
from .config import parse_model_config
from .errors import OutputError
from .config import ModelConfig
from .tokenizer import Tokenizer, build_synthetic_sentencepiece, synthetic_pieces


@dataclass(frozen=True)
class Preset:
    features: int
    d_model: int
    n_layers: int
    n_heads: int
    subsampling_conv_channels: int
    conv_kernel_size: int
    pred_hidden: int
    pred_rnn_layers: int
    joint_hidden: int
    vocab_size: int
    durations: tuple[int, ...] = (0, 1, 2, 3, 4)
    use_bias: bool = False
    xscaling: bool = False


PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        features=128, d_model=64, n_layers=2, n_heads=4, subsampling_conv_channels=32,
        conv_kernel_size=9, pred_hidden=64, pred_rnn_layers=2, joint_hidden=64, vocab_size=256,
    ),
    "v3": Preset(
        features=128, d_model=1024, n_layers=24, n_heads=8, subsampling_conv_channels=256,
        conv_kernel_size=9, pred_hidden=640, pred_rnn_layers=2, joint_hidden=640, vocab_size=8192,
    ),
}

EMISSIONS = ("random", "realistic", "saturated")

# Blank-logit offsets that give a trained-like emission rate on speech (~40 tokens per 15 s),
# from bench/emission_rate.py on speech_15s.wav with seed 0 (tiny: 41 tokens, v3: 36).
EMISSION_BLANK_BIAS: dict[str, dict[str, float]] = {
    "tiny": {"random": 0.0, "realistic": 2.25},
    "v3": {"random": 0.0, "realistic": 4.25},
}
SATURATING_OFFSET = 30.0  # far beyond any random logit: blank never wins, duration 0 always does


def nemo_config(p: Preset, pieces: list[str]) -> dict[str, Any]:
    """A complete NeMo ``EncDecRNNTBPEModel`` config for preset ``p`` (TDT decoding)."""
    durations = list(p.durations)
    return {
        "sample_rate": 16000,
        "compute_eval_loss": False,
        "log_prediction": True,
        "rnnt_reduction": "mean_volume",
        "skip_nan_grad": False,
        "model_defaults": {
            "enc_hidden": p.d_model,
            "pred_hidden": p.pred_hidden,
            "joint_hidden": p.joint_hidden,
            "tdt_durations": durations,
            "num_tdt_durations": len(durations),
        },
        "train_ds": {"use_start_end_token": False},
        "validation_ds": {"use_start_end_token": False},
        "test_ds": {"use_start_end_token": False},
        "tokenizer": {"dir": None, "type": "bpe"},
        "preprocessor": {
            "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
            "sample_rate": 16000,
            "normalize": "per_feature",
            "window_size": 0.025,
            "window_stride": 0.01,
            "window": "hann",
            "features": p.features,
            "n_fft": 512,
            "log": True,
            "frame_splicing": 1,
            "dither": 1.0e-05,
            "pad_to": 0,
            "pad_value": 0.0,
        },
        "spec_augment": {
            "_target_": "nemo.collections.asr.modules.SpectrogramAugmentation",
            "freq_masks": 2, "time_masks": 10, "freq_width": 27, "time_width": 0.05,
        },
        "encoder": {
            "_target_": "nemo.collections.asr.modules.ConformerEncoder",
            "feat_in": p.features,
            "feat_out": -1,
            "n_layers": p.n_layers,
            "d_model": p.d_model,
            "use_bias": p.use_bias,
            "subsampling": "dw_striding",
            "subsampling_factor": 8,
            "subsampling_conv_channels": p.subsampling_conv_channels,
            "causal_downsampling": False,
            "ff_expansion_factor": 4,
            "self_attention_model": "rel_pos",
            "n_heads": p.n_heads,
            "att_context_size": [-1, -1],
            "att_context_style": "regular",
            "xscaling": p.xscaling,
            "untie_biases": True,
            "pos_emb_max_len": 5000,
            "conv_kernel_size": p.conv_kernel_size,
            "conv_norm_type": "batch_norm",
            "conv_context_size": None,
            "dropout": 0.1,
            "dropout_pre_encoder": 0.1,
            "dropout_emb": 0.0,
            "dropout_att": 0.1,
        },
        "decoder": {
            "_target_": "nemo.collections.asr.modules.RNNTDecoder",
            "normalization_mode": None,
            "random_state_sampling": False,
            "blank_as_pad": True,
            "prednet": {
                "pred_hidden": p.pred_hidden,
                "pred_rnn_layers": p.pred_rnn_layers,
                "t_max": None,
                "dropout": 0.2,
            },
            "vocab_size": p.vocab_size,
        },
        "joint": {
            "_target_": "nemo.collections.asr.modules.RNNTJoint",
            "log_softmax": None,
            "preserve_memory": False,
            "fuse_loss_wer": True,
            "fused_batch_size": 4,
            "jointnet": {
                "joint_hidden": p.joint_hidden,
                "activation": "relu",
                "dropout": 0.2,
                "encoder_hidden": p.d_model,
                "pred_hidden": p.pred_hidden,
            },
            "num_extra_outputs": len(durations),
            "num_classes": p.vocab_size,
            "vocabulary": list(pieces),
        },
        "decoding": {
            "strategy": "greedy_batch",
            "model_type": "tdt",
            "durations": durations,
            "greedy": {"max_symbols": 10},
        },
        "loss": {
            "loss_name": "tdt",
            "tdt_kwargs": {
                "fastemit_lambda": 0.0, "clamp": -1.0, "durations": durations,
                "sigma": 0.02, "omega": 0.1,
            },
        },
        "target": "nemo.collections.asr.models.rnnt_bpe_models.EncDecRNNTBPEModel",
    }


def preset_config(preset: str) -> "ModelConfig":
    """The parsed config of a preset (the v3 one documents the real model's shapes)."""
    p = PRESETS[preset]
    return parse_model_config(nemo_config(p, synthetic_pieces(p.vocab_size)))


def randomize_(model: torch.nn.Module, seed: int) -> None:
    """Seeded random weights that keep activations O(1) through every layer.

    PyTorch's default initialisers already scale by fan-in; on top we give the parameters NeMo
    initialises to constants (attention position biases, norms, BatchNorm statistics) random
    values, so every weight matters and parity checks cover all of them.
    """
    gen = torch.Generator().manual_seed(seed)
    # Residual-branch outputs start small (GPT-2's 1/sqrt(2 * layers)): with unit-scale
    # branches a random 24-layer Conformer collapses every frame onto nearly the same vector,
    # so the joint makes the same decision on every frame and no blank bias gives a
    # trained-like mix of blanks and tokens.
    branch_scale = (2.0 * model.cfg.encoder.n_layers) ** -0.5
    branch_out = ("feed_forward1.linear2.", "feed_forward2.linear2.", "self_attn.linear_out.", "conv.pointwise_conv2.")
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("preprocessor."):
                continue
            if p.dim() >= 2 and "embed" not in name:
                fan_in = p[0].numel()
                bound = (3.0 / fan_in) ** 0.5
                if any(b in name for b in branch_out):
                    bound *= branch_scale
                p.copy_((torch.rand(p.shape, generator=gen) * 2 - 1) * bound)
            elif "embed" in name:
                p.copy_(torch.randn(p.shape, generator=gen))
            elif name.endswith("weight"):  # norm scales
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            else:  # biases, pos_bias_u/v
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.1 * torch.randn(b.shape, generator=gen))
            elif name.endswith("running_var"):
                b.copy_(1.0 + 0.2 * torch.rand(b.shape, generator=gen))
        emb = model.decoder.prediction["embed"]
        emb.weight[emb.padding_idx].zero_()


@torch.no_grad()
def set_emission_(model: Any, preset: str, emission: str, blank_bias: float | None = None) -> None:
    """Offset the joint's output biases for an emission rate (see the module doc)."""
    cfg = model.cfg
    bias = model.joint.joint_net[-1].bias
    if emission == "saturated":
        bias[cfg.blank_id] -= SATURATING_OFFSET
        if cfg.durations:
            bias[cfg.blank_id + 1 + list(cfg.durations).index(0)] += SATURATING_OFFSET
    if blank_bias is None:
        blank_bias = EMISSION_BLANK_BIAS[preset].get(emission, 0.0)
    bias[cfg.blank_id] += blank_bias


def make_checkpoint(
    out: str | Path,
    preset: str = "tiny",
    seed: int = 0,
    blank_bias: float | None = None,
    overwrite: bool = False,
    emission: str = "random",
    **overrides: Any,
) -> Path:
    """Write a random-weight ``.nemo`` for ``preset``; ``overrides`` change preset fields.

    ``emission`` picks the emission rate (see the module doc); an explicit ``blank_bias`` is
    added to the blank logit instead of the preset's calibrated offset.
    """
    from .model import ParakeetModel

    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    if emission not in EMISSIONS:
        raise ValueError(f"unknown emission {emission!r}; choose from {', '.join(EMISSIONS)}")
    out = Path(out)
    if out.exists() and not overwrite:
        raise OutputError(f"{out}: already exists (pass --overwrite to replace it)")
    if not out.parent.exists():
        raise OutputError(f"{out.parent}: folder does not exist")
    p = replace(PRESETS[preset], **overrides)
    tok_model = build_synthetic_sentencepiece(p.vocab_size, seed)
    raw = nemo_config(p, Tokenizer(tok_model).pieces)
    cfg = parse_model_config(copy.deepcopy(raw))
    torch.manual_seed(seed)
    model = ParakeetModel(cfg)
    randomize_(model, seed)
    set_emission_(model, preset, emission, blank_bias)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    return write_nemo(out, raw, state, tok_model)
