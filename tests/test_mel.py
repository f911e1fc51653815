"""Mel front end buffers and framing against librosa and torch, with NeMo's settings.

NeMo's ``FilterbankFeatures`` builds its filterbank with ``librosa.filters.mel(sr, n_fft,
n_mels, fmin=lowfreq, fmax=highfreq or sr / 2, norm=mel_norm)`` (librosa's default
``htk=False``: the Slaney mel scale) and its window with ``torch.<name>_window(win_length,
periodic=False)``. Synthetic checkpoints carry the buffers our ``FilterbankFeatures`` builds,
so those must be the same numbers.
"""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from parakeet_coreml.config import PreprocessorConfig
from parakeet_coreml.model.preprocessor import FilterbankFeatures, mel_filterbank

CONFIGS = {
    "v3": PreprocessorConfig(),  # 16 kHz, n_fft 512, 128 mels, Slaney norm, 0 - 8 kHz
    "80mel": PreprocessorConfig(features=80),
    "64mel_nfft1024": PreprocessorConfig(features=64, n_fft=1024, win_length=1024),
    "band_limited": PreprocessorConfig(features=80, lowfreq=20.0, highfreq=7600.0),
    "no_norm": PreprocessorConfig(features=80, mel_norm=None),
    "8khz": PreprocessorConfig(sample_rate=8000, n_fft=256, win_length=200, hop_length=80, features=64),
    "22khz": PreprocessorConfig(sample_rate=22050, n_fft=1024, win_length=1024, hop_length=256, features=80),
}


def librosa_fb(c: PreprocessorConfig) -> np.ndarray:
    """NeMo's call, verbatim: ``highfreq = highfreq or sample_rate / 2``."""
    return librosa.filters.mel(
        sr=c.sample_rate, n_fft=c.n_fft, n_mels=c.features, fmin=c.lowfreq,
        fmax=c.highfreq or c.sample_rate / 2, norm=c.mel_norm,
    )


@pytest.mark.parametrize("name", list(CONFIGS))
def test_filterbank_equals_librosa(name: str) -> None:
    c = CONFIGS[name]
    expected = librosa_fb(c)
    fb = FilterbankFeatures(c).fb
    assert fb.dtype == torch.float32 and tuple(fb.shape) == (1, c.features, c.n_fft // 2 + 1)
    np.testing.assert_allclose(fb[0].numpy(), expected, rtol=1e-6, atol=1e-9)
    # every filter is a non-empty triangle (no mel band falls between two FFT bins)
    assert (expected.max(axis=1) > 0).all()


def test_filterbank_uses_slaney_scale_not_htk() -> None:
    c = CONFIGS["v3"]
    htk = librosa.filters.mel(sr=c.sample_rate, n_fft=c.n_fft, n_mels=c.features, htk=True, norm="slaney")
    assert not np.allclose(mel_filterbank(c.sample_rate, c.n_fft, c.features), htk, rtol=1e-3, atol=1e-6)


def test_zero_highfreq_means_nyquist_as_in_nemo() -> None:
    # NeMo: ``highfreq = highfreq or sample_rate / 2``, so 0 (and None) mean Nyquist.
    c = PreprocessorConfig(features=80, highfreq=0.0)
    np.testing.assert_allclose(FilterbankFeatures(c).fb[0].numpy(), librosa_fb(c), rtol=1e-6, atol=1e-9)


def test_unsupported_norm_is_refused() -> None:
    with pytest.raises(ValueError, match="mel norm"):
        mel_filterbank(16000, 512, 80, norm="bogus")


@pytest.mark.parametrize("window", ["hann", "hamming", "blackman", "bartlett"])
def test_window_is_torchs_symmetric_window(window: str) -> None:
    c = PreprocessorConfig(window=window)
    expected = getattr(torch, f"{window}_window")(c.win_length, periodic=False)
    got = FilterbankFeatures(c).window
    assert got.dtype == torch.float32 and got.shape == (c.win_length,)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    # symmetric: the same as scipy/numpy's textbook window of length win_length
    textbook = {"hann": np.hanning, "hamming": np.hamming, "blackman": np.blackman, "bartlett": np.bartlett}[window]
    np.testing.assert_allclose(got.numpy(), textbook(c.win_length), atol=1e-6)


def test_unknown_window_means_no_window() -> None:
    # NeMo maps 'none' (and any unknown name) to no window, i.e. torch.stft's rectangular one.
    assert FilterbankFeatures(PreprocessorConfig(window="none")).window is None


@pytest.mark.parametrize("name", ["v3", "8khz"])
def test_power_spectrum_equals_librosa_stft(name: str) -> None:
    # Independent framing check: centred frames, zero padding, the window zero-padded to n_fft.
    c = CONFIGS[name]
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(c.sample_rate // 2 + 37)).astype(np.float32)
    feats = FilterbankFeatures(c)
    ours = feats.power_spectrum(torch.from_numpy(x)[None])[0].numpy()
    window = np.hanning(c.win_length).astype(np.float32)
    ref = np.abs(
        librosa.stft(x, n_fft=c.n_fft, hop_length=c.hop_length, win_length=c.win_length, window=window,
                     center=True, pad_mode="constant")
    ) ** 2
    assert ours.shape == ref.shape == (c.n_fft // 2 + 1, len(x) // c.hop_length + 1)
    np.testing.assert_allclose(ours, ref, rtol=2e-4, atol=1e-6 * ref.max())


def test_log_mel_of_a_tone_peaks_in_the_tones_band() -> None:
    # A 1 kHz tone: the strongest mel channel is the filter whose peak is nearest 1 kHz
    # (librosa.mel_frequencies gives the filters' centre frequencies).
    c = CONFIGS["v3"]
    t = np.arange(c.sample_rate) / c.sample_rate
    x = torch.from_numpy((0.5 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32))[None]
    c_raw = PreprocessorConfig(normalize=None, preemph=None)
    mel, _ = FilterbankFeatures(c_raw)(x, torch.tensor([x.shape[1]]))
    centres = librosa.mel_frequencies(n_mels=c.features + 2, fmin=0.0, fmax=c.sample_rate / 2)[1:-1]
    frame = mel[0, :, mel.shape[2] // 2]
    assert int(frame.argmax()) == int(np.argmin(np.abs(centres - 1000.0)))
