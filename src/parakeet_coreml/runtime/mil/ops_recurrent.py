"""Recurrent MIL ops: lstm and rnn.

MIL ``lstm`` layout (differs from PyTorch): gates are stacked [input, forget, output, cell]
(PyTorch: i, f, g, o), ``bias`` is b_ih + b_hh, ``x`` is [seq, batch, I], states are
[batch, DIRECTIONS*H] and the first output is [seq or 1, batch, DIRECTIONS*H]. Peepholes
follow the Core ML NN spec: input/forget peek at c_{t-1}, output at c_t; ``clip`` bounds the
cell state. The whole sequence runs in fp32 (an fp16 program rounds only the op's outputs).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .registry import kernel

_ACT = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "linear": lambda x: x,
    # Core ML NN-spec defaults for the parameterised activations.
    "hard_sigmoid": lambda x: torch.clamp(0.2 * x + 0.5, 0.0, 1.0),
    "scaled_tanh": torch.tanh,
}


def _lstm_dir(x, h, c, w_ih, w_hh, bias, peep, reverse, ract, cact, act, clip):
    hsize = w_hh.shape[1]
    gx = F.linear(x, w_ih, bias)  # [S, B, 4H], input projections for all steps at once
    w_hh_t = w_hh.t()
    if peep is not None:
        p_i, p_f, p_o = peep.split(hsize)
    steps = range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])
    outs = [None] * x.shape[0]
    for t in steps:
        g = gx[t] + h @ w_hh_t
        i, f, o, z = g.split(hsize, dim=-1)
        if peep is not None:
            i = i + p_i * c
            f = f + p_f * c
        c = ract(f) * c + ract(i) * cact(z)
        if clip is not None:
            c = torch.clamp(c, -clip, clip)
        if peep is not None:
            o = o + p_o * c
        h = ract(o) * act(c)
        outs[t] = h
    return torch.stack(outs), h, c


@kernel(
    "lstm",
    static=(
        "direction",
        "output_sequence",
        "recurrent_activation",
        "cell_activation",
        "activation",
        "clip",
    ),
)
def _lstm(
    x,
    initial_h,
    initial_c,
    weight_ih,
    weight_hh,
    bias=None,
    peephole=None,
    weight_ih_back=None,
    weight_hh_back=None,
    bias_back=None,
    peephole_back=None,
    direction="forward",
    output_sequence=False,
    recurrent_activation="sigmoid",
    cell_activation="tanh",
    activation="tanh",
    clip=None,
):
    acts = (_ACT[recurrent_activation], _ACT[cell_activation], _ACT[activation], clip)
    hsize = weight_hh.shape[1]
    h0 = initial_h.reshape(initial_h.shape[-2], -1)
    c0 = initial_c.reshape(initial_c.shape[-2], -1)
    if direction == "bidirectional":
        yf, hf, cf = _lstm_dir(
            x, h0[:, :hsize], c0[:, :hsize], weight_ih, weight_hh, bias, peephole, False, *acts
        )
        yb, hb, cb = _lstm_dir(
            x, h0[:, hsize:], c0[:, hsize:], weight_ih_back, weight_hh_back, bias_back,
            peephole_back, True, *acts,
        )
        y = torch.cat([yf, yb], dim=-1)
        h, c = torch.cat([hf, hb], -1), torch.cat([cf, cb], -1)
        last = torch.cat([yf[-1:], yb[:1]], dim=-1)
    else:
        rev = direction == "reverse"
        y, h, c = _lstm_dir(x, h0, c0, weight_ih, weight_hh, bias, peephole, rev, *acts)
        last = y[:1] if rev else y[-1:]
    return (y if output_sequence else last), h, c


@kernel("rnn", static=("direction", "output_sequence", "activation"))
def _rnn(
    x, initial_h, weight_ih, weight_hh, bias=None, direction="forward", output_sequence=False,
    activation="tanh",
):
    act = _ACT[activation]
    gx = F.linear(x, weight_ih, bias)
    h = initial_h.reshape(initial_h.shape[-2], -1)
    w_hh_t = weight_hh.t()
    rev = direction == "reverse"
    steps = range(x.shape[0] - 1, -1, -1) if rev else range(x.shape[0])
    outs = [None] * x.shape[0]
    for t in steps:
        h = act(gx[t] + h @ w_hh_t)
        outs[t] = h
    y = torch.stack(outs)
    last = y[:1] if rev else y[-1:]
    return (y if output_sequence else last), h
