#!/usr/bin/env python
"""Regenerate the committed test and demo audio from espeak-ng (real, if robotic, English speech).

Run from the repository root::

    apt-get install -y espeak-ng          # 1.51 was used for the committed files
    uv run python scripts/make_test_audio.py

Nothing at test time needs espeak-ng: the outputs are committed. Noise and silence are not
committed; tests make them with numpy from fixed seeds.

How every file is made (all deterministic for a given espeak-ng / soxr / libsndfile):

1. ``espeak-ng -v VOICE -s SPEED -p PITCH -w raw.wav TEXT`` renders 22,050 Hz mono PCM16.
2. Leading and trailing silence is cut (first/last sample above 1% of full scale), the
   speech is resampled with ``soxr`` (quality "VHQ") to the target rate, then padded with
   ``PAD_S`` of digital silence on both sides and peak-normalised to ``PEAK`` (0.7) of full
   scale.
3. Quantised to int16 (round(x * 32768)) and written with soundfile as PCM16 WAV (FLAC
   PCM16 / OGG Vorbis where named).

Files (voice, speed in words per minute, pitch, text):

``src/parakeet_coreml/data/speech_15s.wav``
    16 kHz mono PCM16, exactly 15.0 s (240,000 samples): voice ``en-us``, speed 175, pitch 50,
    the passage ``PASSAGE`` below; speech starts after 0.25 s and the rest is zero padding.
``src/parakeet_coreml/data/speech_short.wav``
    16 kHz mono PCM16, about 3.5 s: ``en-us``, speed 175, pitch 50, ``SHORT``.
``tests/fixtures/audio/`` (``texts.json`` records the text, voice and format of each):
    ``clip_a.wav``   16 kHz mono, ``en-us``      speed 160 pitch 50
    ``clip_b.wav``   16 kHz mono, ``en-gb+f3``   speed 150 pitch 60 (female variant)
    ``clip_c.wav``   16 kHz mono, ``en-us+m3``   speed 175 pitch 40
    ``stereo_44k.wav`` 44.1 kHz stereo PCM16, the clip_c utterance: left channel is the speech,
                   right channel is the same speech at 0.5 gain delayed by 1 ms (so a
                   downmix is not just either channel)
    ``clip_8k.wav``  8 kHz mono PCM16, the clip_a utterance
    ``clip_b.flac``  16 kHz mono FLAC (PCM16), the clip_b utterance (samples equal clip_b.wav)
    ``clip_a.ogg``   16 kHz mono OGG Vorbis (lossy), the clip_a utterance; its bytes change on
                   every run (libsndfile picks a random Ogg stream serial number), the
                   decoded samples do not
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "src" / "parakeet_coreml" / "data"
FIXTURES = ROOT / "tests" / "fixtures" / "audio"

ESPEAK_RATE = 22050
PAD_S = 0.25
PEAK = 0.7

PASSAGE = (
    "The history of speech recognition begins in the early nineteen fifties. "
    "Early systems could understand only a few digits spoken by a single voice. "
    "Today, neural networks transcribe hours of conversation in many languages, "
    "and they run on the phone in your pocket."
)
SHORT = "Speech recognition turns spoken words into written text."

CLIPS = {
    # name: (voice, speed, pitch, text)
    "clip_a": ("en-us", 160, 50, "The quick brown fox jumps over the lazy dog."),
    "clip_b": ("en-gb+f3", 150, 60, "Please call Stella at nine o'clock."),
    "clip_c": ("en-us+m3", 175, 40, "How much wood would a woodchuck chuck?"),
}


def espeak(text: str, voice: str, speed: int, pitch: int) -> np.ndarray:
    """espeak-ng's 22,050 Hz mono rendering of ``text`` as float32 in [-1, 1]."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        sys.exit("espeak-ng is not installed (apt-get install -y espeak-ng)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "raw.wav"
        subprocess.run(
            [exe, "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(out), text],
            check=True,
        )
        audio, sr = sf.read(out, dtype="float32", always_2d=False)
    if sr != ESPEAK_RATE:
        raise RuntimeError(f"espeak-ng wrote {sr} Hz, expected {ESPEAK_RATE}")
    return audio


def trim(audio: np.ndarray, threshold: float = 0.01) -> np.ndarray:
    loud = np.flatnonzero(np.abs(audio) > threshold)
    return audio[loud[0] : loud[-1] + 1]


def render(text: str, voice: str, speed: int, pitch: int, rate: int) -> np.ndarray:
    """Trimmed speech at ``rate`` with ``PAD_S`` of silence both sides, peak ``PEAK``."""
    speech = trim(espeak(text, voice, speed, pitch)).astype(np.float64)
    speech = soxr.resample(speech, ESPEAK_RATE, rate, quality="VHQ")
    speech = speech * (PEAK / np.max(np.abs(speech)))
    pad = np.zeros(round(PAD_S * rate))
    return np.concatenate([pad, speech, pad]).astype(np.float32)


def write(path: Path, audio: np.ndarray, rate: int, fmt: str = "WAV", subtype: str = "PCM_16"):
    path.parent.mkdir(parents=True, exist_ok=True)
    if subtype == "PCM_16":  # quantise here, so WAV and FLAC hold the very same integers
        audio = np.clip(np.round(np.asarray(audio, np.float64) * 32768.0), -32768, 32767)
        audio = audio.astype(np.int16)
    sf.write(path, audio, rate, format=fmt, subtype=subtype)
    info = sf.info(path)
    print(
        f"{path.relative_to(ROOT)}: {info.samplerate} Hz, {info.channels} ch, "
        f"{info.frames} frames ({info.duration:.3f} s), {path.stat().st_size} bytes"
    )


def main() -> None:
    # --- demo / benchmark audio
    rate, total = 16000, 240_000
    speech = render(PASSAGE, "en-us", 175, 50, rate)
    if len(speech) > total:
        raise SystemExit(f"passage is {len(speech) / rate:.2f} s with padding; must fit in 15 s")
    write(DATA / "speech_15s.wav", np.pad(speech, (0, total - len(speech))), rate)
    write(DATA / "speech_short.wav", render(SHORT, "en-us", 175, 50, rate), rate)

    # --- test fixtures (start from an empty folder so nothing stale survives)
    for old in FIXTURES.glob("*"):
        if old.suffix in (".wav", ".flac", ".ogg", ".json"):
            old.unlink()
    texts: dict[str, dict] = {}
    rendered: dict[str, np.ndarray] = {}
    for name, (voice, speed, pitch, text) in CLIPS.items():
        rendered[name] = render(text, voice, speed, pitch, 16000)
        write(FIXTURES / f"{name}.wav", rendered[name], 16000)
        texts[f"{name}.wav"] = {
            "text": text,
            "voice": voice,
            "speed": speed,
            "pitch": pitch,
            "sample_rate": 16000,
            "channels": 1,
            "format": "WAV PCM_16",
        }

    voice, speed, pitch, text = CLIPS["clip_c"]
    left = render(text, voice, speed, pitch, 44100)
    delay = 44  # 1 ms at 44.1 kHz
    right = 0.5 * np.concatenate([np.zeros(delay, np.float32), left[:-delay]])
    write(FIXTURES / "stereo_44k.wav", np.stack([left, right], axis=1), 44100)
    texts["stereo_44k.wav"] = {
        "text": text,
        "voice": voice,
        "speed": speed,
        "pitch": pitch,
        "sample_rate": 44100,
        "channels": 2,
        "format": "WAV PCM_16",
        "source": "clip_c",
        "note": "left = speech, right = 0.5 * speech delayed by 44 samples (1 ms)",
    }

    voice, speed, pitch, text = CLIPS["clip_a"]
    write(FIXTURES / "clip_8k.wav", render(text, voice, speed, pitch, 8000), 8000)
    texts["clip_8k.wav"] = {
        "text": text,
        "voice": voice,
        "speed": speed,
        "pitch": pitch,
        "sample_rate": 8000,
        "channels": 1,
        "format": "WAV PCM_16",
        "source": "clip_a",
    }

    voice, speed, pitch, text = CLIPS["clip_b"]
    write(FIXTURES / "clip_b.flac", rendered["clip_b"], 16000, "FLAC", "PCM_16")
    texts["clip_b.flac"] = {
        "text": text,
        "voice": voice,
        "speed": speed,
        "pitch": pitch,
        "sample_rate": 16000,
        "channels": 1,
        "format": "FLAC PCM_16",
        "source": "clip_b",
        "note": "lossless: samples equal clip_b.wav",
    }

    voice, speed, pitch, text = CLIPS["clip_a"]
    write(FIXTURES / "clip_a.ogg", rendered["clip_a"], 16000, "OGG", "VORBIS")
    texts["clip_a.ogg"] = {
        "text": text,
        "voice": voice,
        "speed": speed,
        "pitch": pitch,
        "sample_rate": 16000,
        "channels": 1,
        "format": "OGG VORBIS",
        "source": "clip_a",
        "note": "lossy: close to clip_a.wav, not equal",
    }

    (FIXTURES / "texts.json").write_text(json.dumps(texts, indent=2) + "\n")
    size = sum(p.stat().st_size for p in FIXTURES.iterdir())
    print(f"tests/fixtures/audio: {size} bytes in all")


if __name__ == "__main__":
    main()
