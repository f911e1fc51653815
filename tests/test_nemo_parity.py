"""Our pure-PyTorch Parakeet against NeMo itself, on every variant in ``nemo_models.VARIANTS``.

NeMo builds, randomises and saves each variant as a real ``.nemo`` (``conftest.py``); we load
that file with our own loader (strict state-dict load, no NeMo import) and compare, on real
speech, white noise, digital silence and edge lengths:

* tensors - mel spectrogram, encoder output, prediction network outputs and LSTM states
  (token by token, state carried), joint logits - and every length;
* greedy decoding - token ids, encoder-frame timestamps and TDT durations - end to end
  (our preprocessor + encoder + decoder) and with NeMo's encoder output fed to our decoder;
* ``transcribe()`` text and word timestamps (seconds) from NeMo's own high-level API.

Numerical bound
---------------
Both sides run the same fp32 torch kernels on the same CPU, so most tensors agree bit for
bit (measured: exactly 0.0 on every tensor except in one case). A difference can only come
from an operation that the two implementations express differently, so that torch picks a
different summation order: one rounding, at most ~1 ulp (eps32 * |x|) where it happens. The
one case measured: with a single encoder frame and conv biases, NeMo's depthwise conv
(``F.pad`` then ``conv1d(padding=0)``) and ours (``Conv1d(padding=(k-1)//2)``) round the
bias add differently (5.96e-8). Downstream each encoder layer is LayerNorm-normalised, so
such a perturbation is carried along at O(1) gain, not amplified: the encoder output differs
by <= 1.4 eps32 * max|ref| and the joint logits, after two more matmuls (encoder projection
over D, output Linear over J), by <= 4.3 eps32 * max|ref| (log-softmax: 2.0). We assert

    max |ours - nemo| <= K * eps32 * max|nemo|      (eps32 = 2**-23 ~ 1.19e-7)

with K = 8 for mel, encoder and the prediction network (a few roundings, with headroom for
one re-ordered reduction per sub-block) and K = 16 for the joint (which compounds the
encoder's rounding through two more dot products). These are 4-6x the worst measured error,
and orders of magnitude below what a real defect produces (a wrong weight, op, mask, padding
or normalisation moves these tensors by 1e-5..1 relative; e.g. scaling the feed-forward
residual factor 0.5 by 1 + 2e-5 already fails every encoder comparison).

Greedy decoding is compared exactly. That is sound because NeMo's reference records the
smallest logit gap of every decision on its path (``min_label_margin`` /
``min_duration_margin``), and the end-to-end test asserts it exceeds twice the joint bound
(measured gaps >= 2.5e-4, bound <= 1.1e-5): logits within the bound cannot flip a decision.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from nemo_models import (
    MAX_SYMBOLS,
    VARIANTS,
    nemo_reference,
    nemo_transcribe_text,
    nemo_word_timestamps,
    silence,
    white_noise,
)

from parakeet_coreml.checkpoint import load_checkpoint
from parakeet_coreml.decoding import TorchSteps, greedy_decode
from parakeet_coreml.model import ParakeetModel
from parakeet_coreml.transcribe import Transcriber

NAMES = list(VARIANTS)
EPS32 = float(np.finfo(np.float32).eps)
K_MEL = 8
K_ENCODER = 8
K_PRED = 8
K_JOINT = 16

SPEECH = ("clip_a", "clip_b", "clip_c", "speech_short")
HOP = 160  # every variant: 10 ms at 16 kHz
assert all(v.hop_length == HOP for v in VARIANTS.values())
SUBSAMPLING = sorted({v.subsampling_factor for v in VARIANTS.values()})  # [4, 8]
MULTIPLE_FRAMES = 8 * 25  # N // hop a multiple of every subsampling factor
OTHER_FRAMES = 8 * 25 + 3  # ... and of none
assert all(MULTIPLE_FRAMES % f == 0 and OTHER_FRAMES % f for f in SUBSAMPLING)


def _synthetic_signals(speech_15s: np.ndarray) -> dict[str, np.ndarray]:
    """Test signals besides the speech clips, all 16 kHz float32.

    ``mult_len`` / ``other_len``: speech cut so that ``N // 160`` is / is not a multiple of
    the subsampling factor (NeMo's encoder then returns one frame past its reported length /
    does not); ``one_frame``: 320 samples, the toolkit's minimum (2 valid mel frames, one
    encoder frame); ``one_mel_frame``: 160 samples, the fewest that give NeMo any encoder
    frame (1 valid mel frame); tensors and decoding only, as our transcriber refuses it.
    """
    return {
        "noise": white_noise(2.0, seed=7),
        "silence": silence(1.0),
        "mult_len": speech_15s[: MULTIPLE_FRAMES * HOP + 37].copy(),
        "other_len": speech_15s[16000 : 16000 + OTHER_FRAMES * HOP + 117].copy(),
        "one_frame": speech_15s[8000 : 8000 + 2 * HOP].copy(),
        "one_mel_frame": speech_15s[8000 : 8000 + HOP].copy(),
    }


SYNTHETIC = ("noise", "silence", "mult_len", "other_len", "one_frame", "one_mel_frame")
CLIPS = SPEECH + SYNTHETIC
TRANSCRIBE_CLIPS = SPEECH + ("speech_15s", "noise", "silence", "mult_len", "other_len", "one_frame")


# --------------------------------------------------------------------------------------
# Fixtures: signals, NeMo references, our model and our outputs (all cached per module)
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def signals(speech_audio) -> dict[str, np.ndarray]:
    out = {name: speech_audio[name] for name in SPEECH}
    out.update(_synthetic_signals(speech_audio["speech_15s"]))
    assert set(out) == set(CLIPS)
    return out


@pytest.fixture(scope="module")
def reference(nemo_checkpoints, nemo_reference_for, signals):
    """``reference(variant, clip)``: ``nemo_reference`` of NeMo's model (cached)."""

    @cache
    def get(name: str, clip: str) -> dict[str, Any]:
        if clip in SPEECH or clip == "speech_15s":
            return nemo_reference_for(name, clip)
        return nemo_reference(nemo_checkpoints[name].model, signals[clip])

    return get


