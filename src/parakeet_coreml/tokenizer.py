"""SentencePiece tokenizer: NeMo's detokenisation rule, vocabulary export, synthetic models.

NeMo turns ids into text with ``decode_pieces`` and then removes one whitespace in front of
every punctuation mark that occurs in a non-special vocabulary piece (NeMo >= mid-2025).
We reproduce that rule exactly so our transcripts equal NeMo's character for character.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import unicodedata
from pathlib import Path

import sentencepiece as spm

_SPECIAL_PIECE = [
    re.compile(r"^\[.*\]$"),
    re.compile(r"^<.*>$"),
    re.compile(r"^##"),
    re.compile(r"^▁"),
    re.compile(r"^\s*$"),
]


def punctuation_of_vocab(pieces: list[str]) -> set[str]:
    """Punctuation characters that appear in ordinary (non word-initial, non special) pieces."""
    found: set[str] = set()
    for piece in pieces:
        if any(p.match(piece) for p in _SPECIAL_PIECE):
            continue
        found.update(ch for ch in piece if unicodedata.category(ch).startswith("P"))
    return found


class Tokenizer:
    """A SentencePiece model plus the text rules NeMo applies after decoding."""

    def __init__(self, model_proto: bytes):
        self.model_proto = model_proto
        self.sp = spm.SentencePieceProcessor(model_proto=model_proto)
        self.pieces = [self.sp.id_to_piece(i) for i in range(self.sp.get_piece_size())]
        punct = punctuation_of_vocab(self.pieces)
        self.punctuation = punct
        self._space_before_punct = (
            re.compile(r"(\s)(" + "|".join(re.escape(p) for p in sorted(punct)) + ")")
            if punct
            else None
        )

    @classmethod
    def from_file(cls, path: str | Path) -> "Tokenizer":
        return cls(Path(path).read_bytes())

    @property
    def vocab_size(self) -> int:
        return len(self.pieces)

    def decode(self, ids: list[int], raw: bool = False) -> str:
        """Text for token ids (ids outside the vocabulary, e.g. blank, are dropped).

        ``raw``: SentencePiece's text alone, without the punctuation rule (NeMo decodes word
        timestamps' words that way)."""
        pieces = [self.pieces[i] for i in ids if 0 <= i < len(self.pieces)]
        text = self.sp.decode_pieces(pieces)
        if self._space_before_punct is not None and not raw:
            text = self._space_before_punct.sub(r"\2", text)
        return text

    def encode(self, text: str) -> list[int]:
        return list(self.sp.encode(text))

    def vocab_json(self) -> dict[str, str]:
        """FluidAudio's ``parakeet_vocab.json`` shape: ``{"<id>": "<piece>"}``."""
        return {str(i): p for i, p in enumerate(self.pieces)}

    def write_vocab_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.vocab_json(), ensure_ascii=False, indent=0))

    def vocab_txt(self) -> str:
        """NeMo's ``vocab.txt`` artifact: one piece per line (``▁`` shown as ``##``-less text)."""
        return "".join(p + "\n" for p in self.pieces)


class PieceTokenizer(Tokenizer):
    """Detokeniser from a piece list alone (``parakeet_vocab.json``), no SentencePiece model.

    Joins pieces, turns ``▁`` into spaces and drops the leading one, as SentencePiece does for
    ordinary pieces; then applies the same punctuation rule.
    """

    def __init__(self, pieces: list[str]):  # noqa: super().__init__ needs a model proto
        self.model_proto = b""
        self.pieces = list(pieces)
        punct = punctuation_of_vocab(self.pieces)
        self.punctuation = punct
        self._space_before_punct = (
            re.compile(r"(\s)(" + "|".join(re.escape(p) for p in sorted(punct)) + ")") if punct else None
        )

    @classmethod
    def from_vocab_json(cls, path: str | Path) -> "PieceTokenizer":
        vocab = json.loads(Path(path).read_text())
        return cls([vocab[str(i)] for i in range(len(vocab))])

    def decode(self, ids: list[int], raw: bool = False) -> str:
        out: list[str] = []
        for i in ids:
            if not 0 <= i < len(self.pieces):
                continue
            piece = self.pieces[i]
            if piece == "<unk>":
                out.append(" \u2047 ")
                continue
            if not any(out) and piece.startswith("▁"):
                piece = piece[1:]  # SentencePiece drops the dummy-prefix space until text starts
            out.append(piece.replace("▁", " "))
        text = "".join(out)
        if self._space_before_punct is not None and not raw:
            text = self._space_before_punct.sub(r"\2", text)
        return text

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError("a piece list cannot encode text; use the SentencePiece model")


# --------------------------------------------------------------------------------------
# Synthetic tokenizers for random-weight checkpoints (tests, demo, benchmarks).
# --------------------------------------------------------------------------------------

