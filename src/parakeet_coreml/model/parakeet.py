"""The whole Parakeet transducer with NeMo's top-level module names."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

from ..checkpoint import Checkpoint
from ..config import ModelConfig
from ..errors import CheckpointError
from .encoder import ConformerEncoder
from .joint import RNNTJoint
from .prediction import RNNTDecoder
from .preprocessor import AudioToMelSpectrogramPreprocessor


@contextlib.contextmanager
def _skip_init() -> Iterator[None]:
    """Make torch.nn.init a no-op while building a model whose weights are about to be loaded.

    Random init of 0.6B parameters costs seconds; the meta device avoids it but drags in
    torch's symbolic-shape machinery on first use, which costs more.
    """
    names = [n for n in dir(torch.nn.init) if n.endswith("_") and not n.startswith("_")]
    saved = {n: getattr(torch.nn.init, n) for n in names}
    try:
        for n in names:
            setattr(torch.nn.init, n, lambda tensor, *a, **k: tensor)
        yield
    finally:
        for n, fn in saved.items():
            setattr(torch.nn.init, n, fn)


class ParakeetModel(nn.Module):
    """preprocessor -> encoder -> (decoder, joint); weights load from NeMo with strict=True."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.preprocessor = AudioToMelSpectrogramPreprocessor(cfg.preprocessor)
        self.encoder = ConformerEncoder(cfg.encoder)
        self.decoder = RNNTDecoder(cfg.decoder)
        self.joint = RNNTJoint(cfg)

    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint) -> "ParakeetModel":
        """Build without random init and adopt the checkpoint's tensors (no copy)."""
        with _skip_init():
            model = cls(ckpt.config)
        model.load_nemo_state_dict(ckpt.state_dict, ckpt.source, assign=True)
        return model.eval()

    def load_nemo_state_dict(
        self, state: dict[str, torch.Tensor], where: str = "checkpoint", assign: bool = False
    ) -> None:
        """Strict load; a mismatch becomes one line naming the keys, not a traceback."""
        ignored = self.cfg.ignored_prefixes
        state = {k: v for k, v in state.items() if not k.startswith(ignored)} if ignored else state
        own = self.state_dict()
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        shapes = [
            f"{k} {tuple(state[k].shape)} vs config {tuple(v.shape)}"
            for k, v in own.items()
            if k in state and tuple(state[k].shape) != tuple(v.shape)
        ]
        if missing or unexpected or shapes:
            parts = []
            if missing:
                parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
            if unexpected:
                parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
            if shapes:
                parts.append(f"{len(shapes)} with other shapes (e.g. {shapes[0]})")
            raise CheckpointError(f"{where}: weights do not fit the config: " + "; ".join(parts))
        self.load_state_dict(state, strict=True, assign=assign)

    @torch.inference_mode()
    def encode(self, audio: torch.Tensor, length: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Waveform [B, N] -> encoder output [B, D, T] and lengths."""
        mel, mel_len = self.preprocessor(audio, length)
        return self.encoder(mel, mel_len)