@pytest.fixture(scope="module")
def ours(nemo_checkpoints):
    """``ours(variant)``: (Checkpoint, ParakeetModel) loaded from NeMo's ``.nemo`` (cached)."""

    @cache
    def get(name: str):
        ckpt = load_checkpoint(nemo_checkpoints[name].path)
        return ckpt, ParakeetModel.from_checkpoint(ckpt)

    return get


@pytest.fixture(scope="module")
def our_forward(ours, signals):
    """``our_forward(variant, clip)``: our mel, encoder output and lengths (cached)."""

    @cache
    def get(name: str, clip: str) -> dict[str, Any]:
        model = ours(name)[1]
        x = torch.from_numpy(np.ascontiguousarray(signals[clip])).unsqueeze(0)
        n = torch.tensor([x.shape[1]])
        with torch.inference_mode():
            mel, mel_len = model.preprocessor(x, n)
            enc, enc_len = model.encoder(mel, mel_len)
        return {
            "mel": mel[0],
            "mel_length": int(mel_len[0]),
            "encoder": enc[0],
            "encoder_length": int(enc_len[0]),
        }

    return get


@pytest.fixture(scope="module")
def wav_paths(speech_paths, signals, tmp_path_factory) -> dict[str, Path]:
    """The transcribe clips as files: speech as committed, the rest written as 16-bit WAV."""
    import soundfile as sf

    root = tmp_path_factory.mktemp("parity_wavs")
    out = {name: speech_paths[name] for name in SPEECH + ("speech_15s",)}
    for name in TRANSCRIBE_CLIPS:
        if name not in out:
            out[name] = root / f"{name}.wav"
            sf.write(str(out[name]), signals[name], 16000, subtype="PCM_16")
    return out


