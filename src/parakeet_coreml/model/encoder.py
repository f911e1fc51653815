"""FastConformer encoder, mirroring NeMo's ``ConformerEncoder`` module tree and numerics.

Names (``pre_encode.conv.N``, ``layers.L.self_attn.linear_q`` ...) match NeMo's state dict so
it loads with ``strict=True``. Op order follows NeMo where it changes fp32 rounding (mask
multiplies before every subsampling layer, ``(ac + bd) / sqrt(d_k)``, ``-10000`` fills).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..config import EncoderConfig

_MASK_FILL = -10000.0  # NeMo's INF_VAL; finite so fp16 softmax never sees -inf


class MaskedConvSequential(nn.Sequential):
    """Subsampling convs on [B, 1, T, F]; zeroes frames past each utterance's length.

    NeMo multiplies by the time mask before every layer and after the last, recomputing the
    length after each strided conv, so padding never leaks into valid frames.
    """

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        x = x.unsqueeze(1)
        lengths = lengths.to(torch.long)
        mask = self._mask(x, lengths)
        for layer in self:
            x = x * mask
            x = layer(x)
            if isinstance(layer, nn.Conv2d) and layer.stride != (1, 1):
                pad = layer.padding[0]  # type: ignore[index]
                lengths = (lengths + 2 * pad - layer.kernel_size[0]) // layer.stride[0] + 1
                mask = self._mask(x, lengths)
        return x * mask, lengths

    @staticmethod
    def _mask(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        t = x.shape[2]
        valid = torch.arange(t, device=x.device).unsqueeze(0) < lengths.unsqueeze(1)
        return valid.to(x.dtype)[:, None, :, None]


class ConvSubsampling(nn.Module):
    """``dw_striding``: Conv2d(1->C, s2), then (depthwise s2 + pointwise) pairs, ReLUs, Linear."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        c = cfg.subsampling_conv_channels
        layers: list[nn.Module] = [nn.Conv2d(1, c, kernel_size=3, stride=2, padding=1), nn.ReLU(True)]
        for _ in range(cfg.subsampling_steps - 1):
            layers += [
                nn.Conv2d(c, c, kernel_size=3, stride=2, padding=1, groups=c),
                nn.Conv2d(c, c, kernel_size=1),
                nn.ReLU(True),
            ]
        self.conv = MaskedConvSequential(*layers)
        freq = cfg.feat_in
        for _ in range(cfg.subsampling_steps):
            freq = math.floor((freq + 2 - 3) / 2 + 1)
        self.out = nn.Linear(c * freq, cfg.d_model)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, lengths = self.conv(x, lengths)
        b, c, t, f = x.size()
        return self.out(x.transpose(1, 2).reshape(b, t, -1)), lengths


