"""Transcription with the PyTorch reference: audio files in, text and timestamps out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .audio import check_length, load_audio
from .checkpoint import Checkpoint
from .decoding import TorchSteps, Transcript, greedy_decode, to_transcript
from .model import ParakeetModel
from .model.preprocessor import min_samples_for_features


@dataclass
class FileTranscript:
    path: str
    seconds: float
    transcript: Transcript

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "seconds": round(self.seconds, 6), **self.transcript.to_dict()}


class Transcriber:
    """Holds a loaded reference model; reuse it across files to pay loading once."""

    def __init__(self, ckpt: Checkpoint):
        self.ckpt = ckpt
        self.cfg = ckpt.config
        self.model = ParakeetModel.from_checkpoint(ckpt)
        self.min_samples = min_samples_for_features(self.cfg.preprocessor)

    @torch.inference_mode()
    def encode(self, samples: np.ndarray) -> tuple[torch.Tensor, int]:
        audio = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)).unsqueeze(0)
        enc, enc_len = self.model.encode(audio, torch.tensor([audio.shape[1]]))
        return enc[0], int(enc_len[0])

    def transcribe_samples(self, samples: np.ndarray, name: str = "audio") -> Transcript:
        """16 kHz (the model's rate) mono float32 samples -> transcript."""
        check_length(name, len(samples), self.cfg.preprocessor.sample_rate, self.min_samples)
        enc, frames = self.encode(samples)
        tokens = greedy_decode(
            TorchSteps(self.model, enc), frames, self.cfg.blank_id, self.cfg.durations, self.cfg.max_symbols
        )
        return to_transcript(tokens, self.ckpt.tokenizer, self.cfg)

    def transcribe_file(self, path: str | Path) -> FileTranscript:
        audio = load_audio(path, self.cfg.preprocessor.sample_rate)
        return FileTranscript(str(path), audio.seconds, self.transcribe_samples(audio.samples, str(path)))