def max_diff(ours: torch.Tensor | np.ndarray, ref: np.ndarray) -> float:
    a = ours.detach().numpy() if isinstance(ours, torch.Tensor) else np.asarray(ours)
    assert a.shape == ref.shape, (a.shape, ref.shape)
    return float(np.abs(a.astype(np.float64) - ref.astype(np.float64)).max()) if a.size else 0.0


def assert_close(what: str, ours, ref: np.ndarray, k: int) -> None:
    """``max |ours - ref| <= k * eps32 * max |ref|`` (see the module docstring)."""
    scale = float(np.abs(ref).max()) if ref.size else 0.0
    diff = max_diff(ours, ref)
    bound = k * EPS32 * scale
    assert np.isfinite(diff) and diff <= bound, (
        f"{what}: max |diff| {diff:.3g} > {bound:.3g} = {k} eps32 x {scale:.3g} "
        f"(= {diff / (EPS32 * max(scale, 1e-30)):.1f} eps32 x scale)"
    )


# --------------------------------------------------------------------------------------
# 1. Loading NeMo's .nemo
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_our_loader_reads_nemos_checkpoint(nemo_checkpoints, ours, name):
    """Config, tokenizer and every weight come out of NeMo's file exactly as NeMo has them."""
    nemo_model = nemo_checkpoints[name].model
    v = nemo_checkpoints[name].variant
    ckpt, model = ours(name)
    cfg = ckpt.config
    assert cfg.model_type == v.model_type
    assert tuple(cfg.durations) == tuple(v.durations)
    assert (cfg.vocab_size, cfg.blank_id, cfg.num_outputs) == (
        v.vocab_size,
        v.blank_id,
        v.joint_out,
    )
    assert cfg.max_symbols == MAX_SYMBOLS
    assert cfg.encoder.subsampling_factor == v.subsampling_factor
    assert cfg.preprocessor.features == v.features
    assert cfg.preprocessor.normalize == v.normalize
    assert cfg.frame_seconds == pytest.approx(v.frame_seconds, abs=1e-12)
    assert ckpt.tokenizer.pieces == [
        nemo_model.tokenizer.ids_to_tokens([i])[0] for i in range(v.vocab_size)
    ]

    # the strict load took every tensor NeMo saved, bit for bit, and nothing else
    theirs = nemo_model.state_dict()
    mine = model.state_dict()
    assert set(mine) == set(theirs)
    for key, value in mine.items():
        assert value.dtype == theirs[key].dtype and torch.equal(value, theirs[key]), key
    assert not model.training


# --------------------------------------------------------------------------------------
# 2. Tensors: mel, encoder, prediction network, joint
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("clip", CLIPS)
@pytest.mark.parametrize("name", NAMES)
def test_mel_and_encoder_match_nemo(reference, our_forward, name, clip):
    v = VARIANTS[name]
    ref = reference(name, clip)
    got = our_forward(name, clip)
    n = ref["num_samples"]

    assert got["mel_length"] == ref["mel_length"] == n // HOP
    assert tuple(got["mel"].shape) == ref["mel"].shape
    m = ref["mel_length"]
    assert_close(f"{name}/{clip} mel", got["mel"][:, :m], ref["mel"][:, :m], K_MEL)

    # NeMo returns encoder_frames(N // hop + 1) frames, one past its length when N // hop is
    # a multiple of the subsampling factor; we must return the same layout.
    t = ref["encoder_length"]
    assert got["encoder_length"] == t == v.encoder_length(m) >= 1
    assert tuple(got["encoder"].shape) == ref["encoder"].shape
    extra = ref["encoder"].shape[1] - t
    assert extra == (1 if m % v.subsampling_factor == 0 else 0)
    assert_close(f"{name}/{clip} encoder", got["encoder"][:, :t], ref["encoder"][:, :t], K_ENCODER)


