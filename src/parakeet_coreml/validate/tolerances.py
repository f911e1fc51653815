"""The one table of parity tolerances, per component and precision.

A float output passes when ``max_abs <= atol + rtol * scale`` (``scale`` = max |reference|)
and its quality (1 - normalised L2 error) is at least ``min_quality``. Decisions (token ids,
durations) pass on an agreement fraction; the transcript on token identity (fp32) or WER.

Why these numbers (measured with ``bench/runtime.py`` / ``compare`` on tiny and v3-shape
checkpoints; see README):

* fp32: 1e-4 of scale, except anything containing the front end. CoreML lowers ``torch.stft``
  to a DFT matmul while torch uses an FFT; fp32 sums of 512 products differ by ~1e-6 of a
  frame's energy, and ``log(mel + 2**-24)`` magnifies that on quiet bins. The mel is still
  within 1e-3 of its scale.
* fp16: values are stored with 11-bit mantissas (relative step 4.9e-4) through 24 layers, so
  the encoder keeps about 2-3 significant digits; we accept 3% of scale and quality >= 0.98.
  Argmax decisions may flip on frames whose two best logits are within fp16 error, hence
  agreement floors below 1 and a WER bound instead of identity for the transcript.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Tol:
    atol: float = 0.0
    rtol: float = 1e-4
    min_quality: float = 0.0

    def limit(self, scale: float) -> float:
        return self.atol + self.rtol * scale


@dataclass(frozen=True)
class DecisionTol:
    token_agreement: float = 1.0
    duration_agreement: float = 1.0
    topk_overlap: float = 1.0


FP32 = Tol(rtol=1e-4)
FP32_FRONT_END = Tol(rtol=1e-3)
FP16 = Tol(rtol=3e-2, min_quality=0.98)
FP16_FRONT_END = Tol(rtol=5e-2, min_quality=0.95)

FLOAT_TOLERANCES: dict[tuple[str, str], Tol] = {
    ("preprocessor", "fp32"): FP32_FRONT_END,
    ("preprocessor", "fp16"): FP16_FRONT_END,
    ("encoder", "fp32"): FP32,
    ("encoder", "fp16"): FP16,
    ("mel_encoder", "fp32"): FP32_FRONT_END,
    ("mel_encoder", "fp16"): FP16,
    ("decoder", "fp32"): FP32,
    ("decoder", "fp16"): Tol(rtol=1e-2, min_quality=0.99),
    ("joint", "fp32"): FP32,
    ("joint", "fp16"): Tol(rtol=1e-2, min_quality=0.99),
    ("joint_decision", "fp32"): FP32,
    ("joint_decision", "fp16"): Tol(rtol=2e-2),
    ("joint_decision_single_step", "fp32"): FP32,
    ("joint_decision_single_step", "fp16"): Tol(rtol=1e-2, min_quality=0.99),
}

DECISION_TOLERANCES: dict[str, DecisionTol] = {
    "fp32": DecisionTol(1.0, 1.0, 1.0),
    "fp16": DecisionTol(token_agreement=0.97, duration_agreement=0.97, topk_overlap=0.9),
}

# End to end: fp32 packages must reproduce the reference's token ids exactly; fp16 ones may
# differ on low-margin frames by at most this word error rate against the reference text.
MAX_WER = {"fp32": 0.0, "fp16": 0.05}


def float_tolerance(component: str, precision: str, atol: float | None = None, rtol: float | None = None) -> Tol:
    tol = FLOAT_TOLERANCES[(component, precision)]
    if atol is not None:
        tol = replace(tol, atol=atol)
    if rtol is not None:
        tol = replace(tol, rtol=rtol)
    return tol


def table_markdown() -> str:
    """The table as Markdown, for reports and the README."""
    lines = ["| component | precision | atol | rtol (of scale) | min quality |", "|---|---|---|---|---|"]
    for (name, prec), t in FLOAT_TOLERANCES.items():
        lines.append(f"| {name} | {prec} | {t.atol:g} | {t.rtol:g} | {t.min_quality:g} |")
    lines += ["", "| precision | token agreement | duration agreement | top-k overlap | max WER |",
              "|---|---|---|---|---|"]
    for prec, d in DECISION_TOLERANCES.items():
        lines.append(f"| {prec} | {d.token_agreement:g} | {d.duration_agreement:g} | {d.topk_overlap:g} | {MAX_WER[prec]:g} |")
    return "\n".join(lines)
