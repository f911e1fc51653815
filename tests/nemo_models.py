"""NeMo itself as the reference: tiny random Parakeet models built, saved and run by NeMo.

Parity tests compare our pure-PyTorch port against NeMo (``nemo-toolkit[asr]``) on small
random-initialised ``EncDecRNNTBPEModel`` checkpoints that NeMo builds from a config dict and
writes as real ``.nemo`` archives. Nothing here uses our own model code; the only thing taken
from ``parakeet_coreml`` is the synthetic SentencePiece builder (a tokenizer is an input).

* :class:`NemoVariant` describes one architecture compactly; :data:`VARIANTS` holds the set
  the parity tests run over (TDT with two duration sets, plain RNNT, biases, xscaling,
  untied/tied position biases, 1/2 LSTM layers, 80/128 mels, subsampling 8/4, joint with and
  without dropout, three mel normalisations).
* :func:`build_nemo_model` builds one in eval mode on CPU, with every parameter and buffer
  (except the preprocessor's window and mel filterbank) re-drawn from a seed, and the blank
  logit offset so that greedy decoding produces a mix of blanks and tokens.
* :func:`nemo_reference` runs NeMo's own modules on one clip and returns every intermediate
  the port must reproduce (mel, encoder, greedy hypothesis with timestamps and durations,
  prediction-network and joint outputs for a fixed token sequence).

NeMo is imported lazily (the import takes 15-30 s), so importing this module is cheap.
"""

from __future__ import annotations

import copy
import math
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

SAMPLE_RATE = 16000
MAX_SYMBOLS = 10

# "Use the variant's calibrated blank bias" (pass ``None`` to keep the random bias instead).
DEFAULT = "default"


@dataclass(frozen=True)
class NemoVariant:
    """One Parakeet-family architecture, at toy size."""

    name: str
    # preprocessor (AudioToMelSpectrogramPreprocessor)
    features: int = 128
    n_fft: int = 512
    window_size: float = 0.025
    window_stride: float = 0.01
    normalize: str = "per_feature"
    # encoder (ConformerEncoder, FastConformer flavour)
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    ff_expansion: int = 4
    subsampling: str = "dw_striding"
    subsampling_factor: int = 8
    subsampling_conv_channels: int = 32
    conv_kernel_size: int = 9
    use_bias: bool = False
    xscaling: bool = False
    untie_biases: bool = True
    # prediction network (RNNTDecoder) and joint (RNNTJoint)
    pred_hidden: int = 64
    pred_rnn_layers: int = 2
    joint_hidden: int = 64
    joint_dropout: float = 0.2  # > 0 puts a Dropout at joint_net[1], the Linear at [2]
    # model type
    model_type: str = "tdt"  # "tdt" or "rnnt"
    durations: tuple[int, ...] = (0, 1, 2, 3, 4)
    vocab_size: int = 256
    # Joint calibration (weights only, see calibrate_joint_): balance prediction network vs
    # encoder in the joint, scale the final joint Linear by joint_gain and centre its outputs;
    # then add blank_bias to the blank logit. Together they give a mix of blanks and tokens
    # (and of durations) on speech, with the decision depending on the token history.
    calibrate_joint: bool = True
    joint_gain: float = 2.0
    pred_balance: float = 0.7
    blank_bias: float | None = None
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.model_type not in ("tdt", "rnnt"):
            raise ValueError(f"model_type must be 'tdt' or 'rnnt', not {self.model_type!r}")
        if self.model_type == "rnnt" and self.durations:
            object.__setattr__(self, "durations", ())
        if self.model_type == "tdt" and not self.durations:
            raise ValueError("a TDT variant needs durations")

    # ---- derived sizes -------------------------------------------------------------------
    @property
    def is_tdt(self) -> bool:
        return self.model_type == "tdt"

    @property
    def blank_id(self) -> int:
        return self.vocab_size

    @property
    def num_extra_outputs(self) -> int:
        return len(self.durations)

    @property
    def joint_out(self) -> int:
        return self.vocab_size + 1 + self.num_extra_outputs

    @property
    def joint_linear_index(self) -> int:
        """Index of the final Linear in ``joint.joint_net`` (ReLU, [Dropout], Linear)."""
        return 2 if self.joint_dropout else 1

    @property
    def hop_length(self) -> int:
        return int(self.window_stride * SAMPLE_RATE)

    @property
    def win_length(self) -> int:
        return int(self.window_size * SAMPLE_RATE)

    def mel_frames(self, num_samples: int) -> int:
        """Frames the preprocessor returns (center=True STFT): ``N // hop + 1``."""
        return num_samples // self.hop_length + 1

    def mel_length(self, num_samples: int) -> int:
        """Valid mel frames NeMo reports (one less than returned): ``N // hop``."""
        return num_samples // self.hop_length

    def encoder_length(self, mel_length: int) -> int:
        """dw_striding: each stride-2 conv (k3, p1) maps L -> floor((L - 1) / 2) + 1."""
        length = mel_length
        for _ in range(int(math.log2(self.subsampling_factor))):
            length = (length + 2 * 1 - 3) // 2 + 1
        return length

    def encoder_frames(self, mel_frames: int) -> int:
        return self.encoder_length(mel_frames)

    @property
    def frame_seconds(self) -> float:
        return self.hop_length * self.subsampling_factor / SAMPLE_RATE