def test_edge_lengths_hit_both_encoder_layouts(reference):
    """The edge clips really exercise the extra frame and its absence for every variant."""
    for name, v in VARIANTS.items():
        mult, other = reference(name, "mult_len"), reference(name, "other_len")
        assert mult["mel_length"] % v.subsampling_factor == 0
        assert mult["encoder"].shape[1] == mult["encoder_length"] + 1
        assert other["mel_length"] % v.subsampling_factor != 0
        assert other["encoder"].shape[1] == other["encoder_length"]
        assert reference(name, "one_frame")["encoder_length"] == 1
        assert reference(name, "one_mel_frame")["mel_length"] == 1
        assert reference(name, "one_mel_frame")["encoder_length"] == 1


def _our_prediction(model, ckpt, tokens: list[int]):
    """Our prediction network one token at a time with the state carried, two ways: the
    module (``decoder.predict``) and the greedy decoder's own steps (``TorchSteps``), which
    also apply the joint's prediction projection."""
    state = None
    outs, hs, cs = [], [], []
    with torch.inference_mode():
        for tok in tokens:
            g, state = model.decoder.predict(torch.tensor([[tok]]), state)
            outs.append(g[0, 0])
            hs.append(state[0][:, 0])
            cs.append(state[1][:, 0])
    steps = TorchSteps(model, torch.zeros(ckpt.config.encoder.d_model, 1))
    assert tokens[0] == ckpt.config.blank_id
    s = steps.start()
    proj, hs2, cs2 = [s[0]], [s[1][0][:, 0]], [s[1][1][:, 0]]
    for tok in tokens[1:]:
        s = steps.predict(tok, s)
        proj.append(s[0])
        hs2.append(s[1][0][:, 0])
        cs2.append(s[1][1][:, 0])
    return (
        torch.stack(outs),
        torch.stack(hs),
        torch.stack(cs),
        torch.stack(proj),
        torch.stack(hs2),
        torch.stack(cs2),
    )


@pytest.mark.parametrize("name", NAMES)
def test_prediction_network_matches_nemo(nemo_checkpoints, reference, ours, speech_audio, name):
    """Outputs and (h, c) of every LSTM layer after each token: on the harness's fixed token
    sequence and on NeMo's own long hypothesis for ``speech_15s`` (state carried through it)."""
    ckpt, model = ours(name)
    long_tokens = reference(name, "speech_15s")["tokens"]
    assert len(long_tokens) >= 20
    refs = [
        reference(name, "clip_a"),
        nemo_reference(
            nemo_checkpoints[name].model,
            speech_audio["clip_b"],
            tokens=long_tokens,
            with_alignments=False,
        ),
    ]
    for ref in refs:
        toks = ref["pred_tokens"]
        out, h, c, proj, h2, c2 = _our_prediction(model, ckpt, toks)
        u = len(toks)
        assert tuple(out.shape) == ref["pred_out"].shape == (u, VARIANTS[name].pred_hidden)
        assert_close(f"{name} pred_out (U={u})", out, ref["pred_out"], K_PRED)
        assert_close(f"{name} pred_state_h", h, ref["pred_state_h"], K_PRED)
        assert_close(f"{name} pred_state_c", c, ref["pred_state_c"], K_PRED)
        # the decode-loop path (mkldnn off, joint.pred applied) agrees as well
        assert_close(f"{name} decode-step pred proj", proj, ref["joint_pred_proj"], K_PRED)
        assert_close(f"{name} decode-step h", h2, ref["pred_state_h"], K_PRED)
        assert_close(f"{name} decode-step c", c2, ref["pred_state_c"], K_PRED)


