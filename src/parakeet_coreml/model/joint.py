"""Joint network (NeMo's ``RNNTJoint``): enc/pred projections, activation, output Linear.

Returns raw logits. NeMo applies log_softmax on CPU; argmax is unchanged by it, and CoreML
exports must not carry it (softmax->log underflows in fp16), so raw logits are the contract.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import ModelConfig

_ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


class RNNTJoint(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        j = cfg.joint
        self.pred = nn.Linear(cfg.decoder.pred_hidden, j.joint_hidden)
        self.enc = nn.Linear(cfg.encoder.d_model, j.joint_hidden)
        layers: list[nn.Module] = [_ACTIVATIONS[j.activation]()]
        if j.dropout:
            layers.append(nn.Identity())  # NeMo's Dropout sits here and shifts the Linear to index 2
        layers.append(nn.Linear(j.joint_hidden, cfg.num_outputs))
        self.joint_net = nn.Sequential(*layers)

    def project_encoder(self, f: torch.Tensor) -> torch.Tensor:
        return self.enc(f)

    def project_prednet(self, g: torch.Tensor) -> torch.Tensor:
        return self.pred(g)

    def joint_after_projection(self, f: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Projected f [B,T,H], g [B,U,H] -> logits [B,T,U,O]."""
        return self.joint_net(f.unsqueeze(2) + g.unsqueeze(1))

    def forward(self, f: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Encoder [B,T,D] and prediction [B,U,H] outputs -> logits [B,T,U,O]."""
        return self.joint_after_projection(self.project_encoder(f), self.project_prednet(g))
