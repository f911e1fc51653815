"""Parity metrics between a reference tensor and a package's output."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

# Relative error divides by max(|ref|, floor * scale): near-zero references (quiet mel bins,
# small logits) would otherwise turn rounding noise into huge relative errors.
REL_FLOOR = 1e-3


@dataclass
class Diff:
    max_abs: float
    max_rel: float
    mean_abs: float
    quality: float  # 1 - ||got - ref|| / ||ref||  (1.0 = identical)
    scale: float  # max |ref|

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


def diff(ref: np.ndarray, got: np.ndarray) -> Diff:
    """Error of ``got`` against ``ref`` (same shape); computed in float64."""
    r = np.asarray(ref, dtype=np.float64)
    g = np.asarray(got, dtype=np.float64)
    if r.shape != g.shape:
        raise ValueError(f"shape mismatch: reference {r.shape}, got {g.shape}")
    if r.size == 0:
        return Diff(0.0, 0.0, 0.0, 1.0, 0.0)
    err = np.abs(g - r)
    scale = float(np.max(np.abs(r)))
    floor = max(REL_FLOOR * scale, np.finfo(np.float64).tiny)
    norm = float(np.linalg.norm(r))
    quality = 1.0 - float(np.linalg.norm(g - r)) / norm if norm > 0 else (1.0 if not err.any() else 0.0)
    return Diff(
        max_abs=float(err.max()),
        max_rel=float(np.max(err / np.maximum(np.abs(r), floor))),
        mean_abs=float(err.mean()),
        quality=quality,
        scale=scale,
    )


def agreement(ref: np.ndarray, got: np.ndarray) -> float:
    """Fraction of equal entries (token ids, durations)."""
    r, g = np.asarray(ref).ravel(), np.asarray(got).ravel()
    return float(np.mean(r == g)) if r.size else 1.0


def topk_overlap(ref_logits: np.ndarray, got_logits: np.ndarray, k: int) -> np.ndarray:
    """Per row, the fraction of the reference's top-k ids that are also in the package's top-k."""
    r = np.asarray(ref_logits).reshape(-1, ref_logits.shape[-1])
    g = np.asarray(got_logits).reshape(-1, got_logits.shape[-1])
    k = min(k, r.shape[-1])
    rt = np.argpartition(-r, k - 1, axis=-1)[:, :k]
    gt = np.argpartition(-g, k - 1, axis=-1)[:, :k]
    return np.array([len(set(a) & set(b)) / k for a, b in zip(rt, gt)])


def per_frame_l2(ref: np.ndarray, got: np.ndarray, time_axis: int) -> np.ndarray:
    """L2 norm of the error at each time step (other axes reduced)."""
    e = np.moveaxis(np.asarray(got, np.float64) - np.asarray(ref, np.float64), time_axis, 0)
    return np.sqrt((e.reshape(e.shape[0], -1) ** 2).sum(axis=1))