VARIANTS: dict[str, NemoVariant] = {
    v.name: v
    for v in (
        NemoVariant(
            name="tdt_v3",
            description="v3's structure at toy size: 128 mels, TDT [0..4], no biases, "
            "no xscaling, untied pos biases, 2 LSTM layers, joint dropout (Linear at [2])",
            blank_bias=2.5,
        ),
        NemoVariant(
            name="tdt_bias_xscale",
            description="80 mels, TDT [0,1,2,4,8], biases on, xscaling on, tied pos biases, "
            "1 LSTM layer, ff x2, conv kernel 5, no joint dropout (Linear at [1]), d_model 96",
            features=80,
            d_model=96,
            n_heads=3,
            ff_expansion=2,
            subsampling_conv_channels=24,
            conv_kernel_size=5,
            use_bias=True,
            xscaling=True,
            untie_biases=False,
            pred_hidden=48,
            pred_rnn_layers=1,
            joint_hidden=80,
            joint_dropout=0.0,
            durations=(0, 1, 2, 4, 8),
            vocab_size=160,
            blank_bias=2.0,
        ),
        NemoVariant(
            name="rnnt",
            description="plain RNNT (no durations), 80 mels, biases on, no xscaling, untied "
            "pos biases, 2 LSTM layers, 2 heads, joint dropout 0.1; hits the 10-symbol cap",
            features=80,
            n_heads=2,
            use_bias=True,
            xscaling=False,
            untie_biases=True,
            pred_hidden=64,
            pred_rnn_layers=2,
            joint_hidden=48,
            joint_dropout=0.1,
            model_type="rnnt",
            vocab_size=144,
            blank_bias=2.5,
        ),
        NemoVariant(
            name="tdt_sub4",
            description="subsampling factor 4, TDT [0,1,2], 'all_features' normalisation, "
            "xscaling on, no biases, tied pos biases, 1 LSTM layer, 3 encoder layers",
            features=128,
            normalize="all_features",
            d_model=48,
            n_layers=3,
            n_heads=2,
            subsampling_factor=4,
            subsampling_conv_channels=16,
            conv_kernel_size=7,
            use_bias=False,
            xscaling=True,
            untie_biases=False,
            pred_hidden=32,
            pred_rnn_layers=1,
            joint_hidden=32,
            durations=(0, 1, 2),
            vocab_size=200,
            blank_bias=2.0,
        ),
    )
}


# --------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------


