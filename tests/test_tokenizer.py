"""Detokenisation: SentencePiece is the reference for joining pieces, NeMo for the punctuation rule.

* ``PieceTokenizer`` (the piece list of ``parakeet_vocab.json``, no SentencePiece model) must
  give exactly what SentencePiece gives, on random id sequences over several vocabularies.
* The text after the punctuation rule must equal what NeMo's own RNNT/TDT decoding produces
  (``RNNTBPEDecoding.decode_hypothesis`` on a model NeMo restored from a ``.nemo``).
* The synthetic SentencePiece builder gives exactly the requested vocabulary size.

The crafted vocabulary holds the awkward cases: punctuation only inside ``▁``-pieces or special
pieces (which NeMo does not count as punctuation), regex metacharacters, non-ASCII
punctuation, ``<unk>``, lone ``▁`` pieces and a user-defined symbol.
"""

from __future__ import annotations

import copy
import json
import random
import re
import unicodedata
from pathlib import Path

import pytest
import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as pb

from parakeet_coreml.checkpoint import write_nemo
from parakeet_coreml.tokenizer import (
    PieceTokenizer,
    Tokenizer,
    build_synthetic_sentencepiece,
    punctuation_of_vocab,
    synthetic_pieces,
)

# Pieces that exercise NeMo's rule. Comma, colon and semicolon appear only in special or
# word-initial pieces, so they are *not* punctuation for the rule; "." is (inside "a.b").
CRAFTED = [
    "▁hello", "▁world", "▁a", "ing", "▁",
    "▁,", "[a:b]", "<x;y>", "##ing",            # punctuation hidden in special pieces
    "a.b", "...", "?", "!", "'", "-", "—", "¿", "«", "»", "(", ")", "\\", "*", "%", "&",
    "\"", "▁\"", "▁?", "。", "、", "؟",
    "$", "+", "|",                               # symbols, not punctuation (category S)
    "<sil>",                                     # user-defined symbol
]
USER_DEFINED = {"<sil>"}
# Ids where each vocabulary's interesting pieces are: <unk>, punctuation and the lone "▁" of
# the synthetic ones (see synthetic_pieces), the crafted pieces of the crafted one.
HOT = {"tiny": 10, "synthetic1024": 10, "crafted": 1 + len(CRAFTED)}


def sentencepiece_model(pieces: list[str], user_defined: set[str] = frozenset()) -> bytes:
    """A SentencePiece unigram model with exactly these pieces (``pieces[0]`` is ``<unk>``)."""
    model = pb.ModelProto()
    ts = model.trainer_spec
    ts.model_type = pb.TrainerSpec.UNIGRAM
    ts.vocab_size = len(pieces)
    ts.unk_id, ts.bos_id, ts.eos_id, ts.pad_id = 0, -1, -1, -1
    ns = model.normalizer_spec
    ns.name = "identity"
    ns.add_dummy_prefix = True
    ns.remove_extra_whitespaces = True
    ns.escape_whitespaces = True
    kinds = pb.ModelProto.SentencePiece
    for i, piece in enumerate(pieces):
        sp = model.pieces.add()
        sp.piece = piece
        sp.score = -1.0 - 0.001 * i
        sp.type = kinds.UNKNOWN if i == 0 else kinds.USER_DEFINED if piece in user_defined else kinds.NORMAL
    return model.SerializeToString()


def crafted_pieces(size: int) -> list[str]:
    """``<unk>``, the crafted pieces, then letters-only synthetic pieces up to ``size``."""
    pieces = ["<unk>", *CRAFTED]
    for p in synthetic_pieces(4 * size, seed=1):
        if len(pieces) == size:
            break
        if p not in pieces and p.lstrip("▁").isalnum():
            pieces.append(p)
    assert len(pieces) == size
    return pieces


