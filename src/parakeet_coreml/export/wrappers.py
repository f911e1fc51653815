"""Fixed-shape export modules: one per component, inputs and outputs in contract order.

Each wrapper is also the torch reference of its package (``runtime.torch``), so compare
feeds the same function to torch and to CoreML. Lengths and ids cross the boundary as int32
(CoreML's integer type); inside they are int64 like NeMo's.
"""

from __future__ import annotations

import torch
from torch import nn

from ..contract import Contract
from ..model import ParakeetModel


class PreprocessorExport(nn.Module):
    """audio_signal [1,N], audio_length [1] -> mel [1,F,T], mel_length [1].

    Samples at or past ``audio_length`` are ignored (pre-emphasis masks them and the STFT's
    own centre padding is zeros too), so valid frames equal the reference on the unpadded
    clip.
    """

    def __init__(self, model: ParakeetModel):
        super().__init__()
        self.featurizer = model.preprocessor.featurizer

    def forward(self, audio_signal: torch.Tensor, audio_length: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mel, mel_length = self.featurizer(audio_signal, audio_length.to(torch.long))
        return mel, mel_length.to(torch.int32)


class EncoderExport(nn.Module):
    """mel [1,F,T], mel_length [1] -> encoder [1,D,T'] (channel-major), encoder_length [1]."""

    def __init__(self, model: ParakeetModel):
        super().__init__()
        self.encoder = model.encoder

    def forward(self, mel: torch.Tensor, mel_length: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        encoded, length = self.encoder(mel, mel_length.to(torch.long))
        return encoded, length.to(torch.int32)


class MelEncoderExport(nn.Module):
    """Waveform straight to encoder output: one package, no host round trip for the mel."""

    def __init__(self, model: ParakeetModel):
        super().__init__()
        self.preprocessor = PreprocessorExport(model)
        self.encoder = EncoderExport(model)

    def forward(self, audio_signal: torch.Tensor, audio_length: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mel, mel_length = self.preprocessor(audio_signal, audio_length)
        return self.encoder(mel, mel_length)


class DecoderExport(nn.Module):
    """One prediction-network step: targets [1,1] + state -> decoder [1,H,1] + next state.

    ``target_length`` is part of FluidAudio's contract but does not change a U=1 step; it is
    folded in as ``+ 0 * length`` so the converter keeps the input.
    """

    def __init__(self, model: ParakeetModel):
        super().__init__()
        self.embed = model.decoder.prediction["embed"]
        self.lstm = model.decoder.prediction["dec_rnn"].lstm

    def forward(
        self, targets: torch.Tensor, target_length: torch.Tensor, h_in: torch.Tensor, c_in: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        y = self.embed(targets.to(torch.long)).transpose(0, 1)  # [U=1, B=1, H]
        g, (h, c) = self.lstm(y, (h_in, c_in))
        g = g.transpose(0, 1).transpose(1, 2)  # [1, H, 1]
        g = g + (0 * target_length).to(g.dtype).view(1, 1, 1)
        return g, h, c


class JointExport(nn.Module):
    """encoder [1,D,T], decoder [1,H,1] -> raw logits [1,T,1,O] (no log_softmax: fp16-safe)."""

    def __init__(self, model: ParakeetModel):
        super().__init__()
        self.joint = model.joint

    def forward(self, encoder: torch.Tensor, decoder: torch.Tensor) -> torch.Tensor:
        return self.joint(encoder.transpose(1, 2), decoder.transpose(1, 2))


def decide(logits: torch.Tensor, vocab_plus_blank: int, with_durations: bool) -> tuple[torch.Tensor, ...]:
    """Token id, its softmax probability and (TDT) the duration index from joint logits."""
    tokens = logits[..., :vocab_plus_blank]
    prob, token_id = torch.max(torch.softmax(tokens, dim=-1), dim=-1)
    out: tuple[torch.Tensor, ...] = (token_id.to(torch.int32), prob)
    if with_durations:
        out += (torch.argmax(logits[..., vocab_plus_blank:], dim=-1).to(torch.int32),)
    return out


class JointDecisionExport(nn.Module):
    """Joint + decision for every frame: token_id, token_prob, duration, each [1,T,1]."""

    def __init__(self, model: ParakeetModel):
        super().__init__()
        self.joint = JointExport(model)
        self.vocab_plus_blank = model.cfg.vocab_size + 1
        self.with_durations = bool(model.cfg.durations)

    def forward(self, encoder: torch.Tensor, decoder: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return decide(self.joint(encoder, decoder), self.vocab_plus_blank, self.with_durations)


class JointDecisionSingleStepExport(nn.Module):
    """One frame: decision [1,1,1] outputs plus top-k token ids and logits [1,1,1,K]."""

    def __init__(self, model: ParakeetModel, top_k: int):
        super().__init__()
        self.joint = JointExport(model)
        self.vocab_plus_blank = model.cfg.vocab_size + 1
        self.with_durations = bool(model.cfg.durations)
        self.top_k = top_k

    def forward(self, encoder_step: torch.Tensor, decoder_step: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits = self.joint(encoder_step, decoder_step)
        top_logits, top_ids = torch.topk(logits[..., : self.vocab_plus_blank], self.top_k, dim=-1)
        return decide(logits, self.vocab_plus_blank, self.with_durations) + (
            top_ids.to(torch.int32),
            top_logits,
        )


def build_wrapper(name: str, model: ParakeetModel, contract: Contract) -> nn.Module:
    """The export module for component ``name`` (eval mode)."""
    factories = {
        "preprocessor": lambda: PreprocessorExport(model),
        "encoder": lambda: EncoderExport(model),
        "mel_encoder": lambda: MelEncoderExport(model),
        "decoder": lambda: DecoderExport(model),
        "joint": lambda: JointExport(model),
        "joint_decision": lambda: JointDecisionExport(model),
        "joint_decision_single_step": lambda: JointDecisionSingleStepExport(model, contract.top_k),
    }
    return factories[name]().eval()
