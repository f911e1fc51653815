"""Kernels coremltools has no value_inference for, against independent references:
naive numpy loops (conv, pooling, norms, scatter), and torch.nn modules (LSTM, RNN)."""

from __future__ import annotations

import itertools

import coremltools as ct
import numpy as np
import pytest
import torch
from _mil_helpers import fp16_ulp_close, rel_err, run_mil
from coremltools.converters.mil import Builder as mb

R = np.random.default_rng(7)


def f(*shape, lo=-1.0, hi=1.0, dtype=np.float32):
    return R.uniform(lo, hi, size=shape).astype(np.float16).astype(dtype)


# ---------------------------------------------------------------- naive references


def np_conv(x, w, b, strides, pads, dils, groups):
    """Direct N-d convolution (cross-correlation) with explicit (before, after) pads."""
    x = np.pad(x.astype(np.float64), [(0, 0), (0, 0)] + list(pads))
    w = w.astype(np.float64)
    n, c = x.shape[:2]
    o, k = w.shape[0], w.shape[2:]
    cg, og = c // groups, o // groups
    sizes = [(x.shape[2 + i] - (k[i] - 1) * dils[i] - 1) // strides[i] + 1 for i in range(len(k))]
    out = np.zeros((n, o, *sizes))
    for pos in itertools.product(*[range(s) for s in sizes]):
        sl = tuple(
            slice(p * s, p * s + (kk - 1) * d + 1, d) for p, s, kk, d in zip(pos, strides, k, dils)
        )
        patch = x[(slice(None), slice(None)) + sl]
        axes = list(range(1, patch.ndim))
        for g in range(groups):
            out[(slice(None), slice(g * og, (g + 1) * og)) + pos] = np.tensordot(
                patch[:, g * cg : (g + 1) * cg], w[g * og : (g + 1) * og], axes=(axes, axes)
            )
    if b is not None:
        out += b.reshape([1, -1] + [1] * len(k))
    return out


def np_conv_transpose(x, w, b, strides, crop, groups):
    """Scatter-form transposed conv (weight [C_in, C_out/groups, *K]); crop (before, after)."""
    n, cin = x.shape[:2]
    k = w.shape[2:]
    og = w.shape[1]
    cg = cin // groups
    full = [(x.shape[2 + i] - 1) * strides[i] + k[i] for i in range(len(k))]
    out = np.zeros((n, og * groups, *full))
    for pos in itertools.product(*[range(s) for s in x.shape[2:]]):
        for kp in itertools.product(*[range(kk) for kk in k]):
            tgt = tuple(p * s + q for p, s, q in zip(pos, strides, kp))
            for g in range(groups):
                xin = x[(slice(None), slice(g * cg, (g + 1) * cg)) + pos]  # [n, cg]
                wk = w[(slice(g * cg, (g + 1) * cg), slice(None)) + kp]  # [cg, og]
                out[(slice(None), slice(g * og, (g + 1) * og)) + tgt] += xin @ wk
    sl = tuple(slice(bf, full[i] - af) for i, (bf, af) in enumerate(crop))
    out = out[(slice(None), slice(None)) + sl]
    return out + b.reshape([1, -1] + [1] * len(k)) if b is not None else out


def np_pool(x, k, s, pads, kind, exclude_pad=False):
    fill = -np.inf if kind == "max" else 0.0
    xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0)] + list(pads), constant_values=fill)
    valid = np.pad(np.ones(x.shape[2:]), list(pads))
    sizes = [(xp.shape[2 + i] - k[i]) // s[i] + 1 for i in range(len(k))]
    out = np.zeros(x.shape[:2] + tuple(sizes))
    for pos in itertools.product(*[range(z) for z in sizes]):
        sl = tuple(slice(p * st, p * st + kk) for p, st, kk in zip(pos, s, k))
        win = xp[(slice(None), slice(None)) + sl].reshape(x.shape[:2] + (-1,))
        if kind == "max":
            out[(slice(None), slice(None)) + pos] = win.max(-1)
        elif kind == "l2":
            out[(slice(None), slice(None)) + pos] = np.sqrt((win**2).sum(-1))
        else:
            cnt = valid[sl].sum() if exclude_pad else np.prod(k)
            out[(slice(None), slice(None)) + pos] = win.sum(-1) / cnt
    return out


def _check(got, ref, fp16: bool, tol32=1e-5):
    if fp16:
        fp16_ulp_close(got, ref, ulps=1)
    else:
        assert got.dtype == np.float32
        assert rel_err(got, ref) < tol32


PRECISIONS = pytest.mark.parametrize("fp16", [False, True], ids=["fp32", "fp16"])


# ---------------------------------------------------------------- conv


CONV_CASES = [
    # (x shape, w shape, strides, pad_type, pad, dilations, groups)
    ((1, 4, 11), (6, 4, 3), [1], "valid", None, [1], 1),
    ((2, 4, 11), (4, 1, 5), [1], "custom", [2, 2], [1], 4),  # depthwise
    ((1, 4, 12), (6, 2, 3), [2], "same", None, [1], 2),
    ((1, 4, 12), (6, 4, 4), [3], "same_lower", None, [2], 1),
    ((1, 3, 9, 8), (5, 3, 3, 3), [2, 2], "custom", [1, 0, 1, 2], [1, 1], 1),  # asymmetric
    ((1, 4, 9, 8), (4, 1, 3, 3), [2, 1], "same", None, [1, 2], 4),
]


@PRECISIONS
@pytest.mark.parametrize("case", CONV_CASES, ids=[f"conv{i}" for i in range(len(CONV_CASES))])
def test_conv(case, fp16):
    xs, ws, strides, pad_type, pad, dils, groups = case
    dt = np.float16 if fp16 else np.float32
    x, w, b = f(*xs, dtype=dt), f(*ws, dtype=dt), f(ws[0], dtype=dt)
    (got,) = run_mil(
        lambda x: mb.conv(
            x=x,
            weight=w,
            bias=b,
            strides=strides,
            pad_type=pad_type,
            pad=pad,
            dilations=dils,
            groups=groups,
        ),
        {"x": x},
    )
    n = len(strides)
    if pad_type == "custom":
        pads = [(pad[2 * i], pad[2 * i + 1]) for i in range(n)]
    elif pad_type == "valid":
        pads = [(0, 0)] * n
    else:
        pads = []
        for i in range(n):
            size, k, s, d = xs[2 + i], ws[2 + i], strides[i], dils[i]
            total = max(0, s * -(-size // s) - size + (k - 1) * d + 1 - s)
            lo, hi = total // 2, total - total // 2
            pads.append((hi, lo) if pad_type == "same_lower" else (lo, hi))
    ref = np_conv(x, w, b, strides, pads, dils, groups)
    assert got.shape == ref.shape
    _check(got, ref, fp16)


@PRECISIONS
@pytest.mark.parametrize(
    "xs,ws,strides,pad_type,pad,groups",
    [
        ((1, 4, 7), (4, 3, 4), [2], "valid", None, 1),
        ((1, 4, 7), (4, 2, 3), [2], "custom", [1, 2], 2),
        ((1, 2, 4, 5), (2, 3, 3, 2), [2, 3], "custom", [1, 0, 0, 1], 1),
    ],
)
def test_conv_transpose(xs, ws, strides, pad_type, pad, groups, fp16):
    dt = np.float16 if fp16 else np.float32
    x, w, b = f(*xs, dtype=dt), f(*ws, dtype=dt), f(ws[1] * groups, dtype=dt)
    (got,) = run_mil(
        lambda x: mb.conv_transpose(
            x=x, weight=w, bias=b, strides=strides, pad_type=pad_type, pad=pad, groups=groups
        ),
        {"x": x},
    )
    n = len(strides)
    crop = [(pad[2 * i], pad[2 * i + 1]) for i in range(n)] if pad else [(0, 0)] * n
    ref = np_conv_transpose(x.astype(np.float64), w.astype(np.float64), b, strides, crop, groups)
    assert got.shape == ref.shape
    _check(got, ref, fp16)


# ---------------------------------------------------------------- pooling


@PRECISIONS
@pytest.mark.parametrize("kind", ["avg", "avg_excl", "max", "l2"])
@pytest.mark.parametrize(
    "xs,k,s,pad_type,pad",
    [((1, 2, 9), [3], [2], "valid", None), ((1, 2, 7, 6), [3, 2], [2, 2], "custom", [1, 1, 0, 1])],
)
def test_pool(kind, xs, k, s, pad_type, pad, fp16):
    dt = np.float16 if fp16 else np.float32
    x = f(*xs, lo=0.1, hi=2.0, dtype=dt)
    kw = dict(kernel_sizes=k, strides=s, pad_type=pad_type, pad=pad)
    if kind.startswith("avg"):
        excl = kind == "avg_excl"
        build = lambda x: mb.avg_pool(x=x, exclude_padding_from_average=excl, **kw)
    else:
        build = lambda x: getattr(mb, f"{kind}_pool")(x=x, **kw)
    (got,) = run_mil(build, {"x": x})
    pads = [(pad[2 * i], pad[2 * i + 1]) for i in range(len(k))] if pad else [(0, 0)] * len(k)
    ref = np_pool(x, k, s, pads, kind.split("_")[0], exclude_pad=kind == "avg_excl")
    _check(got, ref, fp16)


# ---------------------------------------------------------------- normalisation / activations


@PRECISIONS
def test_batch_norm(fp16):
    dt = np.float16 if fp16 else np.float32
    x = f(2, 3, 5, dtype=dt)
    mean, var = f(3, dtype=dt), f(3, lo=0.5, hi=2, dtype=dt)
    g, b = f(3, dtype=dt), f(3, dtype=dt)
    (got,) = run_mil(
        lambda x: mb.batch_norm(x=x, mean=mean, variance=var, gamma=g, beta=b, epsilon=dt(1e-3)),
        {"x": x},
    )
    c = lambda v: v.astype(np.float64).reshape(1, 3, 1)
    ref = (x - c(mean)) / np.sqrt(c(var) + 1e-3) * c(g) + c(b)
    _check(got, ref, fp16)


@PRECISIONS
def test_instance_norm(fp16):
    dt = np.float16 if fp16 else np.float32
    x = f(2, 3, 4, 5, dtype=dt)
    g, b = f(3, dtype=dt), f(3, dtype=dt)
    (got,) = run_mil(lambda x: mb.instance_norm(x=x, gamma=g, beta=b, epsilon=dt(1e-5)), {"x": x})
    x64 = x.astype(np.float64)
    m = x64.mean(axis=(2, 3), keepdims=True)
    v = x64.var(axis=(2, 3), keepdims=True)
    ref = (x64 - m) / np.sqrt(v + 1e-5) * g.reshape(1, 3, 1, 1) + b.reshape(1, 3, 1, 1)
    _check(got, ref, fp16)


@PRECISIONS
def test_local_response_norm(fp16):
    dt = np.float16 if fp16 else np.float32
    x = f(1, 6, 3, 2, dtype=dt)
    (got,) = run_mil(
        lambda x: mb.local_response_norm(x=x, size=3, alpha=dt(0.1), beta=dt(0.75), k=dt(1.0)),
        {"x": x},
    )
    x64 = x.astype(np.float64)
    sq = np.pad(x64**2, [(0, 0), (1, 1), (0, 0), (0, 0)])
    win = sq[:, 0:6] + sq[:, 1:7] + sq[:, 2:8]
    ref = x64 / (1.0 + 0.1 / 3 * win) ** 0.75
    _check(got, ref, fp16)


@PRECISIONS
def test_silu(fp16):
    dt = np.float16 if fp16 else np.float32
    x = f(3, 7, lo=-6, hi=6, dtype=dt)
    (got,) = run_mil(lambda x: mb.silu(x=x), {"x": x})
    x64 = x.astype(np.float64)
    _check(got, x64 / (1 + np.exp(-x64)), fp16)


# ---------------------------------------------------------------- recurrent


def _mil_lstm_weights(lstm: torch.nn.LSTM, suffix: str = "_l0"):
    """torch (i, f, g, o) rows -> MIL (i, f, o, g) rows; bias = b_ih + b_hh."""

    def reorder(t):
        i, f_, g, o = t.detach().numpy().astype(np.float32).reshape(4, -1, *t.shape[1:])
        return np.concatenate([i, f_, o, g])

    w_ih = reorder(getattr(lstm, "weight_ih" + suffix))
    w_hh = reorder(getattr(lstm, "weight_hh" + suffix))
    bias = reorder(getattr(lstm, "bias_ih" + suffix) + getattr(lstm, "bias_hh" + suffix))
    return w_ih, w_hh, bias


@PRECISIONS
@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
@pytest.mark.parametrize("output_sequence", [True, False])
def test_lstm_vs_torch(direction, output_sequence, fp16):
    torch.manual_seed(0)
    seq, batch, inp, hid = 5, 2, 3, 4
    bi = direction == "bidirectional"
    nd = 2 if bi else 1
    lstm = torch.nn.LSTM(inp, hid, bidirectional=bi).eval()
    dt = np.float16 if fp16 else np.float32
    suffixes = ["_l0", "_l0_reverse"][:nd]
    with torch.no_grad():  # torch gets exactly the parameters the MIL program stores
        for sfx in suffixes:
            total = getattr(lstm, "bias_ih" + sfx) + getattr(lstm, "bias_hh" + sfx)
            getattr(lstm, "bias_ih" + sfx).copy_(total)
            getattr(lstm, "bias_hh" + sfx).zero_()
        for p in lstm.parameters():
            p.copy_(p.to(torch.float16).float() if fp16 else p)
    w = [_mil_lstm_weights(lstm, sfx) for sfx in suffixes]
    kw = dict(weight_ih=w[0][0].astype(dt), weight_hh=w[0][1].astype(dt), bias=w[0][2].astype(dt))
    if bi:
        kw.update(
            weight_ih_back=w[1][0].astype(dt),
            weight_hh_back=w[1][1].astype(dt),
            bias_back=w[1][2].astype(dt),
        )
    x = f(seq, batch, inp, dtype=dt)
    h0, c0 = f(batch, hid * nd, dtype=dt), f(batch, hid * nd, dtype=dt)
    with torch.no_grad():
        th = torch.from_numpy(h0.astype(np.float32)).reshape(batch, nd, hid).transpose(0, 1)
        tc = torch.from_numpy(c0.astype(np.float32)).reshape(batch, nd, hid).transpose(0, 1)
        y_ref, (h_ref, c_ref) = lstm(
            torch.from_numpy(x.astype(np.float32)), (th.contiguous(), tc.contiguous())
        )
    y, h, c = run_mil(
        lambda x, h0, c0: mb.lstm(
            x=x,
            initial_h=h0,
            initial_c=c0,
            direction=direction,
            output_sequence=output_sequence,
            **kw,
        ),
        {"x": x, "h0": h0, "c0": c0},
    )
    y_ref = y_ref.numpy()
    if not output_sequence:  # final step of each direction
        y_ref = np.concatenate([y_ref[-1:, :, :hid], y_ref[:1, :, hid:]], -1) if bi else y_ref[-1:]
    h_ref = h_ref.transpose(0, 1).reshape(batch, -1).numpy()
    c_ref = c_ref.transpose(0, 1).reshape(batch, -1).numpy()
    # fp16: the recurrence runs in fp32, so outputs are one rounding away from torch
    for got, ref in ((y, y_ref), (h, h_ref), (c, c_ref)):
        assert got.shape == ref.shape
        _check(got, ref, fp16)


def test_lstm_reverse_matches_torch_on_flipped_input():
    torch.manual_seed(1)
    lstm = torch.nn.LSTM(3, 4).eval()
    x = f(6, 1, 3)
    w_ih, w_hh, bias = _mil_lstm_weights(lstm)
    with torch.no_grad():
        y_ref, (h_ref, c_ref) = lstm(torch.from_numpy(x[::-1].copy()))
    y, h, c = run_mil(
        lambda x: mb.lstm(
            x=x,
            initial_h=np.zeros((1, 4), np.float32),
            initial_c=np.zeros((1, 4), np.float32),
            weight_ih=w_ih,
            weight_hh=w_hh,
            bias=bias,
            direction="reverse",
            output_sequence=True,
        ),
        {"x": x},
    )
    assert rel_err(y, y_ref.numpy()[::-1]) < 1e-5  # outputs stay aligned with input time
    assert rel_err(h, h_ref[0].numpy()) < 1e-5
    assert rel_err(c, c_ref[0].numpy()) < 1e-5


def test_lstm_peephole_and_clip_vs_numpy():
    seq, hid, inp = 4, 3, 2
    x = f(seq, 1, inp, lo=-3, hi=3)
    w_ih, w_hh = f(4 * hid, inp, lo=-2, hi=2), f(4 * hid, hid, lo=-2, hi=2)
    bias, peep = f(4 * hid), f(3 * hid)
    clip = np.float32(0.5)
    y, h, c = run_mil(
        lambda x: mb.lstm(
            x=x,
            initial_h=np.zeros((1, hid), np.float32),
            initial_c=np.zeros((1, hid), np.float32),
            weight_ih=w_ih,
            weight_hh=w_hh,
            bias=bias,
            peephole=peep,
            clip=clip,
            output_sequence=True,
        ),
        {"x": x},
    )
    sig = lambda v: 1 / (1 + np.exp(-v))
    hh, cc, ys = np.zeros(hid), np.zeros(hid), []
    pi, pf, po = peep.reshape(3, hid)
    for t in range(seq):
        g = w_ih @ x[t, 0] + w_hh @ hh + bias
        i, f_, o, z = g.reshape(4, hid)
        i, f_ = sig(i + pi * cc), sig(f_ + pf * cc)
        cc = np.clip(f_ * cc + i * np.tanh(z), -clip, clip)
        hh = sig(o + po * cc) * np.tanh(cc)
        ys.append(hh)
    assert rel_err(y[:, 0], np.stack(ys)) < 1e-5
    assert rel_err(h[0], hh) < 1e-5 and rel_err(c[0], cc) < 1e-5


def test_rnn_vs_torch():
    torch.manual_seed(2)
    rnn = torch.nn.RNN(3, 5).eval()
    x = f(4, 2, 3)
    h0 = f(2, 5)
    w_ih = rnn.weight_ih_l0.detach().numpy()
    w_hh = rnn.weight_hh_l0.detach().numpy()
    bias = (rnn.bias_ih_l0 + rnn.bias_hh_l0).detach().numpy()
    with torch.no_grad():
        y_ref, h_ref = rnn(torch.from_numpy(x), torch.from_numpy(h0)[None])
    y, h = run_mil(
        lambda x, h0: mb.rnn(
            x=x, initial_h=h0, weight_ih=w_ih, weight_hh=w_hh, bias=bias, output_sequence=True
        ),
        {"x": x, "h0": h0},
    )
    assert rel_err(y, y_ref.numpy()) < 1e-5 and rel_err(h, h_ref[0].numpy()) < 1e-5


# ---------------------------------------------------------------- indexing / movement


@pytest.mark.parametrize("mode", ["update", "add", "sub", "mul", "div", "max", "min"])
def test_scatter_modes(mode):
    data, upd = f(5, 3), f(2, 3, lo=0.5, hi=2.0)
    idx = np.array([3, 1], np.int32)
    (got,) = run_mil(
        lambda d: mb.scatter(data=d, indices=idx, updates=upd, axis=0, mode=mode), {"d": data}
    )
    ref = data.astype(np.float64).copy()
    ops = {
        "update": lambda a, u: u,
        "add": np.add,
        "sub": np.subtract,
        "mul": np.multiply,
        "div": np.divide,
        "max": np.maximum,
        "min": np.minimum,
    }
    for i, r in enumerate(idx):
        ref[r] = ops[mode](ref[r], upd[i])
    assert rel_err(got, ref) < 1e-6


@pytest.mark.parametrize("mode", ["add", "mul", "max"])
def test_scatter_along_axis_modes(mode):
    data, upd = f(3, 4), f(3, 2, lo=0.5, hi=2.0)
    idx = np.array([[0, 3], [1, 2], [2, 0]], np.int32)
    (got,) = run_mil(
        lambda d: mb.scatter_along_axis(data=d, indices=idx, updates=upd, axis=1, mode=mode),
        {"d": data},
    )
    ref = data.astype(np.float64).copy()
    ufunc = {"add": np.add, "mul": np.multiply, "max": np.maximum}[mode]
    for r in range(3):
        for j in range(2):
            ref[r, idx[r, j]] = ufunc(ref[r, idx[r, j]], upd[r, j])
    assert rel_err(got, ref) < 1e-6


def test_scatter_nd_and_gather_nd():
    data = f(4, 3, 2)
    idx = np.array([[0, 1], [3, 2], [-1, 0]], np.int32)
    upd = f(3, 2)
    got_s, got_g = run_mil(
        lambda d: (
            mb.scatter_nd(data=d, indices=idx, updates=upd, mode="add"),
            mb.gather_nd(x=d, indices=idx),
        ),
        {"d": data},
    )
    ref_s = data.astype(np.float64).copy()
    for k, (a, c) in enumerate(idx):
        ref_s[a, c] += upd[k]
    ref_g = np.stack([data[a, c] for a, c in idx])
    assert rel_err(got_s, ref_s) < 1e-6
    np.testing.assert_array_equal(got_g, ref_g)


def test_one_hot_and_concat_interleave_and_cumsum():
    idx = np.array([[1, 0], [3, 2]], np.int32)
    a, bb = f(3, 2), f(3, 2)
    x = f(2, 5)
    hot, inter, cum = run_mil(
        lambda i, a, bb, x: (
            mb.one_hot(indices=i, one_hot_vector_size=4, axis=1, on_value=7, off_value=-1),
            mb.concat(values=(a, bb), axis=0, interleave=True),
            mb.cumsum(x=x, axis=1, exclusive=True, reverse=True),
        ),
        {"i": idx, "a": a, "bb": bb, "x": x},
    )
    ref_hot = np.where(np.arange(4)[None, :, None] == idx[:, None, :], 7, -1)
    np.testing.assert_array_equal(hot, ref_hot)
    ref_inter = np.empty((6, 2), np.float32)
    ref_inter[0::2], ref_inter[1::2] = a, bb  # the example in the MIL docs
    np.testing.assert_array_equal(inter, ref_inter)
    rev = np.cumsum(x[:, ::-1].astype(np.float64), axis=1)[:, ::-1]
    assert rel_err(cum, rev - x) < 1e-6


def test_space_rearrangements_and_windows():
    x = f(1, 8, 2, 3)
    d2s, s2d, shuf, win, up = run_mil(
        lambda x: (
            mb.depth_to_space(x=x, block_size=2),
            mb.space_to_depth(x=mb.depth_to_space(x=x, block_size=2), block_size=2),
            mb.pixel_shuffle(x=x, upscale_factor=2),
            mb.sliding_windows(x=x, axis=3, size=2, stride=1),
            mb.upsample_nearest_neighbor(x=x, scale_factor_height=2, scale_factor_width=3),
        ),
        {"x": x},
    )
    # TensorFlow DCR depth_to_space, written out
    n, c, h, w = x.shape
    ref = (
        x.reshape(n, 2, 2, c // 4, h, w)
        .transpose(0, 3, 4, 1, 5, 2)
        .reshape(n, c // 4, h * 2, w * 2)
    )
    np.testing.assert_array_equal(d2s, ref)
    np.testing.assert_array_equal(s2d, x)
    ref_shuf = (
        x.reshape(n, c // 4, 2, 2, h, w)
        .transpose(0, 1, 4, 2, 5, 3)
        .reshape(n, c // 4, h * 2, w * 2)
    )
    np.testing.assert_array_equal(shuf, ref_shuf)
    ref_win = np.stack([x[..., i : i + 2] for i in range(w - 1)], axis=3)
    np.testing.assert_array_equal(win, ref_win)
    np.testing.assert_array_equal(up, x.repeat(2, axis=2).repeat(3, axis=3))


def test_pixel_unshuffle_and_reshape_like():
    x = f(1, 2, 4, 6)
    ref_a, ref_b = f(4, 6), f(3, 12)
    unshuf, like = run_mil(
        lambda x, a, b: (
            mb.pixel_unshuffle(x=x, downscale_factor=np.uint32(2)),
            mb.reshape_like(
                x=x, ref_tensors=(a, b), begins=(0, 1), ends=(1, 2), end_masks=(False, True)
            ),
        ),
        {"x": x, "a": ref_a, "b": ref_b},
        opset=ct.target.iOS17,
    )
    n, c, h, w = x.shape
    want = (
        x.reshape(n, c, h // 2, 2, w // 2, 2)
        .transpose(0, 1, 3, 5, 2, 4)
        .reshape(n, c * 4, h // 2, w // 2)
    )
    np.testing.assert_array_equal(unshuf, want)
    np.testing.assert_array_equal(like, x.reshape(4, 12))  # a.shape[0:1] + b.shape[1:]


def test_reverse_sequence():
    x = f(3, 5, 2)
    lengths = np.array([2, 5, 0], np.int32)
    (got,) = run_mil(
        lambda x, n: mb.reverse_sequence(x=x, lengths=n, seq_axis=1, batch_axis=0),
        {"x": x, "n": lengths},
    )
    ref = x.copy()
    for bi, n in enumerate(lengths):
        ref[bi, :n] = x[bi, :n][::-1]
    np.testing.assert_array_equal(got, ref)


def test_quantize_dequantize_round_trip():
    x = f(2, 4, lo=-3, hi=3)
    scale = np.array([0.05, 0.1], np.float32)
    zp = np.array([3, -2], np.int8)

    def build(x):
        q = mb.quantize(input=x, scale=scale, zero_point=zp, axis=0, output_dtype="int8")
        return q, mb.dequantize(input=q, scale=scale, zero_point=zp, axis=0)

    q, dq = run_mil(build, {"x": x}, opset=ct.target.iOS17)
    ref_q = np.clip(np.round(x / scale[:, None]) + zp[:, None], -128, 127).astype(np.int8)
    np.testing.assert_array_equal(q, ref_q)
    np.testing.assert_allclose(
        dq, (ref_q.astype(np.float32) - zp[:, None]) * scale[:, None], rtol=1e-6
    )