_COMMON_WORDS = (
    "the of and to a in is it you that he was for on are with as his they be at one have this "
    "from or had by word but what some we can out other were all there when up use your how "
    "said an each she which do their time if will way about many then them write would like so "
    "these her long make thing see him two has look more day could go come did number sound no "
    "most people my over know water than call first who may down side been now find any new work "
    "part take get place made live where after back little only round man year came show every "
    "good me give our under name very through just form sentence great think say help low line "
    "differ turn cause much mean before move right boy old too same tell does set three want air "
    "well also play small end put home read hand port large spell add even land here must big "
    "high such follow act why ask men change went light kind off need house picture try us again "
    "animal point mother world near build self earth father head stand own page should country "
    "found answer school grow study still learn plant cover food sun four between state keep eye "
    "never last let thought city tree cross farm hard start might story saw far sea draw left "
    "late run while press close night real life few north open seem together next white children "
    "begin got walk example ease paper group always music those both mark often letter until mile "
    "river car feet care second book carry took science eat room friend began idea fish mountain "
    "stop once base hear horse cut sure watch color face wood main enough plain girl usual young "
    "ready above ever red list though feel talk bird soon body dog family direct pose leave song "
    "measure door product black short numeral class wind question happen complete ship area half "
    "rock order fire south problem piece told knew pass since top whole king space heard best hour "
    "better true during hundred five remember step early hold west ground interest reach fast verb "
    "sing listen six table travel less morning ten simple several vowel toward war lay against "
    "pattern slow center love person money serve appear road map rain rule govern pull cold notice "
    "voice unit power town fine certain fly fall lead cry dark machine note wait plan figure star "
    "box noun field rest correct able pound done beauty drive stood contain front teach week final "
    "gave green oh quick develop ocean warm free minute strong special mind behind clear tail "
    "produce fact street inch multiply nothing course stay wheel full force blue object decide "
    "surface deep moon island foot system busy test record boat common gold possible plane stead "
    "dry wonder laugh thousand ago ran check game shape equate hot miss brought heat snow tire "
    "bring yes distant fill east paint language among speech recognition model apple device"
).split()

_PUNCTUATION = [".", ",", "?", "!", "'", "-", ":", ";"]
_LETTERS = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_ONSETS = ["", "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v",
           "w", "z", "br", "ch", "cl", "dr", "fl", "gr", "pl", "pr", "sh", "st", "th", "tr"]
_NUCLEI = ["a", "e", "i", "o", "u", "ai", "ea", "ee", "ie", "oo", "ou", "y"]
_CODAS = ["", "b", "d", "g", "k", "l", "m", "n", "p", "r", "s", "t", "x", "ck", "ng", "nd",
          "nt", "rs", "st", "th"]


def synthetic_pieces(vocab_size: int, seed: int = 0) -> list[str]:
    """Piece list for a unigram model of exactly ``vocab_size`` pieces.

    ``<unk>`` first, then punctuation and letters (so every English sentence encodes), then
    common words, then pseudo-syllables: a plausible BPE-like inventory without training data.
    """
    pieces: list[str] = ["<unk>"]
    seen = set(pieces)

    def add(piece: str) -> None:
        if piece not in seen and len(pieces) < vocab_size:
            seen.add(piece)
            pieces.append(piece)

    for p in _PUNCTUATION:
        add(p)
    add("▁")
    for ch in _LETTERS:
        add(ch)
    for ch in _LETTERS:
        add("▁" + ch)
    for w in _COMMON_WORDS:
        add("▁" + w)
    rng = random.Random(seed)
    syllables = ["".join(s) for s in itertools.product(_ONSETS, _NUCLEI, _CODAS)]
    rng.shuffle(syllables)
    for syl in syllables:
        add("▁" + syl)
        add(syl)
    n = 2
    while len(pieces) < vocab_size:  # only for vocabularies far larger than v3's
        for combo in itertools.product(syllables[:200], repeat=n):
            add("".join(combo))
            if len(pieces) >= vocab_size:
                break
        n += 1
    if len(pieces) < vocab_size:
        raise ValueError(f"cannot build a synthetic vocabulary of {vocab_size} pieces")
    return pieces


def build_synthetic_sentencepiece(vocab_size: int, seed: int = 0) -> bytes:
    """A valid SentencePiece unigram model (serialized proto) with exactly ``vocab_size`` pieces."""
    if vocab_size < 2 + len(_PUNCTUATION) + 2 * len(_LETTERS):
        raise ValueError(
            f"vocabulary size {vocab_size} is too small: a synthetic tokenizer needs at least "
            f"{2 + len(_PUNCTUATION) + 2 * len(_LETTERS)} pieces to spell English text"
        )
    from sentencepiece import sentencepiece_model_pb2 as pb

    model = pb.ModelProto()
    ts = model.trainer_spec
    ts.model_type = pb.TrainerSpec.UNIGRAM
    ts.vocab_size = vocab_size
    ts.unk_id, ts.bos_id, ts.eos_id, ts.pad_id = 0, -1, -1, -1
    ts.byte_fallback = False
    ns = model.normalizer_spec
    ns.name = "identity"
    ns.add_dummy_prefix = True
    ns.remove_extra_whitespaces = True
    ns.escape_whitespaces = True
    for i, piece in enumerate(synthetic_pieces(vocab_size, seed)):
        sp = model.pieces.add()
        sp.piece = piece
        if piece == "<unk>":
            sp.type = pb.ModelProto.SentencePiece.UNKNOWN
            sp.score = 0.0
        else:
            sp.type = pb.ModelProto.SentencePiece.NORMAL
            # Longer pieces must beat spelling a word letter by letter in Viterbi.
            core = piece.lstrip("▁")
            sp.score = -1.0 - 0.0001 * i if len(core) > 1 else -6.0
    return model.SerializeToString()
