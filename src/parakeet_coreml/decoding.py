"""Greedy TDT / RNNT decoding over any runtime, with token and word timestamps.

The loop follows NeMo's label-looping greedy decoder for a single utterance:

* start: the prediction network runs once on the blank (start) symbol from a zero state;
* at frame t the joint gives a token k and a duration d (RNNT: d = 0 for tokens, 1 for blank);
  a blank with d = 0 is forced to d = 1; t += d; blanks repeat at the new t with the same
  decoder output (only the joint runs again);
* a token is emitted at the frame where it was found, with its raw duration; the prediction
  network then advances on it;
* after ``max_symbols`` tokens on one frame without moving, t += 1.

The joint and the prediction network are reached through :class:`DecodeSteps`, so the same
loop drives the torch reference, native CoreML and the portable MIL runtime.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import torch

from .config import ModelConfig
from .tokenizer import Tokenizer


class DecodeSteps(Protocol):
    """The two operations greedy decoding needs; ``state`` is opaque to the loop."""

    def start(self) -> Any:
        """Decoder state after the start (blank) symbol from a zero LSTM state."""

    def predict(self, token: int, state: Any) -> Any:
        """Advance the prediction network on an emitted token."""

    def decide(self, frame: int, state: Any) -> tuple[int, int]:
        """Joint at ``frame`` with the state's decoder output: (token id, duration index)."""


@dataclass
class Token:
    id: int
    frame: int
    duration: int


def greedy_decode(
    steps: DecodeSteps,
    num_frames: int,
    blank_id: int,
    durations: tuple[int, ...],
    max_symbols: int | None = 10,
) -> list[Token]:
    """Greedy transducer search over ``num_frames`` valid encoder frames."""
    state = steps.start()
    tokens: list[Token] = []
    t = 0
    last_frame, run = -1, 0

    def duration_of(k: int, index: int) -> int:
        d = durations[index] if durations else 0
        return 1 if k == blank_id and d == 0 else d

    while t < num_frames:
        frame = t
        k, di = steps.decide(t, state)
        d = duration_of(k, di)
        t += d
        while k == blank_id and t < num_frames:
            frame = t
            k, di = steps.decide(t, state)
            d = duration_of(k, di)
            t += d
        if k == blank_id:
            break
        tokens.append(Token(k, frame, d))
        run = run + 1 if last_frame == frame else 1
        last_frame = frame
        state = steps.predict(k, state)
        if max_symbols and run >= max_symbols and last_frame == t:
            t += 1
    return tokens


class TorchSteps:
    """Decode steps on the PyTorch reference, written for single-utterance latency.

    Greedy decoding is one LSTM step and one joint row per token; at v3 sizes that reads
    ~47 MB of weights per token, so the step is memory-bound and per-call overhead matters.
    Three things keep it lean, all exact (same kernels, same operation order as ``nn.LSTM``
    with oneDNN off, bit-identical outputs):

    * the encoder projection of the joint is computed once for all frames;
    * the LSTM cell is unrolled by hand over ``addmv`` (``nn.LSTM`` per call costs dispatch
      and, with oneDNN on, ~47 ms of primitive set-up per single step here);
    * the first layer's input gates depend only on the token, so they are cached per token
      id (an emitted token's embedding never changes), saving 1/4 of the LSTM reads on
      repeats.
    """

    def __init__(self, model: Any, encoder_out: torch.Tensor):
        """``encoder_out``: [D, T] or [1, D, T] for one utterance."""
        enc = encoder_out.reshape(-1, encoder_out.shape[-1]) if encoder_out.dim() == 3 else encoder_out
        self.vocab_plus_blank = model.cfg.vocab_size + 1
        joint = model.joint
        with torch.inference_mode():
            self.f = joint.project_encoder(enc.transpose(0, 1).contiguous())  # [T, H]
        self.act = joint.joint_net[0]
        out = joint.joint_net[-1]
        self.w, self.b = out.weight.detach(), out.bias.detach()
        self.embed = model.decoder.prediction["embed"].weight.detach()
        lstm = model.decoder.prediction["dec_rnn"].lstm
        self.layers = [
            tuple(getattr(lstm, f"{name}_l{i}").detach() for name in ("weight_ih", "bias_ih", "weight_hh", "bias_hh"))
            for i in range(lstm.num_layers)
        ]
        self.hidden = lstm.hidden_size
        self.pred_w, self.pred_b = joint.pred.weight.detach(), joint.pred.bias.detach()
        self._input_gates: dict[int, torch.Tensor] = {}

    def _first_input_gates(self, token: int) -> torch.Tensor:
        gates = self._input_gates.get(token)
        if gates is None:
            w_ih, b_ih = self.layers[0][0], self.layers[0][1]
            gates = self._input_gates[token] = torch.addmv(b_ih, w_ih, self.embed[token])
        return gates

    @torch.inference_mode()
    def _advance(self, token: int, state: tuple[torch.Tensor, torch.Tensor] | None) -> Any:
        """``state``: (h, c) as ``nn.LSTM`` keeps it, [layers, 1, hidden]; None for zeros."""
        if state is None:
            zeros = torch.zeros(len(self.layers), 1, self.hidden)
            state = (zeros, zeros)
        h_in, c_in = state[0][:, 0], state[1][:, 0]
        hs, cs = [], []
        x = self.embed[token]
        for i, (w_ih, b_ih, w_hh, b_hh) in enumerate(self.layers):
            ig = self._first_input_gates(token) if i == 0 else torch.addmv(b_ih, w_ih, x)
            i_g, f_g, g_g, o_g = (ig + torch.addmv(b_hh, w_hh, h_in[i])).chunk(4)
            c = torch.sigmoid(f_g) * c_in[i] + torch.sigmoid(i_g) * torch.tanh(g_g)
            x = torch.sigmoid(o_g) * torch.tanh(c)
            hs.append(x)
            cs.append(c)
        return torch.addmv(self.pred_b, self.pred_w, x), (torch.stack(hs).unsqueeze(1), torch.stack(cs).unsqueeze(1))

    def start(self) -> Any:
        return self._advance(self.vocab_plus_blank - 1, None)

    def predict(self, token: int, state: Any) -> Any:
        return self._advance(token, state[1])

    @torch.inference_mode()
    def decide(self, frame: int, state: Any) -> tuple[int, int]:
        logits = torch.addmv(self.b, self.w, self.act(self.f[frame] + state[0]))
        k = int(torch.argmax(logits[: self.vocab_plus_blank]))
        extra = logits[self.vocab_plus_blank :]
        return k, int(torch.argmax(extra)) if extra.numel() else 0