def random_ids(rng: random.Random, vocab: int, hot: int, n: int, low: int = 0) -> list[list[int]]:
    """``n`` id sequences (lengths 0-15) over ``[low, vocab]`` (``vocab`` is the blank id);
    half the ids come from the first ``hot`` ids, where the interesting pieces are."""
    out = []
    for _ in range(n):
        seq = []
        for _ in range(rng.randrange(16)):
            seq.append(rng.randrange(hot) if rng.random() < 0.5 else rng.randrange(low, vocab + 1))
        out.append(seq)
    return out


@pytest.fixture(scope="module")
def vocabularies(tiny_ckpt) -> dict[str, bytes]:
    """name -> SentencePiece model: the tiny checkpoint's, a larger synthetic one, the crafted one."""
    return {
        "tiny": tiny_ckpt.tokenizer.model_proto,
        "synthetic1024": build_synthetic_sentencepiece(1024, seed=7),
        "crafted": sentencepiece_model(crafted_pieces(200), USER_DEFINED),
    }


def test_crafted_vocabulary_is_a_valid_sentencepiece_model() -> None:
    proto = sentencepiece_model(crafted_pieces(200), USER_DEFINED)
    sp = spm.SentencePieceProcessor(model_proto=proto)
    assert [sp.id_to_piece(i) for i in range(sp.get_piece_size())] == crafted_pieces(200)
    assert sp.is_unknown(0)
    # A user-defined symbol is matched whole when encoding.
    assert crafted_pieces(200).index("<sil>") in sp.encode("hello<sil>world")


@pytest.mark.parametrize("name", ["tiny", "synthetic1024", "crafted"])
def test_piece_tokenizer_equals_sentencepiece(vocabularies: dict[str, bytes], name: str) -> None:
    proto = vocabularies[name]
    ref = Tokenizer(proto)
    sp = spm.SentencePieceProcessor(model_proto=proto)
    ours = PieceTokenizer(ref.pieces)
    rng = random.Random(name)
    hot = HOT[name]
    for ids in random_ids(rng, ref.vocab_size, hot, 3000, low=-2):
        valid = [i for i in ids if 0 <= i < ref.vocab_size]
        expected = ref.decode(ids)
        assert ours.decode(ids) == expected, (ids, [ref.pieces[i] for i in valid])
        # Tokenizer.decode is SentencePiece's own decoding plus the rule (the rule only ever
        # removes whitespace, so without whitespace the texts must agree verbatim).
        raw = sp.decode_ids(valid)
        assert re.sub(r"\s", "", raw) == re.sub(r"\s", "", expected)


def test_rule_removes_exactly_one_space_before_vocabulary_punctuation() -> None:
    # NeMo's comment on the rule: only A (one) space goes, more spaces are the model's mistake.
    tok = Tokenizer(sentencepiece_model(crafted_pieces(200), USER_DEFINED))
    ids = {p: i for i, p in enumerate(tok.pieces)}
    one = tok.sp.decode_pieces(["▁hello", "▁", "?"])
    two = tok.sp.decode_pieces(["▁hello", "▁", "▁", "?"])
    assert one.endswith(" ?") and two.endswith("  ?")  # SentencePiece keeps the spaces
    assert tok.decode([ids["▁hello"], ids["▁"], ids["?"]]) == one.replace(" ?", "?")
    assert tok.decode([ids["▁hello"], ids["▁"], ids["▁"], ids["?"]]) == two.replace("  ?", " ?")
    # "," occurs only in "▁," (a word-initial piece): it is not punctuation for the rule.
    assert "," not in punctuation_of_vocab(tok.pieces)
    assert tok.decode([ids["▁hello"], ids["▁,"]]) == tok.sp.decode_pieces(["▁hello", "▁,"])


@pytest.mark.parametrize("name", ["tiny", "synthetic1024", "crafted"])
def test_vocab_json_round_trips(vocabularies: dict[str, bytes], name: str, tmp_path: Path) -> None:
    tok = Tokenizer(vocabularies[name])
    path = tmp_path / "parakeet_vocab.json"
    tok.write_vocab_json(path)
    assert json.loads(path.read_text(encoding="utf-8")) == {str(i): p for i, p in enumerate(tok.pieces)}
    back = PieceTokenizer.from_vocab_json(path)
    assert back.pieces == tok.pieces
    rng = random.Random(3)
    for ids in random_ids(rng, tok.vocab_size, 40, 200):
        assert back.decode(ids) == tok.decode(ids)


