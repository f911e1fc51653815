"""Tiny torch modules shaped like Parakeet's parts (FastConformer encoder, log-mel
preprocessor, LSTM prediction net, TDT joint), used to check converted programs."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class RelPosAttention(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.h, self.dk = heads, d // heads
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.pos = nn.Linear(d, d, bias=False)
        self.u = nn.Parameter(torch.randn(heads, self.dk) * 0.1)
        self.vb = nn.Parameter(torch.randn(heads, self.dk) * 0.1)

    @staticmethod
    def rel_shift(x):
        # Transformer-XL: pad a zero column, view as [B, h, 2T, T], drop row 0, view back.
        b, h, qlen, plen = x.shape
        x = F.pad(x, (1, 0))
        x = x.view(b, h, -1, qlen)
        return x[:, :, 1:].view(b, h, qlen, plen)

    def forward(self, x, pe, mask):
        b, t, d = x.shape
        q = self.q(x).view(b, t, self.h, self.dk)
        k = self.k(x).view(b, t, self.h, self.dk).transpose(1, 2)
        v = self.v(x).view(b, t, self.h, self.dk).transpose(1, 2)
        p = self.pos(pe).view(1, -1, self.h, self.dk).transpose(1, 2)
        ac = torch.matmul((q + self.u).transpose(1, 2), k.transpose(-2, -1))
        bd = torch.einsum("bhtd,bhpd->bhtp", (q + self.vb).transpose(1, 2), p.expand(b, -1, -1, -1))
        bd = self.rel_shift(bd)[:, :, :, :t]
        scores = (ac + bd) / math.sqrt(self.dk)
        scores = scores.masked_fill(mask.unsqueeze(1), -10000.0)
        attn = torch.softmax(scores, -1).masked_fill(mask.unsqueeze(1), 0.0)
        return self.o(torch.matmul(attn, v).transpose(1, 2).reshape(b, t, d))


class ConvModule(nn.Module):
    def __init__(self, d: int, k: int = 9):
        super().__init__()
        self.pw1 = nn.Conv1d(d, 2 * d, 1)
        self.dw = nn.Conv1d(d, d, k, padding=k // 2, groups=d)
        self.bn = nn.BatchNorm1d(d)
        self.pw2 = nn.Conv1d(d, d, 1)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-0.5, 0.5)
            self.bn.running_var.uniform_(0.5, 2.0)

    def forward(self, x, pad_mask):
        x = F.glu(self.pw1(x.transpose(1, 2)), dim=1)
        x = x.masked_fill(pad_mask.unsqueeze(1), 0.0)
        return self.pw2(F.silu(self.bn(self.dw(x)))).transpose(1, 2)


class Block(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.n1, self.n2, self.n3, self.n4, self.n5 = (nn.LayerNorm(d) for _ in range(5))
        self.ff1 = nn.Sequential(nn.Linear(d, 4 * d), nn.SiLU(), nn.Linear(4 * d, d))
        self.ff2 = nn.Sequential(nn.Linear(d, 4 * d), nn.SiLU(), nn.Linear(4 * d, d))
        self.att = RelPosAttention(d, heads)
        self.conv = ConvModule(d)

    def forward(self, x, pe, att_mask, pad_mask):
        x = x + 0.5 * self.ff1(self.n1(x))
        x = x + self.att(self.n2(x), pe, att_mask)
        x = x + self.conv(self.n3(x), pad_mask)
        x = x + 0.5 * self.ff2(self.n4(x))
        return self.n5(x)


class Encoder(nn.Module):
    """FastConformer-like: 4x striding conv subsampling, rel-pos attention, conv module."""

    def __init__(self, feat: int = 16, d: int = 32, heads: int = 4, layers: int = 2, ch: int = 8):
        super().__init__()
        self.sub = nn.Sequential(
            nn.Conv2d(1, ch, 3, 2, 1),
            nn.ReLU(),
            nn.Conv2d(ch, ch, 3, 2, 1, groups=ch),
            nn.Conv2d(ch, ch, 1),
            nn.ReLU(),
        )
        self.out = nn.Linear(ch * (feat // 4), d)
        self.d = d
        self.blocks = nn.ModuleList([Block(d, heads) for _ in range(layers)])

    def pos_emb(self, t: int):
        pos = torch.arange(t - 1, -t, -1, dtype=torch.float32).unsqueeze(1)
        div = torch.exp(torch.arange(0, self.d, 2, dtype=torch.float32) * (-math.log(1e4) / self.d))
        pe = torch.zeros(2 * t - 1, self.d)
        pe[:, 0::2] = torch.sin(pos * div)
        pe[:, 1::2] = torch.cos(pos * div)
        return pe.unsqueeze(0)

    def forward(self, feats, length):
        x = self.sub(feats.transpose(1, 2).unsqueeze(1))
        b, c, t, fq = x.shape
        x = self.out(x.transpose(1, 2).reshape(b, t, c * fq))
        length = ((length.float() - 1) / 2 + 1).floor()
        length = ((length - 1) / 2 + 1).floor().to(torch.int32)
        valid = torch.arange(t).unsqueeze(0) < length.unsqueeze(1)
        pad_mask = ~valid
        att_mask = ~(valid.unsqueeze(1) & valid.unsqueeze(2))
        pe = self.pos_emb(t)
        for blk in self.blocks:
            x = blk(x, pe, att_mask, pad_mask)
        return x.transpose(1, 2), length


class Preprocessor(nn.Module):
    """NeMo-style log-mel: pre-emphasis, STFT, power, mel matmul, log, per-feature norm."""

    def __init__(self, n_fft: int = 64, hop: int = 16, mels: int = 16):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft))
        self.register_buffer("fb", torch.rand(1, mels, n_fft // 2 + 1))

    def forward(self, audio, length):
        x = torch.cat([audio[:, :1], audio[:, 1:] - 0.97 * audio[:, :-1]], dim=1)
        spec = torch.stft(
            x,
            self.n_fft,
            hop_length=self.hop,
            win_length=self.n_fft,
            window=self.window,
            center=True,
            pad_mode="constant",
            return_complex=True,
        )
        mag = torch.sqrt(spec.real.pow(2) + spec.imag.pow(2))
        mel = torch.log(torch.matmul(self.fb, mag.pow(2.0)) + 2**-24)
        flen = (torch.div(length, self.hop, rounding_mode="floor") + 1).to(torch.int32)
        t = mel.shape[-1]
        valid = torch.arange(t).unsqueeze(0) < flen.unsqueeze(1)
        m = valid.unsqueeze(1).to(mel.dtype)
        n = flen.view(-1, 1, 1).to(mel.dtype)
        mean = (mel * m).sum(-1, keepdim=True) / n
        std = torch.sqrt((((mel - mean) * m) ** 2).sum(-1, keepdim=True) / (n - 1)) + 1e-5
        out = torch.where(valid.unsqueeze(1), (mel - mean) / std, torch.zeros_like(mel))
        return out, flen


class Predictor(nn.Module):
    def __init__(self, vocab: int = 20, hid: int = 16, layers: int = 2):
        super().__init__()
        self.emb = nn.Embedding(vocab + 1, hid)
        self.lstm = nn.LSTM(hid, hid, layers, batch_first=True)

    def forward(self, tok, h, c):
        y, (h2, c2) = self.lstm(self.emb(tok), (h, c))
        return y.transpose(1, 2), h2, c2


class Joint(nn.Module):
    """TDT-like joint: token logits + duration logits, greedy decisions in-graph."""

    def __init__(
        self, enc: int = 32, pred: int = 16, hid: int = 24, vocab: int = 21, durs: int = 5
    ):
        super().__init__()
        self.e, self.p = nn.Linear(enc, hid), nn.Linear(pred, hid)
        self.o = nn.Linear(hid, vocab + durs)
        self.vocab = vocab

    def forward(self, enc, pred):
        x = torch.relu(self.e(enc.transpose(1, 2)) + self.p(pred.transpose(1, 2)))
        logits = self.o(x)[:, 0]
        tok_logits, dur_logits = logits[:, : self.vocab], logits[:, self.vocab :]
        probs = torch.softmax(tok_logits, -1)
        tok = torch.argmax(tok_logits, -1).to(torch.int32)
        best, _ = torch.max(probs, -1)
        dur = torch.argmax(dur_logits, -1).to(torch.int32)
        top_v, top_i = torch.topk(tok_logits, 3, -1)
        picked = torch.gather(probs, 1, tok.unsqueeze(1).long())
        return logits, tok, best, dur, top_v, top_i.to(torch.int32), picked