def nemo_config(v: NemoVariant, tokenizer_dir: str | Path | None) -> dict[str, Any]:
    """The ``EncDecRNNTBPEModel`` config dict for ``v``, laid out like NeMo's own configs."""
    durations = list(v.durations)
    cfg: dict[str, Any] = {
        "sample_rate": SAMPLE_RATE,
        "compute_eval_loss": False,
        "log_prediction": False,
        "rnnt_reduction": "mean_volume",
        "skip_nan_grad": False,
        "model_defaults": {
            "enc_hidden": v.d_model,
            "pred_hidden": v.pred_hidden,
            "joint_hidden": v.joint_hidden,
        },
        # The three keys must be present; transcribe() reads validation_ds.use_start_end_token.
        # defer_setup keeps NeMo from building data loaders (there are no manifests).
        "train_ds": {"use_start_end_token": False, "defer_setup": True},
        "validation_ds": {"use_start_end_token": False, "defer_setup": True},
        "test_ds": {"use_start_end_token": False, "defer_setup": True},
        "tokenizer": {"dir": str(tokenizer_dir) if tokenizer_dir else None, "type": "bpe"},
        "preprocessor": {
            "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
            "sample_rate": SAMPLE_RATE,
            "normalize": v.normalize,
            "window_size": v.window_size,
            "window_stride": v.window_stride,
            "window": "hann",
            "features": v.features,
            "n_fft": v.n_fft,
            "log": True,
            "frame_splicing": 1,
            "dither": 1.0e-05,  # training only; eval never dithers
            "pad_to": 0,
            "pad_value": 0.0,
        },
        "spec_augment": {
            "_target_": "nemo.collections.asr.modules.SpectrogramAugmentation",
            "freq_masks": 2,
            "time_masks": 10,
            "freq_width": 27,
            "time_width": 0.05,
        },
        "encoder": {
            "_target_": "nemo.collections.asr.modules.ConformerEncoder",
            "feat_in": v.features,
            "feat_out": -1,
            "n_layers": v.n_layers,
            "d_model": v.d_model,
            "use_bias": v.use_bias,
            "subsampling": v.subsampling,
            "subsampling_factor": v.subsampling_factor,
            "subsampling_conv_channels": v.subsampling_conv_channels,
            "causal_downsampling": False,
            "ff_expansion_factor": v.ff_expansion,
            "self_attention_model": "rel_pos",
            "n_heads": v.n_heads,
            "att_context_size": [-1, -1],
            "att_context_style": "regular",
            "xscaling": v.xscaling,
            "untie_biases": v.untie_biases,
            "pos_emb_max_len": 5000,
            "conv_kernel_size": v.conv_kernel_size,
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
                "pred_hidden": v.pred_hidden,
                "pred_rnn_layers": v.pred_rnn_layers,
                "t_max": None,
                "dropout": 0.2,
            },
            "vocab_size": v.vocab_size,  # overwritten by NeMo from the tokenizer
        },
        "joint": {
            "_target_": "nemo.collections.asr.modules.RNNTJoint",
            "log_softmax": None,  # None: log_softmax on CPU, raw logits on CUDA
            "preserve_memory": False,
            "fuse_loss_wer": True,
            "fused_batch_size": 4,
            "jointnet": {
                "joint_hidden": v.joint_hidden,
                "activation": "relu",
                "dropout": v.joint_dropout,
            },
            "num_extra_outputs": len(durations),
        },
        "decoding": {
            "strategy": "greedy_batch",
            "model_type": v.model_type,
            "greedy": {"max_symbols": MAX_SYMBOLS},
        },
        "target": "nemo.collections.asr.models.rnnt_bpe_models.EncDecRNNTBPEModel",
    }
    if v.is_tdt:
        cfg["model_defaults"]["tdt_durations"] = durations
        cfg["model_defaults"]["num_tdt_durations"] = len(durations)
        cfg["decoding"]["durations"] = durations
        cfg["loss"] = {
            "loss_name": "tdt",
            "tdt_kwargs": {
                "fastemit_lambda": 0.0,
                "clamp": -1.0,
                "durations": durations,
                "sigma": 0.02,
                "omega": 0.1,
            },
        }
    else:
        cfg["loss"] = {"loss_name": "default", "warprnnt_numba_kwargs": {"fastemit_lambda": 0.0}}
    return cfg


def write_tokenizer(v: NemoVariant, directory: str | Path, seed: int = 0) -> Path:
    """``tokenizer.model`` (synthetic SentencePiece, exactly ``v.vocab_size`` pieces) + ``vocab.txt``."""
    import sentencepiece as spm

    from parakeet_coreml.tokenizer import build_synthetic_sentencepiece

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    proto = build_synthetic_sentencepiece(v.vocab_size, seed)
    (directory / "tokenizer.model").write_bytes(proto)
    sp = spm.SentencePieceProcessor(model_proto=proto)
    assert sp.get_piece_size() == v.vocab_size
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    (directory / "vocab.txt").write_text("".join(p + "\n" for p in pieces), encoding="utf-8")
    return directory