class RelPositionalEncoding(nn.Module):
    """Transformer-XL sinusoids for positions (T-1) ... -(T-1), built in fp32 like NeMo."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.d_model = cfg.d_model
        self.xscale = math.sqrt(cfg.d_model) if cfg.xscaling else None
        self.register_buffer("pe", torch.empty(0), persistent=False)
        self.extend_pe(cfg.pos_emb_max_len)

    def extend_pe(self, length: int) -> None:
        if self.pe.numel() and self.pe.size(1) >= 2 * length - 1:
            return
        positions = torch.arange(length - 1, -length, -1, dtype=torch.float32).unsqueeze(1)
        pe = torch.zeros(positions.size(0), self.d_model)
        div_term = torch.exp(
            torch.arange(0, self.d_model, 2, dtype=torch.float32) * -(math.log(10000.0) / self.d_model)
        )
        pe[:, 0::2] = torch.sin(positions * div_term)
        pe[:, 1::2] = torch.cos(positions * div_term)
        self.pe = pe.unsqueeze(0).to(self.pe.device)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.xscale:
            x = x * self.xscale
        t = x.size(1)
        center = self.pe.size(1) // 2 + 1
        return x, self.pe[:, center - t : center + t - 1]


class RelPositionMultiHeadAttention(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        d, h = cfg.d_model, cfg.n_heads
        self.h, self.d_k = h, d // h
        self.s_d_k = math.sqrt(self.d_k)
        self.linear_q = nn.Linear(d, d, bias=cfg.use_bias)
        self.linear_k = nn.Linear(d, d, bias=cfg.use_bias)
        self.linear_v = nn.Linear(d, d, bias=cfg.use_bias)
        self.linear_out = nn.Linear(d, d, bias=cfg.use_bias)
        self.linear_pos = nn.Linear(d, d, bias=False)
        self.pos_bias_u = nn.Parameter(torch.zeros(h, self.d_k))
        self.pos_bias_v = nn.Parameter(torch.zeros(h, self.d_k))

    @staticmethod
    def rel_shift(x: torch.Tensor) -> torch.Tensor:
        """Align relative-position scores: pad a zero column, fold, drop the first row."""
        b, h, qlen, pos_len = x.size()
        x = nn.functional.pad(x, pad=(1, 0))
        x = x.view(b, h, -1, qlen)
        return x[:, :, 1:].view(b, h, qlen, pos_len)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, pos_emb: torch.Tensor) -> torch.Tensor:
        b = x.size(0)
        q = self.linear_q(x).view(b, -1, self.h, self.d_k)  # (b, t, h, d_k)
        k = self.linear_k(x).view(b, -1, self.h, self.d_k).transpose(1, 2)
        v = self.linear_v(x).view(b, -1, self.h, self.d_k).transpose(1, 2)
        p = self.linear_pos(pos_emb).view(pos_emb.size(0), -1, self.h, self.d_k).transpose(1, 2)
        q_u = (q + self.pos_bias_u).transpose(1, 2)
        q_v = (q + self.pos_bias_v).transpose(1, 2)
        matrix_bd = self.rel_shift(torch.matmul(q_v, p.transpose(-2, -1)))
        matrix_ac = torch.matmul(q_u, k.transpose(-2, -1))
        matrix_bd = matrix_bd[:, :, :, : matrix_ac.size(-1)]
        scores = (matrix_ac + matrix_bd) / self.s_d_k
        mask = mask.unsqueeze(1)
        scores = scores.masked_fill(mask, _MASK_FILL)
        attn = torch.softmax(scores, dim=-1).masked_fill(mask, 0.0)
        out = torch.matmul(attn, v).transpose(1, 2).reshape(b, -1, self.h * self.d_k)
        return self.linear_out(out)


class ConformerFeedForward(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.linear1 = nn.Linear(cfg.d_model, cfg.d_ff, bias=cfg.use_bias)
        self.activation = nn.SiLU()
        self.linear2 = nn.Linear(cfg.d_ff, cfg.d_model, bias=cfg.use_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.activation(self.linear1(x)))


class ConformerConvolution(nn.Module):
    """Pointwise(2d) -> GLU -> pad mask -> depthwise(k) -> norm -> SiLU -> pointwise(d)."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        d, k = cfg.d_model, cfg.conv_kernel_size
        self.norm_type = cfg.conv_norm_type
        self.pointwise_conv1 = nn.Conv1d(d, 2 * d, kernel_size=1, bias=cfg.use_bias)
        self.depthwise_conv = nn.Conv1d(d, d, kernel_size=k, padding=(k - 1) // 2, groups=d, bias=cfg.use_bias)
        self.batch_norm = nn.BatchNorm1d(d) if self.norm_type == "batch_norm" else nn.LayerNorm(d)
        self.activation = nn.SiLU()
        self.pointwise_conv2 = nn.Conv1d(d, d, kernel_size=1, bias=cfg.use_bias)

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
        x = self.pointwise_conv1(x.transpose(1, 2))
        x = nn.functional.glu(x, dim=1)
        x = x.masked_fill(pad_mask.unsqueeze(1), 0.0)
        x = self.depthwise_conv(x)
        if self.norm_type == "layer_norm":
            x = self.batch_norm(x.transpose(1, 2)).transpose(1, 2)
        else:
            x = self.batch_norm(x)
        x = self.pointwise_conv2(self.activation(x))
        return x.transpose(1, 2)


class ConformerLayer(nn.Module):
    """Macaron block: x + FF/2, + MHSA, + Conv, + FF/2, then LayerNorm."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        d = cfg.d_model
        self.fc_factor = 0.5
        self.norm_feed_forward1 = nn.LayerNorm(d)
        self.feed_forward1 = ConformerFeedForward(cfg)
        self.norm_conv = nn.LayerNorm(d)
        self.conv = ConformerConvolution(cfg)
        self.norm_self_att = nn.LayerNorm(d)
        self.self_attn = RelPositionMultiHeadAttention(cfg)
        self.norm_feed_forward2 = nn.LayerNorm(d)
        self.feed_forward2 = ConformerFeedForward(cfg)
        self.norm_out = nn.LayerNorm(d)

    def forward(
        self, x: torch.Tensor, att_mask: torch.Tensor, pos_emb: torch.Tensor, pad_mask: torch.Tensor
    ) -> torch.Tensor:
        residual = x + self.feed_forward1(self.norm_feed_forward1(x)) * self.fc_factor
        residual = residual + self.self_attn(self.norm_self_att(residual), att_mask, pos_emb)
        residual = residual + self.conv(self.norm_conv(residual), pad_mask)
        residual = residual + self.feed_forward2(self.norm_feed_forward2(residual)) * self.fc_factor
        return self.norm_out(residual)


class ConformerEncoder(nn.Module):
    """Mel [B, F, T] + lengths -> encoded [B, D, T/8] + lengths (channel-major, like NeMo)."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        self.pre_encode = ConvSubsampling(cfg)
        self.pos_enc = RelPositionalEncoding(cfg)
        self.layers = nn.ModuleList(ConformerLayer(cfg) for _ in range(cfg.n_layers))

    @staticmethod
    def masks(lengths: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(pad_mask [B,T], att_mask [B,T,T]); True marks what must be ignored."""
        valid = torch.arange(t, device=lengths.device).expand(lengths.size(0), -1) < lengths.unsqueeze(-1)
        pair = valid.unsqueeze(1).repeat([1, t, 1])
        pair = torch.logical_and(pair, pair.transpose(1, 2))
        return ~valid, ~pair

    def forward(self, audio_signal: torch.Tensor, length: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, length = self.pre_encode(audio_signal.transpose(1, 2), length)
        self.pos_enc.extend_pe(x.size(1))
        x, pos_emb = self.pos_enc(x)
        pad_mask, att_mask = self.masks(length, x.size(1))
        for layer in self.layers:
            x = layer(x, att_mask, pos_emb, pad_mask)
        return x.transpose(1, 2), length.to(torch.long)
