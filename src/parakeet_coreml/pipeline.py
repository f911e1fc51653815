"""Transcription through exported packages, the way an app on device runs them.

preprocessor -> encoder (or the fused mel_encoder) once per window, then the greedy loop with
the decoder package (explicit LSTM state) and ``joint_decision_single_step`` per frame: on a
blank only the joint runs again with the cached decoder output (FluidAudio's loop).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .audio import check_length, load_audio
from .config import ModelConfig
from .decoding import Transcript, greedy_decode, to_transcript
from .errors import AudioError, ParakeetError
from .export.convert import METADATA_FILE, TOKENIZER_FILE, VOCAB_FILE
from .export.package import read_json
from .runtime import Runtime, load_runtime
from .tokenizer import PieceTokenizer, Tokenizer


@dataclass
class PackageState:
    decoder: np.ndarray  # [1, H, 1]
    h: np.ndarray
    c: np.ndarray


class PackageSteps:
    """:class:`~parakeet_coreml.decoding.DecodeSteps` over the decoder and single-step joint."""

    def __init__(self, decoder: Runtime, joint: Runtime, encoder_out: np.ndarray, blank_id: int):
        self.decoder, self.joint = decoder, joint
        self.encoder = np.ascontiguousarray(encoder_out, dtype=np.float32)  # [1, D, T]
        self.blank_id = blank_id
        self.state_shape = next(s.shape for s in decoder.inputs if s.name == "h_in")
        self.has_duration = any(s.name == "duration" for s in joint.outputs)
        self.calls = {"decoder": 0, "joint": 0}

    def _run(self, token: int, h: np.ndarray, c: np.ndarray) -> PackageState:
        self.calls["decoder"] += 1
        out = self.decoder.predict({
            "targets": np.array([[token]], dtype=np.int32),
            "target_length": np.array([1], dtype=np.int32),
            "h_in": h,
            "c_in": c,
        })
        return PackageState(out["decoder"], out["h_out"], out["c_out"])

    def start(self) -> PackageState:
        zeros = np.zeros(self.state_shape, dtype=np.float32)
        return self._run(self.blank_id, zeros, zeros.copy())

    def predict(self, token: int, state: PackageState) -> PackageState:
        return self._run(token, state.h, state.c)

    def decide(self, frame: int, state: PackageState) -> tuple[int, int]:
        self.calls["joint"] += 1
        out = self.joint.predict({
            "encoder_step": self.encoder[:, :, frame : frame + 1],
            "decoder_step": state.decoder,
        })
        token = int(out["token_id"].reshape(-1)[0])
        return token, int(out["duration"].reshape(-1)[0]) if self.has_duration else 0


class PackageSet:
    """The packages of one output folder, opened lazily with one runtime kind."""

    def __init__(self, model_dir: str | Path, runtime: str = "auto", compute_units: str = "ALL"):
        self.dir = Path(model_dir)
        self.metadata = read_json(self.dir / METADATA_FILE)
        if not self.metadata.get("components"):
            raise ParakeetError(f"{self.dir}: no {METADATA_FILE} with components (not a convert output folder)")
        self.model = self.metadata["model"]
        self.runtime_kind, self.compute_units = runtime, compute_units
        self._runtimes: dict[str, Runtime] = {}
        tok = self.dir / TOKENIZER_FILE
        if tok.exists():
            self.tokenizer: Tokenizer | PieceTokenizer = Tokenizer.from_file(tok)
        else:
            self.tokenizer = PieceTokenizer.from_vocab_json(self.dir / VOCAB_FILE)

    @property
    def components(self) -> dict[str, Any]:
        return self.metadata["components"]

    def path(self, component: str) -> Path:
        if component not in self.components:
            raise ParakeetError(f"{self.dir}: has no {component} package (convert it first)")
        return self.dir / self.components[component]["file"]

    def runtime(self, component: str) -> Runtime:
        if component not in self._runtimes:
            self._runtimes[component] = load_runtime(self.path(component), self.runtime_kind, self.compute_units)
        return self._runtimes[component]

    def window_inputs(self, samples: np.ndarray, name: str = "audio") -> dict[str, np.ndarray]:
        n = int(self.model["window_samples"])
        if len(samples) > n:
            raise AudioError(
                f"{name}: {len(samples) / self.model['sample_rate']:.2f} s is longer than the packages' "
                f"{self.model['window_seconds']:g} s window (long-audio chunking is not supported yet)"
            )
        audio = np.zeros((1, n), dtype=np.float32)
        audio[0, : len(samples)] = samples
        return {"audio_signal": audio, "audio_length": np.array([len(samples)], dtype=np.int32)}

    def encode(self, samples: np.ndarray, fused: bool = False, name: str = "audio") -> tuple[np.ndarray, int]:
        """Encoder output [1, D, T] and valid frames for one window of samples."""
        inputs = self.window_inputs(samples, name)
        if fused:
            out = self.runtime("mel_encoder").predict(inputs)
        else:
            mel = self.runtime("preprocessor").predict(inputs)
            out = self.runtime("encoder").predict({"mel": mel["mel"], "mel_length": mel["mel_length"]})
        return out["encoder"], int(out["encoder_length"].reshape(-1)[0])

    def steps(self, encoder_out: np.ndarray) -> PackageSteps:
        return PackageSteps(
            self.runtime("decoder"), self.runtime("joint_decision_single_step"), encoder_out, int(self.model["blank_id"])
        )

    def transcribe_samples(self, samples: np.ndarray, cfg: ModelConfig | None = None, fused: bool = False,
                           name: str = "audio") -> Transcript:
        check_length(name, len(samples), int(self.model["sample_rate"]), int(self.model["min_audio_samples"]))
        enc, frames = self.encode(samples, fused, name)
        tokens = greedy_decode(
            self.steps(enc), frames, int(self.model["blank_id"]), tuple(self.model["durations"]),
            int(self.model["max_symbols_per_frame"]),
        )
        return to_transcript(tokens, self.tokenizer, cfg or self.config_view())

    def transcribe_file(self, path: str | Path, fused: bool = False) -> tuple[float, Transcript]:
        audio = load_audio(path, int(self.model["sample_rate"]))
        return audio.seconds, self.transcribe_samples(audio.samples, fused=fused, name=str(path))

    def config_view(self) -> ModelConfig:
        """Enough of a ModelConfig for timestamps, rebuilt from metadata.json."""
        from dataclasses import replace

        from .config import DecoderConfig, EncoderConfig, JointConfig, PreprocessorConfig

        m = self.model
        return replace(
            ModelConfig(),
            preprocessor=PreprocessorConfig(
                sample_rate=int(m["sample_rate"]), hop_length=int(m["hop_length"]), features=m["mel_features"]
            ),
            encoder=EncoderConfig(subsampling_factor=int(m["subsampling_factor"]), d_model=m["encoder_hidden"]),
            decoder=DecoderConfig(vocab_size=m["vocab_size"], pred_hidden=m["decoder_hidden"], pred_rnn_layers=m["decoder_layers"]),
            joint=JointConfig(joint_hidden=m["joint_hidden"], num_extra_outputs=len(m["durations"])),
            model_type=m["model_type"],
            durations=tuple(m["durations"]),
            max_symbols=m["max_symbols_per_frame"],
        )