# --------------------------------------------------------------------------------------
# Building, randomising, saving, restoring
# --------------------------------------------------------------------------------------

_BRANCH_OUT = (
    "feed_forward1.linear2.",
    "feed_forward2.linear2.",
    "self_attn.linear_out.",
    "conv.pointwise_conv2.",
)


def randomize_(model: torch.nn.Module, seed: int) -> None:
    """Re-draw every parameter and buffer from ``seed``; activations stay O(1).

    Kept as NeMo made them: ``preprocessor.*`` (the Hann window and the mel filterbank must be
    NeMo's), the blank row of the prediction embedding (``padding_idx``: a zero row in every
    real checkpoint, since it never receives a gradient) and BatchNorm's
    ``num_batches_tracked``. Everything else - including what NeMo initialises to constants
    (``pos_bias_u/v``, biases, LayerNorm affine, BatchNorm running statistics) - gets random
    values, so parity checks exercise every weight.
    """
    gen = torch.Generator().manual_seed(seed)
    n_layers = int(model.cfg.encoder.n_layers)
    branch_scale = (2.0 * n_layers) ** -0.5

    def uniform(shape, bound):
        return (torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1) * bound

    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("preprocessor."):
                continue
            if "embed" in name:
                new = torch.randn(p.shape, generator=gen, dtype=torch.float64)
            elif p.dim() >= 2:
                bound = (3.0 / p[0].numel()) ** 0.5  # unit-variance outputs
                if "lstm" in name:  # a little hotter, so the LSTM output is not tiny
                    bound *= 1.5
                if any(b in name for b in _BRANCH_OUT):
                    bound *= branch_scale
                new = uniform(p.shape, bound)
            elif "pos_bias" in name:
                new = 0.2 * torch.randn(p.shape, generator=gen, dtype=torch.float64)
            elif name.endswith("weight"):  # LayerNorm / BatchNorm scales
                new = 1.0 + 0.2 * torch.randn(p.shape, generator=gen, dtype=torch.float64)
            else:  # biases (Linear, Conv, LSTM, norms)
                new = 0.1 * torch.randn(p.shape, generator=gen, dtype=torch.float64)
            p.copy_(new.to(p.dtype))
        for name, b in model.named_buffers():
            if name.startswith("preprocessor."):
                continue
            if name.endswith("running_mean"):
                b.copy_(
                    (0.2 * torch.randn(b.shape, generator=gen, dtype=torch.float64)).to(b.dtype)
                )
            elif name.endswith("running_var"):
                b.copy_((0.5 + torch.rand(b.shape, generator=gen, dtype=torch.float64)).to(b.dtype))
        emb = model.decoder.prediction["embed"]
        if emb.padding_idx is not None:
            emb.weight[emb.padding_idx].zero_()


def joint_final_linear(model) -> torch.nn.Linear:
    lin = model.joint.joint_net[-1]
    assert isinstance(lin, torch.nn.Linear)
    return lin


