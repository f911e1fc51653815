"""Audio input: formats soundfile reads, downmix, resampling, and one clear error for bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from parakeet_coreml.audio import MAX_AUDIO_SECONDS, check_length, load_audio
from parakeet_coreml.errors import AudioError


def _tone(seconds: float, rate: int, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_stereo_is_averaged_to_mono(tmp_path: Path) -> None:
    left, right = _tone(0.5, 16000, 300), _tone(0.5, 16000, 700)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    audio = load_audio(path, 16000)
    assert audio.source_channels == 2
    np.testing.assert_allclose(audio.samples, (left + right) / 2, atol=1e-7)


def test_other_rates_are_resampled_like_librosa_soxr_hq(tmp_path: Path) -> None:
    # Independent reference: librosa (NeMo's resampler, installed with NeMo) with soxr_hq.
    import librosa

    x = _tone(1.0, 44100, 1000) + 0.05 * np.random.default_rng(0).standard_normal(44100).astype(
        np.float32
    )
    path = tmp_path / "cd.flac"
    sf.write(path, x, 44100, subtype="PCM_24")
    audio = load_audio(path, 16000)
    read, _ = sf.read(path, dtype="float32")
    ref = librosa.resample(read, orig_sr=44100, target_sr=16000, res_type="soxr_hq")
    assert audio.source_rate == 44100 and audio.sample_rate == 16000
    assert len(audio.samples) == len(ref) == 16000
    np.testing.assert_allclose(audio.samples, ref, atol=1e-6)


def test_integer_pcm_is_scaled_like_soundfile_float(tmp_path: Path) -> None:
    x = _tone(0.25, 16000)
    path = tmp_path / "pcm16.wav"
    sf.write(path, x, 16000, subtype="PCM_16")
    audio = load_audio(path, 16000)
    np.testing.assert_allclose(audio.samples, np.round(x * 32767) / 32768, atol=2 / 32768)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="nothing.wav: no such file"):
        load_audio(tmp_path / "nothing.wav", 16000)


def test_folder_is_not_audio(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="is a folder"):
        load_audio(tmp_path, 16000)


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("these are not samples")
    with pytest.raises(AudioError, match="notes.wav: cannot read audio"):
        load_audio(path, 16000)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(AudioError, match="empty.wav: audio is empty"):
        load_audio(path, 16000)


def test_non_finite_samples(tmp_path: Path) -> None:
    x = _tone(0.2, 16000)
    x[100] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="nan.wav: audio contains NaN"):
        load_audio(path, 16000)


def test_length_limits() -> None:
    check_length("ok.wav", 320, 16000, 320)
    with pytest.raises(
        AudioError, match=r"short.wav: 319 samples \(19.9 ms\) is too short; at least 320 samples"
    ):
        check_length("short.wav", 319, 16000, 320)
    with pytest.raises(
        AudioError, match=rf"long.wav: .* longer than the {MAX_AUDIO_SECONDS:.0f} s limit"
    ):
        check_length("long.wav", int((MAX_AUDIO_SECONDS + 1) * 16000), 16000, 320)
