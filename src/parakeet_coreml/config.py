"""Typed model configuration parsed from NeMo's ``model_config.yaml``.

Every size the port needs is read from the checkpoint's own config, so fine-tunes and other
FastConformer TDT/RNNT checkpoints load without code changes. What the port cannot run
exactly is refused here, with a message that names what the config holds.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import UnsupportedModelError

_INTERP = re.compile(r"\$\{([^}]+)\}")


def resolve_interpolations(cfg: dict[str, Any]) -> dict[str, Any]:
    """Resolve OmegaConf ``${a.b}`` references (NeMo saves configs unresolved)."""

    def lookup(path: str) -> Any:
        node: Any = cfg
        for part in path.split("."):
            if isinstance(node, dict) and part in node:
                node = node[part]
            else:
                raise KeyError(path)
        return node

    def resolve(value: Any, depth: int = 0) -> Any:
        if depth > 20:
            return value
        if isinstance(value, dict):
            return {k: resolve(v, depth) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v, depth) for v in value]
        if isinstance(value, str) and "${" in value:
            whole = _INTERP.fullmatch(value.strip())
            try:
                if whole and ":" not in whole.group(1):
                    return resolve(lookup(whole.group(1)), depth + 1)
                return _INTERP.sub(
                    lambda m: str(resolve(lookup(m.group(1)), depth + 1)), value
                )
            except KeyError:
                return value
        return value

    return resolve(cfg)


def _target(section: dict[str, Any] | None) -> str:
    if not isinstance(section, dict):
        return ""
    return str(section.get("_target_") or section.get("cls") or "")


def _short(target: str) -> str:
    return target.rsplit(".", 1)[-1] if target else "<none>"


@dataclass(frozen=True)
class PreprocessorConfig:
    sample_rate: int = 16000
    win_length: int = 400
    hop_length: int = 160
    n_fft: int = 512
    features: int = 128
    window: str = "hann"
    normalize: str | None = "per_feature"
    preemph: float | None = 0.97
    log: bool = True
    log_zero_guard_type: str = "add"
    log_zero_guard_value: float | str = 2**-24
    mag_power: float = 2.0
    pad_to: int = 0
    pad_value: float = 0.0
    exact_pad: bool = False
    lowfreq: float = 0.0
    highfreq: float | None = None
    mel_norm: str | None = "slaney"

    def mel_frames(self, num_samples: int) -> int:
        """Frames torch.stft gives for ``num_samples`` (before pad_to)."""
        if self.exact_pad:
            return (num_samples - self.hop_length) // self.hop_length + 1
        return num_samples // self.hop_length + 1

    def valid_frames(self, num_samples: int) -> int:
        """NeMo's ``get_seq_len``: the frames counted as valid for ``num_samples``."""
        pad = (self.n_fft - self.hop_length) // 2 * 2 if self.exact_pad else self.n_fft // 2 * 2
        return (num_samples + pad - self.n_fft) // self.hop_length

    def padded_frames(self, num_samples: int) -> int:
        """Frames of the mel output, including NeMo's ``pad_to`` padding."""
        t = self.mel_frames(num_samples)
        if self.pad_to > 0 and t % self.pad_to:
            t += self.pad_to - t % self.pad_to
        return t


@dataclass(frozen=True)
class EncoderConfig:
    feat_in: int = 128
    n_layers: int = 24
    d_model: int = 1024
    n_heads: int = 8
    ff_expansion_factor: int = 4
    subsampling_factor: int = 8
    subsampling_conv_channels: int = 256
    conv_kernel_size: int = 9
    conv_norm_type: str = "batch_norm"
    use_bias: bool = False
    xscaling: bool = False
    untie_biases: bool = True
    pos_emb_max_len: int = 5000

    @property
    def d_ff(self) -> int:
        return self.d_model * self.ff_expansion_factor

    @property
    def subsampling_steps(self) -> int:
        return int(math.log2(self.subsampling_factor))

    def frames(self, mel_frames: int) -> int:
        """Encoder frames for ``mel_frames``: each stride-2 conv gives ceil(L/2)."""
        n = mel_frames
        for _ in range(self.subsampling_steps):
            n = (n - 1) // 2 + 1
        return n


@dataclass(frozen=True)
class DecoderConfig:
    vocab_size: int = 8192
    pred_hidden: int = 640
    pred_rnn_layers: int = 2


