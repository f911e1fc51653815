"""RNNT prediction network (NeMo's ``RNNTDecoder``): embedding + stacked LSTM.

Keys read ``decoder.prediction.embed`` and ``decoder.prediction.dec_rnn.lstm.*``. The blank
id doubles as the start symbol: its embedding row is the zero padding row.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import DecoderConfig

State = tuple[torch.Tensor, torch.Tensor]


class LSTMDropout(nn.Module):
    """Holds the LSTM under the name NeMo uses (``dec_rnn.lstm``); dropout is training-only."""

    def __init__(self, hidden: int, layers: int):
        super().__init__()
        self.lstm = nn.LSTM(input_size=hidden, hidden_size=hidden, num_layers=layers)

    def forward(self, x: torch.Tensor, state: State | None) -> tuple[torch.Tensor, State]:
        return self.lstm(x, state)


class RNNTDecoder(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.cfg = cfg
        self.blank_idx = cfg.vocab_size
        self.prediction = nn.ModuleDict(
            {
                "embed": nn.Embedding(cfg.vocab_size + 1, cfg.pred_hidden, padding_idx=self.blank_idx),
                "dec_rnn": LSTMDropout(cfg.pred_hidden, cfg.pred_rnn_layers),
            }
        )

    def initial_state(self, batch: int = 1) -> State:
        shape = (self.cfg.pred_rnn_layers, batch, self.cfg.pred_hidden)
        return torch.zeros(shape), torch.zeros(shape)

    def predict(self, y: torch.Tensor, state: State | None) -> tuple[torch.Tensor, State]:
        """Tokens [B, U] -> outputs [B, U, H] and the state after the last token."""
        emb = self.prediction["embed"](y)
        g, state = self.prediction["dec_rnn"](emb.transpose(0, 1), state)
        return g.transpose(0, 1), state