def calibration_audio(seconds: float = 4.0, seed: int = 1234) -> np.ndarray:
    """A deterministic speech-like signal (gliding harmonics, syllable-rate AM, some noise).

    Used only to calibrate the joint (see :func:`calibrate_joint_`); not one of the test clips.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f0 = 120.0 + 40.0 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    voiced = sum(np.sin(k * phase) / k for k in range(1, 20))
    envelope = 0.5 * (1 + np.sin(2 * np.pi * 4.0 * t)) ** 2
    x = envelope * voiced + 0.05 * rng.standard_normal(t.shape)
    return (0.3 * x / np.max(np.abs(x))).astype(np.float32)


@torch.no_grad()
def calibrate_joint_(model, gain: float = 2.0, pred_balance: float = 0.7, seed: int = 0) -> None:
    """Rescale the joint's weights so greedy decoding depends on frame *and* history.

    A random encoder maps all frames near one common direction and ReLU makes the joint
    hidden positive, so as drawn one token and one duration win on every frame whatever the
    audio; and a random LSTM's output is small, so the token history hardly matters. Using
    :func:`calibration_audio` (not a test clip) and a seeded token sequence fed to the
    prediction network from its start state:

    1. ``joint.pred`` (weight and bias) is scaled so its output varies from step to step
       ``pred_balance`` times as much as ``joint.enc``'s output varies from frame to frame;
    2. the final joint Linear's weight is scaled by ``gain``;
    3. its bias has ``W @ mean(hidden)`` (mean over frames x steps) subtracted, so each output
       is centred and the random bias drawn earlier plus the frame/step variation decide.

    Only weights change; NeMo's forward is untouched.
    """
    x = torch.from_numpy(calibration_audio()).reshape(1, -1)
    mel, mel_len = model.preprocessor(input_signal=x, length=torch.tensor([x.shape[1]]))
    enc, enc_len = model.encoder(audio_signal=mel, length=mel_len)
    f = model.joint.enc(enc.transpose(1, 2)[0, : int(enc_len[0])])  # [T, H]
    blank = int(model.decoder.blank_idx)
    rng = np.random.default_rng(seed)
    seq = [blank] + [int(t) for t in rng.integers(0, blank, size=15)]
    g, _ = model.decoder.predict(torch.tensor([seq]), None, add_sos=False, batch_size=1)
    pred = model.joint.pred
    scale = pred_balance * float(f.std(0).mean() / pred(g[0]).std(0).mean())
    pred.weight.mul_(scale)
    pred.bias.mul_(scale)
    hidden = f.unsqueeze(1) + pred(g[0]).unsqueeze(0)  # [T, U, H]
    for layer in list(model.joint.joint_net)[:-1]:  # activation (+ dropout: identity in eval)
        hidden = layer(hidden)
    lin = joint_final_linear(model)
    lin.weight.mul_(gain)
    lin.bias.sub_(lin.weight @ hidden.reshape(-1, hidden.shape[-1]).mean(0))


def set_blank_bias_(model, blank_bias: float) -> None:
    """Add ``blank_bias`` to the final joint Linear's bias at the blank index (= vocab size)."""
    blank = model.decoder.blank_idx
    with torch.no_grad():
        joint_final_linear(model).bias[blank] += float(blank_bias)


def quiet_nemo() -> None:
    """NeMo logs a lot at INFO/WARNING; keep test output readable."""
    import logging as _logging

    from nemo.utils import logging as nemo_logging

    nemo_logging.setLevel(_logging.ERROR)


def build_nemo_model(
    variant: NemoVariant | str,
    workdir: str | Path,
    seed: int = 0,
    blank_bias: float | None | str = DEFAULT,
):
    """A random-weight NeMo ``EncDecRNNTBPEModel`` for ``variant`` (eval mode, CPU, fp32).

    ``workdir`` receives the tokenizer folder. After :func:`randomize_` and (unless the
    variant turns it off) :func:`calibrate_joint_`, ``blank_bias`` is added to the final joint
    Linear's bias at the blank index: ``DEFAULT`` uses the variant's value, ``None`` or 0 adds
    nothing, a float adds that. With the calibrated joint the token logits are centred near
    0, so ``blank_bias`` is, roughly, the blank logit's mean offset over the token logits.
    """
    from nemo.collections.asr.models import EncDecRNNTBPEModel
    from omegaconf import OmegaConf

    quiet_nemo()
    v = VARIANTS[variant] if isinstance(variant, str) else variant
    workdir = Path(workdir)
    tok_dir = write_tokenizer(v, workdir / f"{v.name}_tokenizer", seed)
    cfg = OmegaConf.create(nemo_config(v, tok_dir))
    torch.manual_seed(seed)
    model = EncDecRNNTBPEModel(cfg=cfg)
    model = model.to("cpu").float().eval()
    randomize_(model, seed)
    if v.calibrate_joint:
        calibrate_joint_(model, v.joint_gain, v.pred_balance, seed)
    bias = v.blank_bias if blank_bias == DEFAULT else blank_bias
    if bias is not None:
        set_blank_bias_(model, bias)
    assert model.joint.num_classes_with_blank == v.joint_out, (
        model.joint.num_classes_with_blank,
        v.joint_out,
    )
    return model


def save_nemo(model, path: str | Path) -> Path:
    path = Path(path)
    model.save_to(str(path))
    return path


def restore_nemo(path: str | Path):
    """``ASRModel.restore_from`` on CPU, eval mode."""
    from nemo.collections.asr.models import ASRModel

    quiet_nemo()
    model = ASRModel.restore_from(str(path), map_location="cpu")
    return model.float().eval()