# --------------------------------------------------------------------------------------
# NeMo as the reference for the punctuation rule
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nemo_decodings(tiny_nemo: Path, tiny_ckpt, tmp_path_factory: pytest.TempPathFactory):
    """name -> (NeMo's RNNTBPEDecoding, our Tokenizer), for the tiny checkpoint and for the
    tiny checkpoint's weights with the crafted 256-piece tokenizer, both restored by NeMo."""
    pytest.importorskip("nemo.collections.asr", reason="nemo-toolkit[asr] is not installed")
    from nemo_models import restore_nemo

    crafted = sentencepiece_model(crafted_pieces(tiny_ckpt.config.vocab_size), USER_DEFINED)
    raw = copy.deepcopy(tiny_ckpt.raw_config)
    raw["joint"]["vocabulary"] = crafted_pieces(tiny_ckpt.config.vocab_size)
    crafted_nemo = write_nemo(tmp_path_factory.mktemp("crafted") / "crafted.nemo", raw, tiny_ckpt.state_dict, crafted)
    return {
        "tiny": (restore_nemo(tiny_nemo).decoding, tiny_ckpt.tokenizer),
        "crafted": (restore_nemo(crafted_nemo).decoding, Tokenizer(crafted)),
    }


def nemo_text(decoding, ids: list[int]) -> str:
    import torch
    from nemo.collections.asr.parts.utils.rnnt_utils import Hypothesis

    hyp = Hypothesis(score=0.0, y_sequence=torch.tensor(ids, dtype=torch.long), timestamp=[], dec_state=None)
    return decoding.decode_hypothesis([hyp])[0].text


@pytest.mark.nemo
@pytest.mark.parametrize("name", ["tiny", "crafted"])
def test_punctuation_set_is_nemos(nemo_decodings, name: str) -> None:
    from nemo.collections.asr.parts.utils.tokenizer_utils import extract_punctuation_from_vocab

    decoding, tok = nemo_decodings[name]
    assert punctuation_of_vocab(tok.pieces) == set(decoding.supported_punctuation)
    assert punctuation_of_vocab(tok.pieces) == extract_punctuation_from_vocab(tok.pieces)
    assert punctuation_of_vocab(tok.pieces)  # both vocabularies have some


@pytest.mark.nemo
@pytest.mark.parametrize("name", ["tiny", "crafted"])
def test_text_equals_nemo_decoding_on_random_ids(nemo_decodings, name: str) -> None:
    decoding, tok = nemo_decodings[name]
    pieces = PieceTokenizer(tok.pieces)
    rng = random.Random(11)
    hot = HOT[name]
    changed = 0
    for ids in random_ids(rng, tok.vocab_size, hot, 1500):  # ids up to the blank id
        expected = nemo_text(decoding, ids)
        assert tok.decode(ids) == expected, (ids, [tok.pieces[i] for i in ids if i < tok.vocab_size])
        assert pieces.decode(ids) == expected, ids
        changed += expected != tok.sp.decode_ids([i for i in ids if i < tok.vocab_size])
    assert changed > 50  # the rule really was exercised


