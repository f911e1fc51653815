"""Word error rate against jiwer, and its error counts against brute-force alignment.

jiwer (rapidfuzz's Levenshtein) is the reference for the WER value. When several alignments
have the minimum cost, the substitution/deletion/insertion split is a matter of tie-breaking
(jiwer and we may pick different ones), so the counts are checked against the set of all
minimum-cost alignments, enumerated by brute force on short sentences.
"""

from __future__ import annotations

import functools
import random

import jiwer
import pytest

from parakeet_coreml.validate.wer import normalize, word_error_rate

WORDS = ["a", "b", "c", "d", "e", "f"]


def random_pairs(seed: int, n: int, max_len: int, vocab: list[str], empty_hyp: bool = True):
    rng = random.Random(seed)
    for _ in range(n):
        ref = [rng.choice(vocab) for _ in range(rng.randint(1, max_len))]
        hyp = [rng.choice(vocab) for _ in range(rng.randint(0 if empty_hyp else 1, max_len))]
        yield " ".join(ref), " ".join(hyp)


def min_cost_splits(ref: list[str], hyp: list[str]) -> set[tuple[int, int, int]]:
    """Every (S, D, I) of a minimum-cost alignment, by exhaustive search over alignments."""

    @functools.cache
    def splits(i: int, j: int) -> frozenset[tuple[int, int, int]]:
        # all (S, D, I) of alignments of ref[i:] with hyp[j:]
        if i == len(ref):
            return frozenset({(0, 0, len(hyp) - j)})
        if j == len(hyp):
            return frozenset({(0, len(ref) - i, 0)})
        out = set()
        s = 0 if ref[i] == hyp[j] else 1
        out |= {(a + s, b, c) for a, b, c in splits(i + 1, j + 1)}
        out |= {(a, b + 1, c) for a, b, c in splits(i + 1, j)}
        out |= {(a, b, c + 1) for a, b, c in splits(i, j + 1)}
        return frozenset(out)

    every = splits(0, 0)
    best = min(sum(x) for x in every)
    return {x for x in every if sum(x) == best}


def test_wer_equals_jiwer_on_random_pairs() -> None:
    for ref, hyp in random_pairs(0, 2000, 12, WORDS):
        expected = jiwer.process_words(ref, hyp)
        got = word_error_rate(ref, hyp, normalise=False)
        assert got.wer == pytest.approx(expected.wer, abs=1e-12), (ref, hyp)
        assert got.reference_words == len(ref.split())
        # any minimum-cost alignment has the same number of errors and the same D - I
        assert got.substitutions + got.deletions + got.insertions == (
            expected.substitutions + expected.deletions + expected.insertions
        )
        assert got.deletions - got.insertions == expected.deletions - expected.insertions


def test_counts_belong_to_a_minimum_cost_alignment() -> None:
    for ref, hyp in random_pairs(1, 400, 6, WORDS[:4]):
        got = word_error_rate(ref, hyp, normalise=False)
        assert (got.substitutions, got.deletions, got.insertions) in min_cost_splits(ref.split(), hyp.split()), (
            ref,
            hyp,
        )


@pytest.mark.parametrize(
    "ref, hyp",
    [
        ("the cat sat on the mat", "the cat sat on the mat"),      # identical
        ("the cat sat on the mat", "the cat on mat"),              # deletions only
        ("the cat sat", "oh the big cat sat down"),                # insertions only
        ("one two three four", "uno dos tres cuatro"),            # substitutions only
        ("a b c d e f g", "a x c e f g h"),                        # all three
        ("hello", ""),                                             # empty hypothesis
        ("a b c", "a b"),
    ],
)
def test_crafted_pairs_equal_jiwer(ref: str, hyp: str) -> None:
    # Each of these has a single minimum-cost split, so the counts must be jiwer's exactly.
    assert len(min_cost_splits(ref.split(), hyp.split())) == 1
    expected = jiwer.process_words(ref, hyp)
    got = word_error_rate(ref, hyp, normalise=False)
    assert got.wer == pytest.approx(expected.wer)
    assert (got.substitutions, got.deletions, got.insertions) == (
        expected.substitutions, expected.deletions, expected.insertions
    )


def test_empty_reference_counts_insertions_against_one_word() -> None:
    # Documented behaviour; jiwer 4 also reports the number of inserted words.
    assert word_error_rate("", "").wer == 0.0
    got = word_error_rate("", "two words")
    assert (got.wer, got.insertions, got.reference_words) == (2.0, 2, 0)
    assert got.wer == jiwer.process_words("", "two words").wer


def test_normalised_wer_equals_jiwer_with_case_and_punctuation_removed() -> None:
    # Word-final punctuation and random casing; jiwer's transforms drop them the same way.
    transform = jiwer.Compose(
        [jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.RemoveMultipleSpaces(), jiwer.Strip(),
         jiwer.ReduceToListOfListOfWords()]
    )
    rng = random.Random(2)
    vocab = ["alpha", "beta", "gamma", "delta", "epsilon"]

    def noisy(words: list[str]) -> str:
        out = []
        for w in words:
            w = w.upper() if rng.random() < 0.3 else w.capitalize() if rng.random() < 0.3 else w
            out.append(w + (rng.choice(".,!?;:") if rng.random() < 0.3 else ""))
        return "  ".join(out) if rng.random() < 0.2 else " ".join(out)

    for _ in range(300):
        ref = [rng.choice(vocab) for _ in range(rng.randint(1, 8))]
        hyp = [rng.choice(vocab) for _ in range(rng.randint(0, 8))]
        r, h = noisy(ref), noisy(hyp)
        expected = jiwer.process_words(r, h, reference_transform=transform, hypothesis_transform=transform)
        assert word_error_rate(r, h).wer == pytest.approx(expected.wer), (r, h)


def test_normalize_keeps_apostrophes_and_splits_on_other_punctuation() -> None:
    assert normalize("Don't  STOP—now, it's well-known!") == "don't stop now it's well known"
    assert word_error_rate("It's fine.", "its fine").substitutions == 1
    # NFKC: full-width letters and ligatures compare equal to their plain forms
    assert word_error_rate("ﬁne ＡＢＣ", "fine abc").wer == 0.0


def test_to_dict_has_all_fields() -> None:
    got = word_error_rate("a b c", "a c d").to_dict()
    assert set(got) == {"wer", "substitutions", "deletions", "insertions", "reference_words"}
    assert got["wer"] == pytest.approx(jiwer.wer("a b c", "a c d"))