def state_dict_keys(model_or_path) -> list[str]:
    """State-dict keys of a NeMo model, or of the ``model_weights.ckpt`` inside a ``.nemo``."""
    if isinstance(model_or_path, (str, Path)):
        return list(nemo_archive_state_dict(model_or_path).keys())
    return list(model_or_path.state_dict().keys())


def nemo_archive_members(path: str | Path) -> list[str]:
    with tarfile.open(path, "r:") as tar:
        return tar.getnames()


def nemo_archive_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    with tarfile.open(path, "r:") as tar:
        name = next(n for n in tar.getnames() if n.endswith("model_weights.ckpt"))
        f = tar.extractfile(name)
        assert f is not None
        import io

        return torch.load(io.BytesIO(f.read()), map_location="cpu", weights_only=True)


# --------------------------------------------------------------------------------------
# Reference extraction
# --------------------------------------------------------------------------------------


def _decoding(model, **overrides):
    """A fresh ``RNNTBPEDecoding`` from the model's own decoding config (the model is untouched)."""
    from nemo.collections.asr.parts.submodules.rnnt_decoding import RNNTBPEDecoding
    from omegaconf import OmegaConf, open_dict

    cfg = copy.deepcopy(model.cfg.decoding)
    with open_dict(cfg):
        for key, value in overrides.items():
            OmegaConf.update(cfg, key, value, force_add=True)
    return RNNTBPEDecoding(
        decoding_cfg=cfg, decoder=model.decoder, joint=model.joint, tokenizer=model.tokenizer
    )


def _to_list(x) -> list[int]:
    if x is None:
        return []
    if isinstance(x, torch.Tensor):
        return [int(i) for i in x.reshape(-1).tolist()]
    return [int(i) for i in x]


def reference_tokens(vocab_size: int, count: int = 8, seed: int = 0) -> list[int]:
    """A fixed non-blank token sequence for prediction-network / joint references."""
    rng = np.random.default_rng(seed)
    return [int(t) for t in rng.integers(0, vocab_size, size=count)]


