"""Calibrate the blank-logit offset that gives a synthetic checkpoint a trained-like emission rate.

A trained Parakeet v3 emits about 40 tokens for 15 s of read English (about 2.7 per second).
This prints, for each preset, tokens emitted on the built-in 15 s speech clip against the
offset added to the blank logit, and the offset closest to the target rate. The chosen values
live in ``parakeet_coreml.synthetic.EMISSION_BLANK_BIAS``.

    uv run python bench/emission_rate.py --preset tiny v3
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from parakeet_coreml.audio import load_audio
from parakeet_coreml.checkpoint import load_checkpoint
from parakeet_coreml.decoding import TorchSteps, greedy_decode
from parakeet_coreml.synthetic import EMISSION_BLANK_BIAS, EMISSIONS, make_checkpoint, set_emission_
from parakeet_coreml.transcribe import Transcriber

ROOT = Path(__file__).resolve().parents[1]
TARGET_PER_SECOND = 40 / 15


def sweep(preset: str, audio: Path, biases: list[float]) -> tuple[list[dict], dict[str, int]]:
    """Tokens per blank-bias offset, and tokens per emission mode, on one clip."""
    with tempfile.TemporaryDirectory() as tmp:
        tr = Transcriber(load_checkpoint(make_checkpoint(Path(tmp) / "m.nemo", preset, seed=0)))
    samples = load_audio(audio, tr.cfg.preprocessor.sample_rate).samples
    enc, frames = tr.encode(samples)
    bias = tr.model.joint.joint_net[-1].bias
    base = bias.detach().clone()

    def tokens() -> int:
        steps = TorchSteps(tr.model, enc)
        return len(greedy_decode(steps, frames, tr.cfg.blank_id, tr.cfg.durations, tr.cfg.max_symbols))

    rows = []
    for b in biases:
        with torch.no_grad():
            bias.copy_(base)
            bias[tr.cfg.blank_id] += b
        n = tokens()
        rows.append({"blank_bias": b, "tokens": n, "per_second": n / (len(samples) / 16000)})
    modes = {}
    for emission in EMISSIONS:
        with torch.no_grad():
            bias.copy_(base)
        set_emission_(tr.model, preset, emission)
        modes[emission] = tokens()
    return rows, modes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", nargs="+", default=["tiny", "v3"])
    ap.add_argument("--audio", type=Path, default=ROOT / "src/parakeet_coreml/data/speech_15s.wav")
    args = ap.parse_args()
    out = {}
    for preset in args.preset:
        rows, modes = sweep(preset, args.audio, [round(x, 2) for x in np.arange(0.0, 6.01, 0.25)])
        best = min(rows, key=lambda r: abs(r["per_second"] - TARGET_PER_SECOND))
        print(f"{preset}: bias -> tokens " + ", ".join(f"{r['blank_bias']:g}:{r['tokens']}" for r in rows))
        print(f"{preset}: closest to {TARGET_PER_SECOND:.2f}/s is {best['blank_bias']:g} ({best['tokens']} tokens); "
              f"in use: {EMISSION_BLANK_BIAS[preset]['realistic']:g}")
        print(f"{preset}: tokens per emission mode: " + ", ".join(f"{k} {v}" for k, v in modes.items()))
        out[preset] = {"rows": rows, "best": best, "in_use": EMISSION_BLANK_BIAS[preset]["realistic"],
                       "tokens_per_emission": modes}
    res = ROOT / "bench" / "results"
    res.mkdir(parents=True, exist_ok=True)
    (res / "emission_rate.json").write_text(json.dumps(out, indent=2))
    print(f"wrote {res / 'emission_rate.json'}")


if __name__ == "__main__":
    main()
