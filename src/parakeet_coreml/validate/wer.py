"""Word error rate with its substitution/deletion/insertion breakdown."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass


@dataclass
class WER:
    wer: float
    substitutions: int
    deletions: int
    insertions: int
    reference_words: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def normalize(text: str) -> str:
    """Lower case, punctuation dropped, whitespace collapsed (the usual ASR scoring form)."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(" " if unicodedata.category(ch).startswith("P") and ch != "'" else ch for ch in text)
    return re.sub(r"\s+", " ", text).strip()


def word_error_rate(reference: str, hypothesis: str, normalise: bool = True) -> WER:
    """Levenshtein alignment over words; WER = (S + D + I) / N (N = reference words).

    An empty reference gives WER 0 for an empty hypothesis and 1 otherwise per inserted word
    (reported against N = 1 to stay finite).
    """
    if normalise:
        reference, hypothesis = normalize(reference), normalize(hypothesis)
    ref, hyp = reference.split(), hypothesis.split()
    n, m = len(ref), len(hyp)
    # dp[i][j] = (cost, S, D, I) for ref[:i] vs hyp[:j]
    prev = [(j, 0, 0, j) for j in range(m + 1)]
    for i in range(1, n + 1):
        cur = [(i, 0, i, 0)] + [(0, 0, 0, 0)] * m
        for j in range(1, m + 1):
            if ref[i - 1] == hyp[j - 1]:
                cur[j] = prev[j - 1]
                continue
            sub, dele, ins = prev[j - 1], prev[j], cur[j - 1]
            best = min(sub[0], dele[0], ins[0])
            if sub[0] == best:
                cur[j] = (sub[0] + 1, sub[1] + 1, sub[2], sub[3])
            elif dele[0] == best:
                cur[j] = (dele[0] + 1, dele[1], dele[2] + 1, dele[3])
            else:
                cur[j] = (ins[0] + 1, ins[1], ins[2], ins[3] + 1)
        prev = cur
    cost, s, d, i = prev[m]
    return WER(cost / max(n, 1), s, d, i, n)