@dataclass(frozen=True)
class JointConfig:
    joint_hidden: int = 640
    activation: str = "relu"
    dropout: float = 0.0
    num_extra_outputs: int = 5


@dataclass(frozen=True)
class ModelConfig:
    preprocessor: PreprocessorConfig = field(default_factory=PreprocessorConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    joint: JointConfig = field(default_factory=JointConfig)
    model_type: str = "tdt"
    durations: tuple[int, ...] = (0, 1, 2, 3, 4)
    max_symbols: int = 10
    tokenizer_member: str = ""
    target: str = "nemo.collections.asr.models.rnnt_bpe_models.EncDecRNNTBPEModel"
    ignored_prefixes: tuple[str, ...] = ()

    @property
    def vocab_size(self) -> int:
        return self.decoder.vocab_size

    @property
    def blank_id(self) -> int:
        return self.decoder.vocab_size

    @property
    def num_outputs(self) -> int:
        """Joint width: tokens, blank, duration logits."""
        return self.decoder.vocab_size + 1 + self.joint.num_extra_outputs

    @property
    def frame_seconds(self) -> float:
        """Seconds per encoder frame (0.08 s for Parakeet)."""
        p = self.preprocessor
        return p.hop_length * self.encoder.subsampling_factor / p.sample_rate

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _int(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise UnsupportedModelError(f"config value {name}={value!r} is not an integer") from None


def parse_preprocessor(cfg: dict[str, Any]) -> PreprocessorConfig:
    target = _target(cfg)
    if target and not target.endswith("AudioToMelSpectrogramPreprocessor"):
        raise UnsupportedModelError(
            f"preprocessor is {_short(target)}; only AudioToMelSpectrogramPreprocessor is supported"
        )
    sr = _int(cfg.get("sample_rate", 16000), "preprocessor.sample_rate")
    if cfg.get("window_size"):
        win = int(cfg["window_size"] * sr)
    else:
        win = _int(cfg.get("n_window_size", 320), "preprocessor.n_window_size")
    if cfg.get("window_stride"):
        hop = int(cfg["window_stride"] * sr)
    else:
        hop = _int(cfg.get("n_window_stride", 160), "preprocessor.n_window_stride")
    n_fft = cfg.get("n_fft") or 2 ** math.ceil(math.log2(win))
    if _int(cfg.get("frame_splicing", 1), "frame_splicing") != 1:
        raise UnsupportedModelError("preprocessor.frame_splicing > 1 is not supported")
    normalize = cfg.get("normalize", "per_feature")
    if normalize not in ("per_feature", "all_features") and normalize:
        if isinstance(normalize, dict) or normalize not in ("NA", "none", "None"):
            raise UnsupportedModelError(f"preprocessor.normalize={normalize!r} is not supported")
        normalize = None
    pad_to = cfg.get("pad_to", 16)
    if pad_to == "max":
        raise UnsupportedModelError("preprocessor.pad_to='max' is not supported")
    guard_type = cfg.get("log_zero_guard_type", "add")
    if guard_type not in ("add", "clamp"):
        raise UnsupportedModelError(f"preprocessor.log_zero_guard_type={guard_type!r}")
    exact_pad = bool(cfg.get("exact_pad", False))
    if exact_pad and hop % 2:
        raise UnsupportedModelError("preprocessor.exact_pad with an odd hop length")
    return PreprocessorConfig(
        sample_rate=sr,
        win_length=win,
        hop_length=hop,
        n_fft=int(n_fft),
        features=_int(cfg.get("features", cfg.get("nfilt", 64)), "preprocessor.features"),
        window=str(cfg.get("window", "hann")),
        normalize=normalize or None,
        preemph=None if cfg.get("preemph", 0.97) is None else float(cfg.get("preemph", 0.97)),
        log=bool(cfg.get("log", True)),
        log_zero_guard_type=guard_type,
        log_zero_guard_value=cfg.get("log_zero_guard_value", 2**-24),
        mag_power=float(cfg.get("mag_power", 2.0)),
        pad_to=int(pad_to or 0),
        pad_value=float(cfg.get("pad_value", 0.0)),
        exact_pad=exact_pad,
        lowfreq=float(cfg.get("lowfreq", 0) or 0),
        highfreq=None if cfg.get("highfreq") is None else float(cfg["highfreq"]),
        mel_norm=cfg.get("mel_norm", "slaney"),
    )


def parse_encoder(cfg: dict[str, Any]) -> EncoderConfig:
    target = _target(cfg)
    if not target.endswith("ConformerEncoder"):
        raise UnsupportedModelError(
            f"encoder is {_short(target)}; only FastConformer (ConformerEncoder) encoders are supported"
        )
    subsampling = cfg.get("subsampling", "striding")
    if subsampling != "dw_striding":
        raise UnsupportedModelError(
            f"encoder.subsampling={subsampling!r}; only FastConformer's 'dw_striding' is supported"
        )
    factor = _int(cfg.get("subsampling_factor", 4), "encoder.subsampling_factor")
    if factor < 2 or factor & (factor - 1):
        raise UnsupportedModelError(f"encoder.subsampling_factor={factor} is not a power of two")
    attn = cfg.get("self_attention_model", "rel_pos")
    if attn != "rel_pos":
        raise UnsupportedModelError(
            f"encoder.self_attention_model={attn!r}; only full-context 'rel_pos' is supported"
        )
    ctx = cfg.get("att_context_size") or [-1, -1]
    if list(ctx) not in ([-1, -1],) and not (isinstance(ctx[0], list) and list(ctx[0]) == [-1, -1]):
        raise UnsupportedModelError(
            f"encoder.att_context_size={list(ctx)}; only unlimited context [-1, -1] is supported"
        )
    style = cfg.get("att_context_style", "regular")
    if style != "regular" and list(ctx) != [-1, -1]:
        raise UnsupportedModelError(f"encoder.att_context_style={style!r} is not supported")
    for key in ("causal_downsampling", "reduction"):
        if cfg.get(key):
            raise UnsupportedModelError(f"encoder.{key}={cfg[key]!r} is not supported")
    if (cfg.get("feat_out") or -1) > 0:
        raise UnsupportedModelError("encoder.feat_out (an output projection) is not supported")
    if cfg.get("conv_context_size") not in (None, "None"):
        raise UnsupportedModelError(
            f"encoder.conv_context_size={cfg.get('conv_context_size')!r}; only symmetric is supported"
        )
    if cfg.get("global_tokens", 0):
        raise UnsupportedModelError("encoder.global_tokens is not supported")
    norm = cfg.get("conv_norm_type", "batch_norm")
    if norm not in ("batch_norm", "layer_norm"):
        raise UnsupportedModelError(f"encoder.conv_norm_type={norm!r} is not supported")
    d_model = _int(cfg["d_model"], "encoder.d_model")
    channels = _int(cfg.get("subsampling_conv_channels", -1), "encoder.subsampling_conv_channels")
    return EncoderConfig(
        feat_in=_int(cfg["feat_in"], "encoder.feat_in"),
        n_layers=_int(cfg["n_layers"], "encoder.n_layers"),
        d_model=d_model,
        n_heads=_int(cfg.get("n_heads", 4), "encoder.n_heads"),
        ff_expansion_factor=_int(cfg.get("ff_expansion_factor", 4), "encoder.ff_expansion_factor"),
        subsampling_factor=factor,
        subsampling_conv_channels=d_model if channels == -1 else channels,
        conv_kernel_size=_int(cfg.get("conv_kernel_size", 31), "encoder.conv_kernel_size"),
        conv_norm_type=norm,
        use_bias=bool(cfg.get("use_bias", True)),
        xscaling=bool(cfg.get("xscaling", True)),
        untie_biases=bool(cfg.get("untie_biases", True)),
        pos_emb_max_len=_int(cfg.get("pos_emb_max_len", 5000), "encoder.pos_emb_max_len"),
    )


def parse_model_config(raw: dict[str, Any]) -> ModelConfig:
    """Validate a NeMo model config and turn it into a :class:`ModelConfig`."""
    cfg = resolve_interpolations(raw)
    target = str(cfg.get("target") or cfg.get("_target_") or "")
    name = _short(target) if target else "an unnamed model"
    decoder = cfg.get("decoder") or {}
    joint = cfg.get("joint") or {}
    dec_target = _target(decoder)
    if not joint or not dec_target.endswith("RNNTDecoder"):
        found = f"decoder {_short(dec_target)}" + ("" if joint else ", no joint network")
        raise UnsupportedModelError(
            f"{name} is not a transducer ({found}); only TDT or RNNT Parakeet models are supported"
        )
    if "encoder" not in cfg or "preprocessor" not in cfg:
        raise UnsupportedModelError(f"{name} has no encoder/preprocessor section")
    preprocessor = parse_preprocessor(cfg["preprocessor"])
    encoder = parse_encoder(cfg["encoder"])
    if encoder.feat_in != preprocessor.features:
        raise UnsupportedModelError(
            f"encoder.feat_in={encoder.feat_in} does not match preprocessor features "
            f"{preprocessor.features}"
        )

    prednet = decoder.get("prednet") or {}
    if decoder.get("normalization_mode"):
        raise UnsupportedModelError(
            f"decoder.normalization_mode={decoder['normalization_mode']!r} is not supported"
        )
    if not decoder.get("blank_as_pad", True):
        raise UnsupportedModelError("decoder.blank_as_pad=false is not supported")
    rnn_hidden = prednet.get("rnn_hidden_size", -1) or -1
    pred_hidden = _int(prednet.get("pred_hidden"), "decoder.prednet.pred_hidden")
    if rnn_hidden > 0 and rnn_hidden != pred_hidden:
        raise UnsupportedModelError("decoder.prednet.rnn_hidden_size != pred_hidden is not supported")
    dec = DecoderConfig(
        vocab_size=_int(decoder.get("vocab_size"), "decoder.vocab_size"),
        pred_hidden=pred_hidden,
        pred_rnn_layers=_int(prednet.get("pred_rnn_layers", 1), "decoder.prednet.pred_rnn_layers"),
    )

    jointnet = joint.get("jointnet") or {}
    activation = str(jointnet.get("activation", "relu")).lower()
    if activation not in ("relu", "sigmoid", "tanh"):
        raise UnsupportedModelError(f"joint activation {activation!r} is not supported")
    extra = _int(joint.get("num_extra_outputs", 0) or 0, "joint.num_extra_outputs")
    num_classes = joint.get("num_classes")
    if num_classes is not None and _int(num_classes, "joint.num_classes") != dec.vocab_size:
        raise UnsupportedModelError(
            f"joint.num_classes={num_classes} differs from decoder.vocab_size={dec.vocab_size}"
        )
    jnt = JointConfig(
        joint_hidden=_int(jointnet.get("joint_hidden"), "joint.jointnet.joint_hidden"),
        activation=activation,
        dropout=float(jointnet.get("dropout", 0.0) or 0.0),
        num_extra_outputs=extra,
    )

    decoding = cfg.get("decoding") or {}
    loss = cfg.get("loss") or {}
    durations = (
        decoding.get("durations")
        or (cfg.get("model_defaults") or {}).get("tdt_durations")
        or (loss.get("tdt_kwargs") or {}).get("durations")
        or []
    )
    durations = tuple(int(d) for d in durations)
    model_type = str(decoding.get("model_type", "tdt" if extra else "rnnt")).lower()
    if extra == 0:
        model_type, durations = "rnnt", ()
    elif model_type != "tdt" or len(durations) != extra:
        raise UnsupportedModelError(
            f"joint has {extra} extra outputs but the config gives TDT durations {list(durations)} "
            f"(model_type {model_type!r}); multi-blank and other extra-output models are not supported"
        )
    if durations and min(durations) < 0:
        raise UnsupportedModelError(f"TDT durations {list(durations)} are invalid")
    greedy = decoding.get("greedy") or {}
    max_symbols = greedy.get("max_symbols", greedy.get("max_symbols_per_step", 10)) or 10

    tok = cfg.get("tokenizer") or {}
    tok_path = str(tok.get("model_path") or "tokenizer.model")
    if not tok or str(tok.get("type", "bpe")).lower() not in ("bpe", "spe", "sentencepiece"):
        raise UnsupportedModelError(
            f"{name} has no SentencePiece tokenizer (tokenizer: {tok or 'missing'}); "
            "character-vocabulary and aggregate tokenizers are not supported"
        )
    member = tok_path[len("nemo:"):] if tok_path.startswith("nemo:") else tok_path.rsplit("/", 1)[-1]

    ignored: tuple[str, ...] = ()
    if "aux_ctc" in cfg or "Hybrid" in target:
        ignored = ("ctc_decoder.",)  # hybrid TDT-CTC: we run the transducer branch only
    return ModelConfig(
        preprocessor=preprocessor,
        encoder=encoder,
        decoder=dec,
        joint=jnt,
        model_type=model_type,
        durations=durations,
        max_symbols=int(max_symbols),
        tokenizer_member=member,
        target=target,
        ignored_prefixes=ignored,
    )