@pytest.mark.parametrize("clip", CLIPS)
@pytest.mark.parametrize("name", NAMES)
def test_joint_matches_nemo(reference, ours, our_forward, name, clip):
    """Joint logits over valid encoder frames x the reference tokens, from *our* encoder and
    prediction network outputs; and NeMo's log-softmax of them."""
    ckpt, model = ours(name)
    ref = reference(name, clip)
    got = our_forward(name, clip)
    t = ref["encoder_length"]
    out = _our_prediction(model, ckpt, ref["pred_tokens"])[0]
    with torch.inference_mode():
        f = got["encoder"][:, :t].T.unsqueeze(0)  # [1, T, D]
        enc_proj = model.joint.project_encoder(f)[0]
        logits = model.joint(f, out.unsqueeze(0))[0]  # [T, U+1, V+1+D]
        logprobs = torch.log_softmax(logits, dim=-1)
    assert_close(f"{name}/{clip} joint enc proj", enc_proj, ref["joint_enc_proj"][:t], K_JOINT)
    assert_close(f"{name}/{clip} joint logits", logits, ref["joint_raw"][:t], K_JOINT)
    assert_close(f"{name}/{clip} joint log-softmax", logprobs, ref["joint_logprobs"][:t], K_JOINT)


# --------------------------------------------------------------------------------------
# 3. Greedy decoding
# --------------------------------------------------------------------------------------


def _hyp(tokens) -> dict[str, list[int]]:
    return {
        "tokens": [t.id for t in tokens],
        "timestamps": [t.frame for t in tokens],
        "durations": [t.duration for t in tokens],
    }


def _ref_hyp(ref, v) -> dict[str, list[int]]:
    return {
        "tokens": ref["tokens"],
        "timestamps": ref["timestamps"],
        # RNNT has no durations; our decoder reports 0 (the frame does not move on a token)
        "durations": ref["durations"] if v.is_tdt else [0] * len(ref["tokens"]),
    }


@pytest.mark.parametrize("clip", CLIPS + ("speech_15s",))
@pytest.mark.parametrize("name", NAMES)
def test_greedy_decoding_end_to_end(reference, ours, signals, speech_audio, name, clip):
    """Audio -> our preprocessor, encoder and greedy decoder: the same token ids, frames and
    TDT durations as NeMo's ``greedy_batch`` decoding of NeMo's encoder output."""
    v = VARIANTS[name]
    ckpt, model = ours(name)
    cfg = ckpt.config
    audio = speech_audio["speech_15s"] if clip == "speech_15s" else signals[clip]
    x = torch.from_numpy(np.ascontiguousarray(audio)).unsqueeze(0)
    with torch.inference_mode():
        enc, enc_len = model.encode(x, torch.tensor([x.shape[1]]))
    frames = int(enc_len[0])
    tokens = greedy_decode(
        TorchSteps(model, enc[0]), frames, cfg.blank_id, cfg.durations, cfg.max_symbols
    )
    ref = reference(name, clip)
    # no decision on NeMo's path is closer than the joint's fp32 bound allows (see top)
    joint_bound = K_JOINT * EPS32 * float(np.abs(ref["joint_raw"]).max())
    assert min(ref["min_label_margin"], ref["min_duration_margin"]) > 2 * joint_bound
    assert frames == ref["encoder_length"]
    assert _hyp(tokens) == _ref_hyp(ref, v)
    assert ckpt.tokenizer.decode([t.id for t in tokens]) == ref["text"]


@pytest.mark.parametrize("name", NAMES)
def test_greedy_decoding_of_nemos_encoder_output(reference, ours, name):
    """NeMo's own encoder output into our decoder alone: decoding in isolation."""
    v = VARIANTS[name]
    ckpt, model = ours(name)
    cfg = ckpt.config
    for clip in CLIPS + ("speech_15s",):
        ref = reference(name, clip)
        enc = torch.from_numpy(ref["encoder"])  # [D, T_returned]: the extra frame stays unread
        tokens = greedy_decode(
            TorchSteps(model, enc),
            ref["encoder_length"],
            cfg.blank_id,
            cfg.durations,
            cfg.max_symbols,
        )
        assert _hyp(tokens) == _ref_hyp(ref, v), clip


