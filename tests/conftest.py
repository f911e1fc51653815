"""Shared test fixtures: committed audio, test-time signals, and NeMo reference checkpoints.

* ``tests/`` is put on ``sys.path`` (pyproject's ``pythonpath`` does the same under pytest)
  so helper modules import as ``from nemo_models import ...``.
* The toolkit's own checkpoint/export fixtures (``tiny_nemo``, ``tiny_ckpt``, ...) live in
  ``core_fixtures.py`` and are registered here.
* NeMo is imported only by the fixtures that need it (``nemo_checkpoints`` and friends);
  tests that use them are marked ``nemo`` (deselect with ``-m "not nemo"``) and are skipped
  when ``nemo-toolkit[asr]`` is not installed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

# The toolkit's own fixtures (tiny_nemo, tiny_ckpt, tiny_export_fp32, tiny_export_fp16).
from core_fixtures import *
from nemo_models import VARIANTS, NemoVariant, silence, tone, white_noise

ROOT = TESTS.parent
AUDIO_DIR = TESTS / "fixtures" / "audio"
DATA_DIR = ROOT / "src" / "parakeet_coreml" / "data"
SPEECH_CLIPS = ("clip_a", "clip_b", "clip_c")  # 16 kHz mono PCM16 WAV speech
NEMO_SEED = 0

_NEMO_FIXTURES = {"nemo_checkpoints", "nemo_reference_for"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "nemo: needs nemo-toolkit[asr] (NeMo is the reference)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _NEMO_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.nemo)


# --------------------------------------------------------------------------------------
# Audio
# --------------------------------------------------------------------------------------


def load_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """(float32 samples, sample rate); multichannel files come back [frames, channels]."""
    import soundfile as sf

    audio, sr = sf.read(str(path), dtype="float32", always_2d=False)
    return audio, sr


@pytest.fixture(scope="session")
def audio_dir() -> Path:
    """``tests/fixtures/audio``: see ``texts.json`` there and ``scripts/make_test_audio.py``."""
    return AUDIO_DIR


@pytest.fixture(scope="session")
def audio_texts() -> dict[str, dict[str, Any]]:
    """File name -> {text, voice, speed, pitch, sample_rate, channels, format, [source]}."""
    return json.loads((AUDIO_DIR / "texts.json").read_text())


@pytest.fixture(scope="session")
def speech_paths() -> dict[str, Path]:
    """The 16 kHz mono speech clips plus the demo audio, by name.

    ``clip_a``/``clip_b``/``clip_c`` (1.5-4 s, three voices), ``speech_short`` (one sentence)
    and ``speech_15s`` (exactly 240,000 samples).
    """
    paths = {name: AUDIO_DIR / f"{name}.wav" for name in SPEECH_CLIPS}
    paths["speech_short"] = DATA_DIR / "speech_short.wav"
    paths["speech_15s"] = DATA_DIR / "speech_15s.wav"
    return paths


@pytest.fixture(scope="session")
def speech_audio(speech_paths: dict[str, Path]) -> dict[str, np.ndarray]:
    """The same clips loaded as float32 16 kHz mono arrays."""
    out = {}
    for name, path in speech_paths.items():
        audio, sr = load_audio(path)
        assert sr == 16000 and audio.ndim == 1, (path, sr, audio.shape)
        out[name] = audio
    return out


@pytest.fixture(scope="session")
def format_paths() -> dict[str, Path]:
    """Clips in other formats: ``stereo_44k`` (WAV, 44.1 kHz, 2 ch; clip_c's words),
    ``clip_8k`` (WAV, 8 kHz; clip_a's words), ``flac`` (clip_b, lossless), ``ogg`` (clip_a,
    Vorbis)."""
    return {
        "stereo_44k": AUDIO_DIR / "stereo_44k.wav",
        "clip_8k": AUDIO_DIR / "clip_8k.wav",
        "flac": AUDIO_DIR / "clip_b.flac",
        "ogg": AUDIO_DIR / "clip_a.ogg",
    }


@pytest.fixture(scope="session")
def make_noise() -> Callable[..., np.ndarray]:
    """``make_noise(seconds, seed=0, level=0.1, sample_rate=16000)``: float32 white noise."""
    return white_noise


@pytest.fixture(scope="session")
def make_silence() -> Callable[..., np.ndarray]:
    """``make_silence(seconds, sample_rate=16000)``: float32 zeros."""
    return silence


@pytest.fixture(scope="session")
def make_tone() -> Callable[..., np.ndarray]:
    """``make_tone(seconds, freq=440.0, level=0.3, sample_rate=16000)``: float32 sine."""
    return tone


# --------------------------------------------------------------------------------------
# NeMo reference checkpoints
# --------------------------------------------------------------------------------------


class NemoCheckpoint(NamedTuple):
    """A variant built by NeMo: the saved ``.nemo`` and the in-memory model it came from."""

    path: Path
    model: Any  # nemo.collections.asr.models.EncDecRNNTBPEModel, eval mode, CPU

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def variant(self) -> NemoVariant:
        return VARIANTS[self.path.stem]


@pytest.fixture(scope="session")
def nemo_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, NemoCheckpoint]:
    """Every variant in ``nemo_models.VARIANTS``, built by NeMo (seed 0) and saved as
    ``<name>.nemo``; name -> ``NemoCheckpoint(path, model)``. Built once per session."""
    pytest.importorskip("nemo.collections.asr", reason="nemo-toolkit[asr] is not installed")
    from nemo_models import build_nemo_model, save_nemo

    root = tmp_path_factory.mktemp("nemo_ckpts")
    out: dict[str, NemoCheckpoint] = {}
    for name, variant in VARIANTS.items():
        model = build_nemo_model(variant, root / "work", seed=NEMO_SEED)
        out[name] = NemoCheckpoint(save_nemo(model, root / f"{name}.nemo"), model)
    return out


@pytest.fixture(scope="session")
def nemo_reference_for(
    nemo_checkpoints: dict[str, NemoCheckpoint], speech_audio: dict[str, np.ndarray]
) -> Callable[[str, str], dict[str, Any]]:
    """``nemo_reference_for(variant, clip)``: ``nemo_models.nemo_reference`` of the in-memory
    NeMo model on a named clip from ``speech_audio``, computed once and cached."""
    from nemo_models import nemo_reference

    cache: dict[tuple[str, str], dict[str, Any]] = {}

    def get(variant: str, clip: str) -> dict[str, Any]:
        key = (variant, clip)
        if key not in cache:
            cache[key] = nemo_reference(nemo_checkpoints[variant].model, speech_audio[clip])
        return cache[key]

    return get