@dataclass
class TokenStamp:
    id: int
    piece: str
    frame: int
    duration: int
    start: float
    end: float


@dataclass
class WordStamp:
    word: str
    start: float
    end: float


@dataclass
class Transcript:
    text: str
    tokens: list[TokenStamp] = field(default_factory=list)
    words: list[WordStamp] = field(default_factory=list)

    @property
    def token_ids(self) -> list[int]:
        return [t.id for t in self.tokens]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def to_transcript(tokens: list[Token], tokenizer: Tokenizer, cfg: ModelConfig) -> Transcript:
    """Text (NeMo's detokenisation), token stamps and word stamps in seconds.

    A token spans [frame, frame + duration) encoder frames for TDT (NeMo's offsets) and one
    frame for RNNT. Words and their spans follow NeMo's ``transcribe(timestamps=True)``, see
    :func:`word_stamps`.
    """
    fs = cfg.frame_seconds
    stamps = []
    for tok in tokens:
        span = tok.duration if cfg.model_type == "tdt" else 1
        piece = tokenizer.pieces[tok.id] if tok.id < tokenizer.vocab_size else ""
        stamps.append(
            TokenStamp(tok.id, piece, tok.frame, tok.duration, round(tok.frame * fs, 6), round((tok.frame + span) * fs, 6))
        )
    words = [
        WordStamp(word, round(start * fs, 6), round(end * fs, 6))
        for word, start, end in word_stamps(tokens, tokenizer, cfg.model_type == "tdt")
    ]
    return Transcript(tokenizer.decode([t.id for t in tokens]), stamps, words)


def word_stamps(tokens: list[Token], tokenizer: Tokenizer, tdt: bool) -> list[tuple[str, int, int]]:
    """(word, start frame, end frame) exactly as NeMo's RNNT/TDT decoding computes them.

    Token offsets are [frame, frame + duration) for TDT and [frame, frame + 1) for RNNT. For
    TDT a token that decodes to a single punctuation mark is first moved to the end of the
    token before it (NeMo's ``_refine_timestamps_tdt``), so a late "." or "," never stretches
    the word it ends. Words are then built by NeMo's ``get_words_offsets`` for SentencePiece
    ("bpe") vocabularies: a token whose piece differs from its decoded text (``▁word``,
    ``<unk>``, a lone ``▁``) starts a word, other tokens and punctuation join the current one;
    a word's text is the raw SentencePiece decoding of its pieces (so ``<unk>`` gives
    `` ⁇ `` and a lone ``▁`` an empty word, as in NeMo); the first word starts at the first
    token.
    """
    n = len(tokens)
    punct = tokenizer.punctuation
    ids = [t.id for t in tokens]
    pieces = [tokenizer.pieces[i] if 0 <= i < tokenizer.vocab_size else "" for i in ids]
    texts = [tokenizer.decode([i], raw=True) for i in ids]
    starts = [t.frame for t in tokens]
    ends = [t.frame + (t.duration if tdt else 1) for t in tokens]
    if tdt and punct:
        for i in range(1, n):
            if texts[i] in punct:
                starts[i] = ends[i] = ends[i - 1]

    def text_of(idx: list[int]) -> str:
        return tokenizer.decode([ids[k] for k in idx], raw=True)

    words: list[list[Any]] = []  # [word, start, end]
    built: list[int] = []
    first = 0
    for i in range(n):
        text = texts[i]
        is_punct = text in punct and text != " "
        after = None  # the next token's text that is not a lone space
        j = i
        while not after and j < n - 1:
            j += 1
            after = texts[j] if texts[j] != " " else None
        if (pieces[i] != text or (text == " " and after not in punct)) and not is_punct:
            if built:
                words.append([text_of(built), starts[first], ends[i - 1]])
            built = []
            if text != " ":
                built, first = [i], i
        elif is_punct and not built and words:
            last = words[-1]
            last[2] = ends[i]
            last[0] = last[0].removesuffix(" ") + text
        elif is_punct and built:
            if pieces[built[-1]] in (" ", "_", "▁"):
                built.pop()
            built.append(i)
        else:
            if not built:
                first = i
            built.append(i)
    if not words:
        if built:
            words.append([text_of(built), starts[0], ends[-1]])
    else:
        words[0][1] = starts[0]
        if built:
            words.append([text_of(built), starts[first], ends[-1]])
    return [(w, s, e) for w, s, e in words]
