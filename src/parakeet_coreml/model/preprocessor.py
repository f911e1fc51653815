"""Log-mel front end, numerically identical to NeMo's ``FilterbankFeatures`` at inference.

Module and buffer names follow NeMo (``preprocessor.featurizer.window`` / ``.fb``) so a
checkpoint's own window and filterbank are loaded rather than recomputed.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..config import PreprocessorConfig

_WINDOWS = {
    "hann": torch.hann_window,
    "hamming": torch.hamming_window,
    "blackman": torch.blackman_window,
    "bartlett": torch.bartlett_window,
}


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz, logarithmic above (librosa's default)."""
    f = np.asanyarray(f, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = f / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, mels)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asanyarray(m, dtype=np.float64)
    f_sp = 200.0 / 3
    freqs = f_sp * m
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), freqs)


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None,
    norm: str | None = "slaney",
) -> np.ndarray:
    """Triangular Slaney mel filters [n_mels, n_fft//2+1], matching ``librosa.filters.mel``.

    Only used to build synthetic checkpoints: real ones carry NeMo's ``fb`` buffer.
    """
    fmax = fmax or sample_rate / 2  # NeMo: ``highfreq or sample_rate / 2`` (0 means Nyquist too)
    fftfreqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sample_rate)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    weights = np.zeros((n_mels, n_fft // 2 + 1), dtype=np.float32)
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    if norm == "slaney":
        weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]
    elif norm is not None:
        raise ValueError(f"mel norm {norm!r} is not supported")
    return weights


def normalize_per_feature(x: torch.Tensor, seq_len: torch.Tensor) -> torch.Tensor:
    """Mean/std over each utterance's valid frames (std with n-1), NeMo's op order."""
    batch, _, max_time = x.shape
    valid = torch.arange(max_time, device=x.device).unsqueeze(0).expand(batch, max_time)
    valid = valid < seq_len.unsqueeze(1)
    mean = torch.where(valid.unsqueeze(1), x, 0.0).sum(dim=2) / valid.sum(dim=1).unsqueeze(1)
    var_num = torch.sum(torch.where(valid.unsqueeze(1), x - mean.unsqueeze(2), 0.0) ** 2, dim=2)
    std = torch.sqrt(var_num / (valid.sum(dim=1).unsqueeze(1) - 1.0))
    std = std.masked_fill(std.isnan(), 0.0) + 1e-5
    out = (x - mean.unsqueeze(2)) / std.unsqueeze(2)
    return out.masked_fill(~valid.unsqueeze(1), 0.0)


def normalize_all_features(x: torch.Tensor, seq_len: torch.Tensor) -> torch.Tensor:
    """One mean/std per utterance over valid frames (NeMo's ``all_features``)."""
    means, stds = [], []
    for i in range(x.shape[0]):
        v = x[i, :, : int(seq_len[i])]
        means.append(v.mean())
        stds.append(v.std())
    mean = torch.stack(means).view(-1, 1, 1)
    std = (torch.stack(stds) + 1e-5).view(-1, 1, 1)
    return (x - mean) / std


class FilterbankFeatures(nn.Module):
    """Waveform [B, N] float32 + lengths [B] -> log-mel [B, F, T] + valid frames [B]."""

    def __init__(self, cfg: PreprocessorConfig):
        super().__init__()
        self.cfg = cfg
        window_fn = _WINDOWS.get(cfg.window)
        window = window_fn(cfg.win_length, periodic=False, device="cpu") if window_fn else None
        self.register_buffer("window", window)
        fb = mel_filterbank(
            cfg.sample_rate, cfg.n_fft, cfg.features, cfg.lowfreq, cfg.highfreq, cfg.mel_norm
        )
        self.register_buffer("fb", torch.from_numpy(fb).unsqueeze(0))

    def get_seq_len(self, seq_len: torch.Tensor) -> torch.Tensor:
        c = self.cfg
        pad = (c.n_fft - c.hop_length) // 2 * 2 if c.exact_pad else c.n_fft // 2 * 2
        return torch.floor_divide(seq_len + pad - c.n_fft, c.hop_length).to(torch.long)

    def log_guard(self, x: torch.Tensor) -> float:
        value = self.cfg.log_zero_guard_value
        if isinstance(value, str):
            return {"tiny": torch.finfo(x.dtype).tiny, "eps": torch.finfo(x.dtype).eps}[value]
        return float(value)

    def power_spectrum(self, x: torch.Tensor) -> torch.Tensor:
        """|STFT|^mag_power with NeMo's sqrt-then-pow round trip (it changes fp32 bits)."""
        c = self.cfg
        spec = torch.stft(
            x,
            n_fft=c.n_fft,
            hop_length=c.hop_length,
            win_length=c.win_length,
            center=not c.exact_pad,
            window=None if self.window is None else self.window.to(torch.float),
            return_complex=True,
            pad_mode="constant",
        )
        mag = torch.sqrt(torch.view_as_real(spec).pow(2).sum(-1))
        return mag.pow(c.mag_power) if c.mag_power != 1.0 else mag

    def forward(self, x: torch.Tensor, seq_len: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.cfg
        x = x.to(torch.float32)
        seq_len_time = seq_len
        seq_len = torch.where(seq_len == 0, torch.zeros_like(seq_len), self.get_seq_len(seq_len))
        if c.exact_pad:
            pad = (c.n_fft - c.hop_length) // 2
            x = nn.functional.pad(x.unsqueeze(1), (pad, pad), "constant").squeeze(1)
        if c.preemph is not None:
            timemask = torch.arange(x.shape[1], device=x.device).unsqueeze(0) < seq_len_time.unsqueeze(1)
            x = torch.cat((x[:, 0].unsqueeze(1), x[:, 1:] - c.preemph * x[:, :-1]), dim=1)
            x = x.masked_fill(~timemask, 0.0)
        x = self.power_spectrum(x)
        x = torch.matmul(self.fb.to(x.dtype), x)
        if c.log:
            if c.log_zero_guard_type == "add":
                x = torch.log(x + self.log_guard(x))
            else:
                x = torch.log(torch.clamp(x, min=self.log_guard(x)))
        if c.normalize == "per_feature":
            x = normalize_per_feature(x, seq_len)
        elif c.normalize == "all_features":
            x = normalize_all_features(x, seq_len)
        max_len = x.size(-1)
        pad_mask = torch.arange(max_len, device=x.device).repeat(x.size(0), 1) >= seq_len.unsqueeze(1)
        x = x.masked_fill(pad_mask.unsqueeze(1), c.pad_value)
        if c.pad_to > 0 and max_len % c.pad_to:
            x = nn.functional.pad(x, (0, c.pad_to - max_len % c.pad_to), value=c.pad_value)
        return x, seq_len


class AudioToMelSpectrogramPreprocessor(nn.Module):
    """NeMo's wrapper module; exists so state-dict keys read ``preprocessor.featurizer.*``."""

    def __init__(self, cfg: PreprocessorConfig):
        super().__init__()
        self.featurizer = FilterbankFeatures(cfg)

    def forward(self, input_signal: torch.Tensor, length: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.featurizer(input_signal, length)


def min_samples_for_features(cfg: PreprocessorConfig) -> int:
    """Fewest samples that give two valid frames, the least per-feature normalisation allows."""
    pad = (cfg.n_fft - cfg.hop_length) // 2 * 2 if cfg.exact_pad else cfg.n_fft // 2 * 2
    return int(math.ceil(cfg.n_fft - pad + 2 * cfg.hop_length))