@torch.no_grad()
def nemo_reference(
    model,
    audio: np.ndarray,
    tokens: list[int] | None = None,
    with_alignments: bool = True,
) -> dict[str, Any]:
    """Everything NeMo computes for one clip (float32, 16 kHz mono), on CPU in fp32.

    Keys (arrays are numpy, batch dimension dropped):

    * ``mel`` [F, N//hop+1], ``mel_length`` (= N//hop)
    * ``encoder`` [D, T_enc] (NeMo's channels-first layout), ``encoder_length``
    * ``tokens``, ``timestamps`` (encoder frame of each token), ``durations`` (TDT: frames
      each token advances; empty for RNNT), ``text``, ``score``: greedy label-looping
      decoding exactly as ``transcribe()`` does it
    * ``steps`` (when ``with_alignments``): every decoding step in order, blanks included, as
      ``(frame, label, duration)`` from NeMo's alignments; ``frame_symbols``: non-blank count
      per encoder frame; ``blank_steps`` / ``max_symbols_frames`` summarise them;
      ``min_label_margin`` / ``min_duration_margin``: the smallest gap between the best and
      second-best logit over all decisions taken (token-or-blank; duration), i.e. how much
      numerical error the greedy path tolerates before a decision flips
    * ``pred_tokens`` = [blank, *tokens] (``tokens`` defaults to
      ``reference_tokens(vocab_size)``, 8 fixed ids); ``pred_out`` [U+1, H]: the prediction network fed
      one token at a time with the state carried (``decoder.predict(y, state,
      add_sos=False)``), exactly as the greedy decoder drives it (the first step feeds the
      blank id, whose embedding row is zero, with a zero state); ``pred_state_h`` /
      ``pred_state_c`` [U+1, layers, H] after each step
    * ``joint_raw`` [T, U+1, V+1+D] over all T returned encoder frames (T can exceed
      ``encoder_length`` by one, see below): pre-log-softmax logits of ``joint_net(enc(f) +
      pred(g))``; ``joint_logprobs``: ``model.joint.joint(f, g)`` as NeMo returns it on CPU
      (``log_softmax`` over all V+1+D outputs, durations included); ``joint_enc_proj`` [T, J],
      ``joint_pred_proj`` [U+1, J]

    The encoder returns ``encoder_frames(N // hop + 1)`` frames (from the padded mel length)
    but reports ``encoder_length(N // hop)`` valid ones; they differ by one when ``N // hop``
    is a multiple of the subsampling factor. Frames past the valid length are not zero.
    """
    model.eval()
    v_size = int(model.decoder.vocab_size)
    blank = int(model.decoder.blank_idx)
    x = torch.as_tensor(np.asarray(audio, dtype=np.float32)).reshape(1, -1)
    n = torch.tensor([x.shape[1]], dtype=torch.long)

    mel, mel_len = model.preprocessor(input_signal=x, length=n)
    enc, enc_len = model.encoder(audio_signal=mel, length=mel_len)

    out: dict[str, Any] = {
        "num_samples": int(x.shape[1]),
        "mel": mel[0].numpy().copy(),
        "mel_length": int(mel_len[0]),
        "encoder": enc[0].numpy().copy(),
        "encoder_length": int(enc_len[0]),
    }

    # --- greedy decoding (the model's own decoding config: greedy_batch, label looping)
    include_duration = bool(model.decoding.durations)
    decoding = _decoding(
        model, **({"tdt_include_token_duration": True} if include_duration else {})
    )
    hyp = decoding.rnnt_decoder_predictions_tensor(
        encoder_output=enc, encoded_lengths=enc_len, return_hypotheses=True
    )[0]
    out["tokens"] = _to_list(hyp.y_sequence)
    out["timestamps"] = _to_list(hyp.timestamp)
    out["durations"] = _to_list(hyp.token_duration) if include_duration else []
    out["text"] = hyp.text
    out["score"] = float(hyp.score)

    if with_alignments:
        overrides = {"greedy.preserve_alignments": True}
        if include_duration:
            overrides["tdt_include_token_duration"] = True
        hyp_a = _decoding(model, **overrides).rnnt_decoder_predictions_tensor(
            encoder_output=enc, encoded_lengths=enc_len, return_hypotheses=True
        )[0]
        durations = list(model.decoding.durations or [])
        # NeMo groups the recorded steps by frame (unique consecutive time index) but does not
        # store the frame; rebuild it: time moves on by the last step's duration (blank: >= 1;
        # RNNT: blank 1, token 0), or by 1 when the max-symbols cap forced it (token, d == 0).
        steps: list[tuple[int, int, int]] = []
        label_margins: list[float] = []
        duration_margins: list[float] = []
        frame = 0
        for frame_steps in hyp_a.alignments or []:
            d = 1
            for logits, label in frame_steps:
                label = int(label)
                z = torch.as_tensor(logits, dtype=torch.float32).reshape(-1)
                top = z[: blank + 1].topk(2).values
                label_margins.append(float(top[0] - top[1]))
                if durations:
                    dz = z[-len(durations) :]
                    d = int(durations[int(dz.argmax())])
                    if len(durations) > 1:
                        top = dz.topk(2).values
                        duration_margins.append(float(top[0] - top[1]))
                    if label == blank and d == 0:
                        d = 1
                else:
                    d = 1 if label == blank else 0
                steps.append((frame, label, d))
            frame += d if d > 0 else 1
        out["steps"] = steps
        # how far each greedy decision was from flipping (logit gap between the top two)
        out["min_label_margin"] = min(label_margins, default=float("inf"))
        out["min_duration_margin"] = min(duration_margins, default=float("inf"))
        out["alignment_tokens"] = _to_list(hyp_a.y_sequence)
        frame_symbols = np.zeros(int(enc_len[0]), dtype=np.int64)
        for t in out["timestamps"]:
            frame_symbols[t] += 1
        out["frame_symbols"] = frame_symbols
        out["blank_steps"] = sum(1 for s in steps if s[1] == blank)
        out["max_symbols_frames"] = int((frame_symbols >= MAX_SYMBOLS).sum())

    # --- prediction network on a fixed token sequence, one token at a time (state carried)
    if tokens is None:
        tokens = reference_tokens(v_size)
    pred_tokens = [blank] + list(tokens)
    state = None
    gs, hs, cs = [], [], []
    for tok in pred_tokens:
        y = torch.tensor([[tok]], dtype=torch.long)
        g, state = model.decoder.predict(y, state, add_sos=False, batch_size=1)
        gs.append(g[0, 0])
        hs.append(state[0][:, 0])
        cs.append(state[1][:, 0])
    g_all = torch.stack(gs)  # [U+1, H]
    out["pred_tokens"] = pred_tokens
    out["pred_out"] = g_all.numpy().copy()
    out["pred_state_h"] = torch.stack(hs).numpy().copy()
    out["pred_state_c"] = torch.stack(cs).numpy().copy()

    # --- joint: raw logits and what NeMo's joint() returns
    f = enc.transpose(1, 2)  # [1, T, D]
    g = g_all.unsqueeze(0)  # [1, U+1, H]
    j = model.joint
    hidden = j.enc(f).unsqueeze(2) + j.pred(g).unsqueeze(1)
    out["joint_raw"] = j.joint_net(hidden)[0].numpy().copy()
    out["joint_logprobs"] = j.joint(f, g)[0].numpy().copy()
    out["joint_enc_proj"] = j.enc(f)[0].numpy().copy()
    out["joint_pred_proj"] = j.pred(g)[0].numpy().copy()
    return out


