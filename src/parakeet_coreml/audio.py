"""Audio loading: what soundfile reads, downmixed to mono and resampled with soxr.

NeMo reads audio with soundfile as float32, averages channels and resamples with librosa's
default ``soxr_hq``; we do the same with soxr directly, so transcripts agree on any input
format, not only 16 kHz mono WAV.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import AudioError

# Full attention costs O(T^2) memory and time; beyond this the toolkit refuses rather than
# crawling. Five minutes is 3,750 encoder frames for Parakeet (about 2 GiB of attention
# scores on CPU). Windowed long-audio transcription is planned, not built yet.
MAX_AUDIO_SECONDS = 300.0


@dataclass
class Audio:
    samples: np.ndarray  # float32 mono at ``sample_rate``
    sample_rate: int
    source_rate: int
    source_channels: int

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.sample_rate


def load_audio(path: str | Path, sample_rate: int) -> Audio:
    """Read ``path``, downmix to mono, resample to ``sample_rate``; one clear error otherwise."""
    import soundfile as sf

    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a folder, not an audio file")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises LibsndfileError, RuntimeError, TypeError
        raise AudioError(f"{path}: cannot read audio ({str(e).strip() or type(e).__name__})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{path}: audio is empty (0 samples)")
    channels = data.shape[1]
    mono = data.mean(axis=1, dtype=np.float32) if channels > 1 else data[:, 0]
    if not np.all(np.isfinite(mono)):
        raise AudioError(f"{path}: audio contains NaN or infinite samples")
    if rate != sample_rate:
        import soxr

        mono = soxr.resample(mono, rate, sample_rate, quality="HQ").astype(np.float32)
    return Audio(np.ascontiguousarray(mono, dtype=np.float32), sample_rate, int(rate), channels)


def check_length(name: str, num_samples: int, sample_rate: int, min_samples: int) -> None:
    """Refuse audio too short for the front end or too long for full attention."""
    seconds = num_samples / sample_rate
    if num_samples < min_samples:
        raise AudioError(
            f"{name}: {num_samples} samples ({1000 * seconds:.1f} ms) is too short; at least "
            f"{min_samples} samples ({1000 * min_samples / sample_rate:.1f} ms) are needed"
        )
    if seconds > MAX_AUDIO_SECONDS:
        raise AudioError(
            f"{name}: {seconds:.1f} s is longer than the {MAX_AUDIO_SECONDS:.0f} s limit; "
            "split the audio (long-audio chunking is not supported yet)"
        )