def test_decoding_cases_are_covered(reference):
    """The references the decoding tests follow are non-trivial: every speech clip yields
    tokens (and blanks) for every variant, TDT uses duration 0 and durations > 0, the
    10-symbols-per-frame cap is hit by TDT and RNNT, and some clip yields no token at all."""
    cap = {}
    empty = []
    for name, v in VARIANTS.items():
        durations: list[int] = []
        for clip in SPEECH:
            ref = reference(name, clip)
            assert len(ref["tokens"]) > 0 and ref["text"].strip(), (name, clip)
            assert ref["blank_steps"] > 0, (name, clip)
            durations += ref["durations"]
        if v.is_tdt:
            assert 0 in durations and any(d > 0 for d in durations), (name, set(durations))
        for clip in CLIPS + ("speech_15s",):
            ref = reference(name, clip)
            cap[v.model_type] = cap.get(v.model_type, 0) + ref["max_symbols_frames"]
            if not ref["tokens"]:
                empty.append((name, clip))
    assert cap["tdt"] > 0 and cap["rnnt"] > 0, cap
    assert empty, "no clip decodes to nothing"


# --------------------------------------------------------------------------------------
# 4. NeMo's transcribe(): text and word timestamps
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def transcripts(nemo_checkpoints, ours, wav_paths):
    """``transcripts(variant)``: (NeMo texts, NeMo word stamps, our FileTranscripts) over
    ``TRANSCRIBE_CLIPS``, each side reading the same WAV files."""

    @cache
    def get(name: str):
        nemo_model = nemo_checkpoints[name].model
        paths = [wav_paths[c] for c in TRANSCRIBE_CLIPS]
        texts = nemo_transcribe_text(nemo_model, paths)
        words = nemo_word_timestamps(nemo_model, paths)
        transcriber = Transcriber(ours(name)[0])
        mine = [transcriber.transcribe_file(p) for p in paths]
        return texts, words, mine

    return get


@pytest.mark.parametrize("name", NAMES)
def test_transcribe_text_matches_nemo(transcripts, name):
    texts, _, mine = transcripts(name)
    assert len(texts) == len(mine) == len(TRANSCRIBE_CLIPS)
    for clip, theirs, ft in zip(TRANSCRIBE_CLIPS, texts, mine):
        assert ft.transcript.text == theirs, clip
    # both sides say something on speech: the comparison is not between empty strings
    for clip in SPEECH:
        assert texts[TRANSCRIBE_CLIPS.index(clip)].strip(), (name, clip)


@pytest.mark.parametrize("name", NAMES)
def test_word_timestamps_match_nemo(transcripts, ours, name):
    """Words and their start/end: NeMo's seconds (``start``/``end``) and encoder-frame
    offsets (``start_offset``/``end_offset``) against ours."""
    _, words, mine = transcripts(name)
    fs = ours(name)[0].config.frame_seconds
    total = 0
    for clip, theirs, ft in zip(TRANSCRIBE_CLIPS, words, mine):
        got = ft.transcript.words
        assert [w.word for w in got] == [w["word"] for w in theirs], clip
        for g, w in zip(got, theirs):
            assert g.start == pytest.approx(w["start"], abs=1e-6), (clip, g, w)
            assert g.end == pytest.approx(w["end"], abs=1e-6), (clip, g, w)
            assert (round(g.start / fs), round(g.end / fs)) == (
                w["start_offset"],
                w["end_offset"],
            ), (clip, g, w)
        total += len(theirs)
    assert total > 0


def test_word_timestamp_cases_are_covered(transcripts, ours):
    """The word comparisons above include NeMo's special cases: for TDT, a punctuation mark
    whose own span is discarded (the word ends where the token before it ends), ``<unk>``
    as a word of its own (`` ⁇ ``), and the empty word a lone ``▁`` makes."""
    refined = unk = empty = 0
    for name, v in VARIANTS.items():
        punct = ours(name)[0].tokenizer.punctuation
        _, words, mine = transcripts(name)
        for theirs, ft in zip(words, mine):
            unk += sum(w["word"] == " \u2047 " for w in theirs)
            empty += sum(w["word"] == "" for w in theirs)
            toks = ft.transcript.tokens
            for i in range(1, len(toks)):
                if v.is_tdt and toks[i].piece in punct and toks[i].end > toks[i - 1].end:
                    refined += 1
    assert refined and unk and empty, (refined, unk, empty)
