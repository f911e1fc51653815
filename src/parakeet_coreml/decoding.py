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

import functools
from concurrent.futures import ThreadPoolExecutor
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


_ROW_BLOCK = 64  # MKL's gemv gives bit-identical rows when a matrix is cut at multiples of 64
_MAX_PARTS = 4


@functools.cache
def _pool() -> ThreadPoolExecutor:
    """Workers for all blocks but the first (which the calling thread computes)."""
    return ThreadPoolExecutor(max_workers=_MAX_PARTS - 1, thread_name_prefix="parakeet-decode")


def decode_parts() -> int:
    """Row blocks per matrix-vector product: one per torch thread, at most 4."""
    return max(1, min(_MAX_PARTS, torch.get_num_threads()))


class RowSplit:
    """``out = sum_i (b_i + W_i x_i)`` with the rows cut into blocks computed in parallel.

    A single ``addmv`` runs on one core here (MKL does not thread a 21 MB gemv), while the
    decode step is memory-bound: two cores each streaming half the rows nearly halve its time.
    Cuts fall on multiples of 64 rows, where MKL's row results are bit-identical to the
    uncut product, and each block sums its terms in the same order, so the result is too.
    """

    def __init__(self, terms: list[tuple[torch.Tensor, torch.Tensor]], parts: int):
        rows = terms[0][0].shape[0]
        step = -(-rows // max(1, parts))
        step = -(-step // _ROW_BLOCK) * _ROW_BLOCK
        self.rows = rows
        self.blocks = [(s, min(s + step, rows)) for s in range(0, rows, step)]
        self.terms = terms
        self.pool = _pool() if len(self.blocks) > 1 else None

    @torch.inference_mode()  # thread-local: the worker threads need it too
    def _block(self, out: torch.Tensor, xs: tuple[torch.Tensor, ...], start: int, stop: int) -> None:
        (w, b), x = self.terms[0], xs[0]
        torch.addmv(b[start:stop], w[start:stop], x, out=out[start:stop])
        for (w, b), x in zip(self.terms[1:], xs[1:]):
            out[start:stop] += torch.addmv(b[start:stop], w[start:stop], x)

    def __call__(self, *xs: torch.Tensor, first: torch.Tensor | None = None) -> torch.Tensor:
        """``first``: an already computed term added before the others (cached gates)."""
        out = torch.empty(self.rows)
        if self.pool is None:
            self._block(out, xs, 0, self.rows)
        else:
            futures = [self.pool.submit(self._block, out, xs, s, e) for s, e in self.blocks[1:]]
            self._block(out, xs, *self.blocks[0])
            for f in futures:
                f.result()
        return out if first is None else first + out


class TorchSteps:
    """Decode steps on the PyTorch reference, written for single-utterance latency.

    Greedy decoding is one LSTM step and one joint row per token; at v3 sizes that reads
    ~42 MB of weights per token, so the step is memory-bound and per-call overhead matters.
    What keeps it lean gives bit-identical results to ``nn.LSTM`` (oneDNN off) and
    ``nn.Linear``, the same kernels in the same order:

    * the encoder projection of the joint is computed once for all frames;
    * the LSTM cell is unrolled by hand over ``addmv`` (``nn.LSTM`` per call costs dispatch
      and, with oneDNN on, ~47 ms of primitive set-up per single step here);
    * the first layer's input gates depend only on the token, so they are cached per token
      id (an emitted token's embedding never changes), saving 1/4 of the LSTM reads on
      repeats;
    * every product is split by rows across the torch threads (:class:`RowSplit`).

    v3 saturated (1880 tokens, bench/reference_speed.py): 8.5 s with ``nn.LSTM`` and
    ``nn.Linear``, 5.2 s unrolled with the gate cache, about 3 s row-split on two cores.
    """

    def __init__(self, model: Any, encoder_out: torch.Tensor, parts: int | None = None):
        """``encoder_out``: [D, T] or [1, D, T] for one utterance."""
        enc = encoder_out.reshape(-1, encoder_out.shape[-1]) if encoder_out.dim() == 3 else encoder_out
        parts = decode_parts() if parts is None else parts
        self.vocab_plus_blank = model.cfg.vocab_size + 1
        joint = model.joint
        with torch.inference_mode():
            self.f = joint.project_encoder(enc.transpose(0, 1).contiguous())  # [T, H]
        self.act = joint.joint_net[0]
        out = joint.joint_net[-1]
        self.joint_out = RowSplit([(out.weight.detach(), out.bias.detach())], parts)
        self.embed = model.decoder.prediction["embed"].weight.detach()
        lstm = model.decoder.prediction["dec_rnn"].lstm
        weights = [
            tuple(getattr(lstm, f"{name}_l{i}").detach() for name in ("weight_ih", "bias_ih", "weight_hh", "bias_hh"))
            for i in range(lstm.num_layers)
        ]
        self.w_ih0, self.b_ih0 = weights[0][0], weights[0][1]
        self.gates = [
            RowSplit([(w_hh, b_hh)] if i == 0 else [(w_ih, b_ih), (w_hh, b_hh)], parts)
            for i, (w_ih, b_ih, w_hh, b_hh) in enumerate(weights)
        ]
        self.hidden = lstm.hidden_size
        self.pred = RowSplit([(joint.pred.weight.detach(), joint.pred.bias.detach())], parts)
        self._input_gates: dict[int, torch.Tensor] = {}

    def _first_input_gates(self, token: int) -> torch.Tensor:
        gates = self._input_gates.get(token)
        if gates is None:
            gates = self._input_gates[token] = torch.addmv(self.b_ih0, self.w_ih0, self.embed[token])
        return gates

    @torch.inference_mode()
    def _advance(self, token: int, state: tuple[torch.Tensor, torch.Tensor] | None) -> Any:
        """``state``: (h, c) as ``nn.LSTM`` keeps it, [layers, 1, hidden]; None for zeros."""
        if state is None:
            zeros = torch.zeros(len(self.gates), 1, self.hidden)
            state = (zeros, zeros)
        h_in, c_in = state[0][:, 0], state[1][:, 0]
        hs, cs = [], []
        for i, gates in enumerate(self.gates):
            if i == 0:  # its input gates depend on the token alone: cached
                g = gates(h_in[0], first=self._first_input_gates(token))
            else:
                g = gates(x, h_in[i])
            i_g, f_g, g_g, o_g = g.chunk(4)
            c = torch.sigmoid(f_g) * c_in[i] + torch.sigmoid(i_g) * torch.tanh(g_g)
            x = torch.sigmoid(o_g) * torch.tanh(c)
            hs.append(x)
            cs.append(c)
        return self.pred(x), (torch.stack(hs).unsqueeze(1), torch.stack(cs).unsqueeze(1))

    def start(self) -> Any:
        return self._advance(self.vocab_plus_blank - 1, None)

    def predict(self, token: int, state: Any) -> Any:
        return self._advance(token, state[1])

    @torch.inference_mode()
    def decide(self, frame: int, state: Any) -> tuple[int, int]:
        logits = self.joint_out(self.act(self.f[frame] + state[0]))
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