@pytest.mark.nemo
def test_text_equals_nemo_decoding_on_crafted_sequences(nemo_decodings) -> None:
    decoding, tok = nemo_decodings["crafted"]
    pieces = PieceTokenizer(tok.pieces)
    ids = {p: i for i, p in enumerate(tok.pieces)}
    sequences = [
        ["▁hello", "▁,"],                     # "," is not vocabulary punctuation: space stays
        ["▁hello", "▁", "?"], ["▁hello", "▁", "▁", "?"], ["▁", "?"], ["▁", "▁", "..."],
        ["▁hello", "a.b"], ["▁hello", "▁", "..."], ["▁hello", "▁?"], ["▁a", "▁", "(", "ing", ")"],
        ["▁hello", "▁", "—", "▁world"], ["▁", "«", "▁hello", "▁", "»"], ["▁", "¿", "▁a", "▁", "?"],
        ["▁a", "▁", "\\", "▁", "*", "▁", "%", "▁", "&"], ["▁a", "▁", "$", "▁", "+", "▁", "|"],
        ["<unk>", "▁", "..."], ["▁hello", "<unk>", "!"], ["[a:b]", "▁", "-"], ["<x;y>", "▁", "'"],
        ["##ing", "▁", "。"], ["▁hello", "▁", "、", "▁", "؟"], ["▁\"", "▁a", "▁", "\""],
        ["▁hello", "<sil>", "▁", "!"], ["<sil>", "▁", "..."], ["▁", "▁", "▁"],
    ]
    for seq in sequences:
        seq_ids = [ids[p] for p in seq]
        expected = nemo_text(decoding, seq_ids)
        assert tok.decode(seq_ids) == expected, seq
        assert pieces.decode(seq_ids) == expected, seq


# --------------------------------------------------------------------------------------
# Synthetic SentencePiece models
# --------------------------------------------------------------------------------------

# Every letter, digit and punctuation mark the synthetic inventory promises to spell.
ENGLISH = (
    "The quick brown fox jumps over the lazy dog. PACK MY BOX WITH FIVE DOZEN LIQUOR JUGS! "
    "0123456789, it's a well-known test: does it work? yes; it does."
)


def _stated_minimum() -> int:
    with pytest.raises(ValueError) as info:
        build_synthetic_sentencepiece(1)
    found = re.search(r"at least (\d+) pieces", str(info.value))
    assert found, str(info.value)
    return int(found.group(1))


@pytest.mark.parametrize("size", ["minimum", 144, 160, 200, 256, 1024, 8192])
def test_synthetic_sentencepiece_has_exactly_the_requested_size(size) -> None:
    # 256: tiny preset, 8192: v3 preset, 144/160/200: the NeMo parity variants, 1024: v2.
    size = _stated_minimum() if size == "minimum" else size
    sp = spm.SentencePieceProcessor(model_proto=build_synthetic_sentencepiece(size, seed=0))
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    assert sp.get_piece_size() == size and len(set(pieces)) == size
    assert sp.unk_id() == 0 and sp.is_unknown(0)
    ids = sp.encode(ENGLISH)
    assert sp.unk_id() not in ids, [sp.id_to_piece(i) for i in ids]
    assert sp.decode(ids) == ENGLISH


def test_synthetic_pieces_are_what_the_model_holds() -> None:
    sp = spm.SentencePieceProcessor(model_proto=build_synthetic_sentencepiece(256, seed=0))
    assert [sp.id_to_piece(i) for i in range(256)] == synthetic_pieces(256, seed=0)


def test_too_small_vocabulary_is_refused_clearly() -> None:
    minimum = _stated_minimum()
    build_synthetic_sentencepiece(minimum)
    for size in (0, 1, minimum - 1):
        with pytest.raises(ValueError, match=rf"vocabulary size {size} is too small.*at least {minimum}"):
            build_synthetic_sentencepiece(size)


def test_punctuation_of_vocab_uses_unicode_categories() -> None:
    # Independent of NeMo: every non-special piece's P* characters, nothing else.
    pieces = crafted_pieces(200)
    special = re.compile(r"^(\[.*\]|<.*>|##.*|▁.*|\s*)$")
    expected = {
        ch for p in pieces if not special.match(p) for ch in p if unicodedata.category(ch).startswith("P")
    }
    assert punctuation_of_vocab(pieces) == expected
    assert {",", ":", ";", "$", "+", "|"}.isdisjoint(expected) and {".", "?", "—", "«", "\\"} <= expected
