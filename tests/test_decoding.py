"""Greedy TDT/RNNT decoding rules, driven by scripted joint decisions.

The step functions below are the *input* of the loop (what a joint and prediction network
would decide), not a stand-in for a dependency: each test scripts the decisions and states the
token sequence NeMo's label-looping greedy decoder
(``transducer_decoding/tdt_label_looping.py``, ``rnnt_label_looping.py``) produces from them:

* the prediction network runs once on the blank (SOS) symbol, then once per emitted token;
  a blank never advances it;
* TDT: a decision is (label, duration index); a blank whose duration is 0 moves by 1
  (``durations.masked_fill_(durations == 0 & blank_mask, 1)``); every decision moves time by its
  duration, tokens included; a token is recorded at the frame where it was found, with its
  own duration;
* RNNT: a blank moves by one frame, a token stays on the frame;
* after ``max_symbols`` tokens on one frame without moving, time moves by one
  (``force_blank_mask``); decoding ends when time reaches the number of valid frames.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from parakeet_coreml.config import EncoderConfig, ModelConfig, PreprocessorConfig
from parakeet_coreml.decoding import Token, greedy_decode, to_transcript
from parakeet_coreml.tokenizer import Tokenizer, build_synthetic_sentencepiece

BLANK = 5  # vocabulary of 5 tokens: ids 0-4, blank 5
TDT = (0, 1, 2, 3, 4)


@dataclass
class Scripted:
    """Decisions from ``rule(frame, history) -> (label, duration index)``.

    The decoder state is the tuple of emitted tokens, so a rule can depend on what the
    prediction network has seen. Every call is logged; runaway loops fail instead of hanging.
    """

    rule: Callable[[int, tuple[int, ...]], tuple[int, int]]
    calls: list[tuple[int, tuple[int, ...]]] = field(default_factory=list)
    predicted: list[int] = field(default_factory=list)
    starts: int = 0

    def start(self) -> tuple[int, ...]:
        self.starts += 1
        return ()

    def predict(self, token: int, state: tuple[int, ...]) -> tuple[int, ...]:
        assert token != BLANK, "the prediction network must not advance on blank"
        self.predicted.append(token)
        return state + (token,)

    def decide(self, frame: int, state: tuple[int, ...]) -> tuple[int, int]:
        self.calls.append((frame, state))
        assert len(self.calls) < 10_000, "decoding does not terminate"
        return self.rule(frame, state)


def table(decisions: dict[tuple[int, int], tuple[int, int]], default: tuple[int, int]):
    """A rule from {(frame, tokens emitted so far): decision}."""
    return lambda frame, hist: decisions.get((frame, len(hist)), default)


def tokens(*triples: tuple[int, int, int]) -> list[Token]:
    return [Token(*t) for t in triples]


def test_blank_with_duration_zero_moves_one_frame() -> None:
    steps = Scripted(lambda f, h: (BLANK, TDT.index(0)))
    assert greedy_decode(steps, 6, BLANK, TDT) == []
    assert [f for f, _ in steps.calls] == [0, 1, 2, 3, 4, 5]
    assert steps.starts == 1 and steps.predicted == []


def test_blank_durations_skip_frames() -> None:
    # blank with duration 2 at frame 0 lands on 2, with 3 on 5, then 1 per frame to the end
    rule = table({(0, 0): (BLANK, 2), (2, 0): (BLANK, 3)}, (BLANK, 1))
    steps = Scripted(rule)
    assert greedy_decode(steps, 8, BLANK, TDT) == []
    assert [f for f, _ in steps.calls] == [0, 2, 5, 6, 7]


def test_tdt_tokens_carry_frame_and_duration() -> None:
    rule = table(
        {
            (0, 0): (3, 2),      # token 3 at frame 0, duration 2 -> t = 2
            (2, 1): (BLANK, 1),  # blank -> t = 3
            (3, 1): (4, 0),      # token 4 at frame 3, duration 0 -> stays on 3
            (3, 2): (1, 3),      # token 1 at frame 3, duration 3 -> t = 6 >= 5: done
        },
        (BLANK, 1),
    )
    steps = Scripted(rule)
    assert greedy_decode(steps, 5, BLANK, TDT) == tokens((3, 0, 2), (4, 3, 0), (1, 3, 3))
    assert steps.predicted == [3, 4, 1]
    # the joint saw the decoder state of every token emitted before it
    assert steps.calls == [(0, ()), (2, (3,)), (3, (3,)), (3, (3, 4))]


def test_duration_index_maps_through_the_duration_list() -> None:
    durations = (0, 2, 5)  # a model whose joint predicts durations {0, 2, 5}
    rule = table({(0, 0): (2, 1), (2, 1): (BLANK, 0), (3, 1): (0, 2)}, (BLANK, 1))
    steps = Scripted(rule)
    # token at 0 with duration 2; blank "0" moves 1; token at 3 with duration 5 ends it
    assert greedy_decode(steps, 8, BLANK, durations) == tokens((2, 0, 2), (0, 3, 5))
    assert [f for f, _ in steps.calls] == [0, 2, 3]


@pytest.mark.parametrize("max_symbols", [10, 3])
def test_max_symbols_per_frame_then_advance(max_symbols: int) -> None:
    # The joint always wants token 2 with duration 0: without the cap it never moves.
    steps = Scripted(lambda f, h: (2, TDT.index(0)))
    got = greedy_decode(steps, 3, BLANK, TDT, max_symbols=max_symbols)
    assert got == [Token(2, frame, 0) for frame in range(3) for _ in range(max_symbols)]
    assert len(steps.predicted) == 3 * max_symbols


def test_cap_counts_only_tokens_that_stay_on_the_frame() -> None:
    # Frame 0: 9 tokens with duration 0, then a token with duration 1 (10 tokens on frame 0,
    # but the last one moved time itself: no extra jump). Frame 1: a blank to frame 2.
    rule = lambda f, h: (1, 0) if f == 0 and len(h) < 9 else (2, 1) if f == 0 else (BLANK, 1)
    steps = Scripted(rule)
    got = greedy_decode(steps, 3, BLANK, TDT)
    assert got == [Token(1, 0, 0)] * 9 + [Token(2, 0, 1)]
    assert [f for f, _ in steps.calls] == [0] * 10 + [1, 2]


def test_cap_resets_on_a_new_frame() -> None:
    # 10 tokens at frame 0 (forced to frame 1), 4 at frame 1 with duration 0, then blank.
    rule = lambda f, h: (3, 0) if f == 0 or len(h) < 14 else (BLANK, 1)
    steps = Scripted(rule)
    got = greedy_decode(steps, 2, BLANK, TDT)
    assert got == [Token(3, 0, 0)] * 10 + [Token(3, 1, 0)] * 4


def test_no_cap_when_max_symbols_is_none() -> None:
    rule = lambda f, h: (4, 0) if len(h) < 25 else (BLANK, 1)
    got = greedy_decode(Scripted(rule), 2, BLANK, TDT, max_symbols=None)
    assert got == [Token(4, 0, 0)] * 25


def test_rnnt_blank_advances_one_frame_tokens_stay() -> None:
    # RNNT: no duration outputs (durations == ()); the duration index is ignored.
    rule = table({(0, 0): (1, 0), (0, 1): (2, 0), (2, 2): (3, 0)}, (BLANK, 0))
    steps = Scripted(rule)
    got = greedy_decode(steps, 4, BLANK, ())
    assert got == tokens((1, 0, 0), (2, 0, 0), (3, 2, 0))
    assert [f for f, _ in steps.calls] == [0, 0, 0, 1, 2, 2, 3]


def test_rnnt_max_symbols() -> None:
    steps = Scripted(lambda f, h: (0, 0))
    got = greedy_decode(steps, 2, BLANK, (), max_symbols=10)
    assert got == [Token(0, 0, 0)] * 10 + [Token(0, 1, 0)] * 10


def test_no_frames_no_decisions() -> None:
    steps = Scripted(lambda f, h: (1, 1))
    assert greedy_decode(steps, 0, BLANK, TDT) == []
    assert steps.calls == []


def test_token_on_the_last_frame_with_a_long_duration_is_kept() -> None:
    rule = table({(3, 0): (2, 4)}, (BLANK, 1))
    assert greedy_decode(Scripted(rule), 4, BLANK, TDT) == tokens((2, 3, 4))


# --------------------------------------------------------------------------------------
# Transcript: seconds, text and words
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer(build_synthetic_sentencepiece(256, seed=0))


def cfg_for(model_type: str, hop: int = 160, factor: int = 8, rate: int = 16000) -> ModelConfig:
    return ModelConfig(
        preprocessor=PreprocessorConfig(sample_rate=rate, hop_length=hop),
        encoder=EncoderConfig(subsampling_factor=factor),
        model_type=model_type,
        durations=TDT if model_type == "tdt" else (),
    )


def ids_of(tok: Tokenizer, *pieces: str) -> list[int]:
    index = {p: i for i, p in enumerate(tok.pieces)}
    return [index[p] for p in pieces]


@pytest.mark.parametrize("hop, factor, rate", [(160, 8, 16000), (160, 4, 16000), (80, 8, 8000), (256, 8, 22050)])
def test_token_seconds_are_frames_times_hop_times_subsampling(tok: Tokenizer, hop: int, factor: int, rate: int) -> None:
    frame_s = hop * factor / rate
    a, b, c = ids_of(tok, "▁the", "▁a", "s")
    toks = [Token(a, 0, 2), Token(b, 2, 0), Token(c, 2, 3)]
    for model_type in ("tdt", "rnnt"):
        tr = to_transcript(toks, tok, cfg_for(model_type, hop, factor, rate))
        assert [s.frame for s in tr.tokens] == [0, 2, 2] and [s.duration for s in tr.tokens] == [2, 0, 3]
        for stamp, t in zip(tr.tokens, toks):
            span = t.duration if model_type == "tdt" else 1  # RNNT tokens occupy one frame
            assert stamp.start == pytest.approx(t.frame * frame_s, abs=1e-6)
            assert stamp.end == pytest.approx((t.frame + span) * frame_s, abs=1e-6)
            assert stamp.piece == tok.pieces[t.id]


def test_text_is_the_tokenizers_decoding(tok: Tokenizer) -> None:
    ids = ids_of(tok, "▁the", "r", "e", "▁", ",", "▁and", ".")
    toks = [Token(i, 2 * n, 1) for n, i in enumerate(ids)]
    tr = to_transcript(toks, tok, cfg_for("tdt"))
    assert tr.text == tok.decode(ids) and tr.token_ids == ids


def test_words_start_at_word_boundary_pieces(tok: Tokenizer) -> None:
    # "▁" starts a word; continuation pieces join it. Frames: 0.08 s each.
    pieces = ["▁the", "r", "e", "▁a", "p", "p", "l", "e", "▁is"]
    frames = [(0, 1), (1, 1), (3, 2), (6, 1), (7, 0), (7, 1), (9, 1), (10, 2), (14, 1)]
    toks = [Token(i, f, d) for i, (f, d) in zip(ids_of(tok, *pieces), frames)]
    tr = to_transcript(toks, tok, cfg_for("tdt"))
    fs = 0.08
    assert [w.word for w in tr.words] == ["there", "apple", "is"]
    assert [w.word for w in tr.words] == tok.sp.decode_pieces(pieces).split()
    assert [x for w in tr.words for x in (w.start, w.end)] == pytest.approx(
        [0 * fs, 5 * fs, 6 * fs, 12 * fs, 14 * fs, 15 * fs], abs=1e-6
    )
    rnnt = to_transcript(toks, tok, cfg_for("rnnt"))
    assert [x for w in rnnt.words for x in (w.start, w.end)] == pytest.approx(
        [0 * fs, 4 * fs, 6 * fs, 11 * fs, 14 * fs, 15 * fs], abs=1e-6
    )


def test_empty_transcript(tok: Tokenizer) -> None:
    tr = to_transcript([], tok, cfg_for("tdt"))
    assert tr.text == "" and tr.tokens == [] and tr.words == []
    assert tr.to_dict() == {"text": "", "tokens": [], "words": []}


# --- the reference's decode step: fast paths that must not change a single bit ---------------


@pytest.mark.parametrize("rows, cols", [(8198, 640), (2560, 640), (262, 64), (63, 17)])
@pytest.mark.parametrize("parts", [1, 2, 3, 4])
def test_row_split_matvec_is_bit_identical_to_one_addmv(rows: int, cols: int, parts: int) -> None:
    import torch

    from parakeet_coreml.decoding import RowSplit

    gen = torch.Generator().manual_seed(rows + cols)
    w1, w2 = torch.randn(rows, cols, generator=gen), torch.randn(rows, cols, generator=gen)
    b1, b2 = torch.randn(rows, generator=gen), torch.randn(rows, generator=gen)
    x1, x2 = torch.randn(cols, generator=gen), torch.randn(cols, generator=gen)
    with torch.inference_mode():
        assert torch.equal(RowSplit([(w1, b1)], parts)(x1), torch.addmv(b1, w1, x1))
        two = RowSplit([(w1, b1), (w2, b2)], parts)(x1, x2)
        assert torch.equal(two, torch.addmv(b1, w1, x1) + torch.addmv(b2, w2, x2))


@pytest.mark.parametrize("preset", ["tiny", "v3"])
def test_decode_steps_equal_nn_lstm_and_linear_bit_for_bit(preset: str) -> None:
    """TorchSteps (unrolled cell, cached first-layer gates, row split) against the modules
    the reference model is made of, token by token with repeats, state carried."""
    import torch

    from parakeet_coreml.decoding import TorchSteps
    from parakeet_coreml.model import ParakeetModel
    from parakeet_coreml.synthetic import preset_config, randomize_

    cfg = preset_config(preset)
    model = ParakeetModel(cfg).eval()
    randomize_(model, 3)
    enc = torch.randn(cfg.encoder.d_model, 3, generator=torch.Generator().manual_seed(1))
    steps = TorchSteps(model, enc)
    saved = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False  # ATen's LSTM kernel, the one TorchSteps unrolls
    try:
        with torch.inference_mode():
            state = steps.start()
            g, hc = model.decoder.predict(torch.tensor([[cfg.blank_id]]), None)
            for tok in [5, 7, 5, 5, 2, 7]:
                for frame in range(enc.shape[1]):
                    logits = model.joint(enc.T[None, frame : frame + 1], g)[0, 0, 0]
                    vocab = cfg.vocab_size + 1
                    want = (int(logits[:vocab].argmax()), int(logits[vocab:].argmax()) if cfg.durations else 0)
                    assert steps.decide(frame, state) == want
                state = steps.predict(tok, state)
                g, hc = model.decoder.predict(torch.tensor([[tok]]), hc)
                assert torch.equal(state[0], model.joint.pred(g[0, 0]))
                assert torch.equal(state[1][0], hc[0]) and torch.equal(state[1][1], hc[1])
    finally:
        torch.backends.mkldnn.enabled = saved