def _hyp_text(h) -> str:
    if isinstance(h, str):
        return h
    if isinstance(h, (list, tuple)):  # n-best or (best, all) pairs
        return _hyp_text(h[0])
    return h.text


def nemo_transcribe(model, wav_paths: list[str | Path], timestamps: bool = False) -> list[Any]:
    """``model.transcribe(paths, batch_size=1)``: the raw return, one entry per file."""
    quiet_nemo()
    paths = [str(p) for p in wav_paths]
    kwargs: dict[str, Any] = {"batch_size": 1, "verbose": False}
    if timestamps:
        kwargs["timestamps"] = True
        kwargs["return_hypotheses"] = True
    result = model.transcribe(paths, **kwargs)
    if isinstance(result, tuple):  # older NeMo: (best, all)
        result = result[0]
    return list(result)


def nemo_transcribe_text(model, wav_paths: list[str | Path]) -> list[str]:
    """Texts NeMo's ``transcribe()`` gives, whether it returns strings or Hypothesis objects."""
    return [_hyp_text(h) for h in nemo_transcribe(model, wav_paths)]


def nemo_word_timestamps(model, wav_paths: list[str | Path]) -> list[list[dict[str, Any]]]:
    """Word timestamps from ``transcribe(..., timestamps=True)``.

    One list per file of NeMo's word entries: ``{"word", "start_offset", "end_offset"}`` in
    encoder frames (``start_offset`` of the first token, ``end_offset`` = last token's start +
    duration for TDT) and ``"start"``/``"end"`` in seconds. ``transcribe(timestamps=True)``
    rewrites ``model.cfg.decoding`` (``compute_timestamps``) for good; the model's decoding
    config is put back afterwards so a shared model stays as built.
    """
    from omegaconf import OmegaConf

    saved = OmegaConf.create(OmegaConf.to_container(model.cfg.decoding))
    try:
        hyps = nemo_transcribe(model, wav_paths, timestamps=True)
    finally:
        model.change_decoding_strategy(saved, verbose=False)
    out = []
    for h in hyps:
        ts = getattr(h, "timestamp", None)
        words = ts.get("word", []) if isinstance(ts, dict) else []
        out.append([dict(w) for w in words])
    return out


# --------------------------------------------------------------------------------------
# Test signals made at test time (deterministic; nothing committed)
# --------------------------------------------------------------------------------------


def white_noise(seconds: float, seed: int = 0, level: float = 0.1, sample_rate: int = 16000):
    """Gaussian white noise, float32, RMS ``level``."""
    rng = np.random.default_rng(seed)
    return (level * rng.standard_normal(round(seconds * sample_rate))).astype(np.float32)


def silence(seconds: float, sample_rate: int = 16000) -> np.ndarray:
    """Digital silence, float32."""
    return np.zeros(round(seconds * sample_rate), dtype=np.float32)


def tone(seconds: float, freq: float = 440.0, level: float = 0.3, sample_rate: int = 16000):
    """A sine tone, float32."""
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    return (level * np.sin(2 * np.pi * freq * t)).astype(np.float32)
