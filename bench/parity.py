"""Parity of a v3-shape export: ``compare`` on every package, report and plots kept.

Converts the synthetic v3 checkpoint at the given precision (once, into ``bench/.cache``, or
uses ``--model-dir``), then runs the same gate as ``parakeet-coreml compare`` through the
portable MIL runtime on the built-in 15 s clip. The JSON and Markdown reports go to
``bench/results/parity_v3_<precision>/`` and the plots to
``plots/compare-components-v3-<precision>/``; the table is printed. Exit 1 if the gate fails.

    uv run python bench/parity.py --precision fp16
    uv run python bench/parity.py --precision fp32 --model-dir /tmp/v3_fp32
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench" / ".cache"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nemo-path", type=Path, default=CACHE / "v3_realistic.nemo")
    ap.add_argument("--precision", choices=["fp16", "fp32"], default="fp16")
    ap.add_argument("--model-dir", type=Path, help="an existing export of --nemo-path at --precision")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    args = ap.parse_args()

    from parakeet_coreml.checkpoint import load_checkpoint
    from parakeet_coreml.export.convert import convert
    from parakeet_coreml.synthetic import make_checkpoint
    from parakeet_coreml.validate.compare import compare
    from parakeet_coreml.validate.report import latency_table, parity_table

    if not args.nemo_path.exists():
        args.nemo_path.parent.mkdir(parents=True, exist_ok=True)
        make_checkpoint(args.nemo_path, "v3", seed=0, emission="realistic")
    ckpt = load_checkpoint(args.nemo_path)
    model_dir = args.model_dir or CACHE / f"{args.nemo_path.stem}_{args.precision}"
    if not (model_dir / "metadata.json").exists():
        print(f"converting {args.nemo_path} at {args.precision} into {model_dir} (once)")
        convert(ckpt, model_dir, precision=args.precision, overwrite=True)
    t0 = time.perf_counter()
    result = compare(
        model_dir, ckpt, runtime="mil", runs=args.runs, warmup=args.warmup,
        plots_dir=ROOT / "plots" / f"compare-components-v3-{args.precision}",
        report_dir=ROOT / "bench" / "results" / f"parity_v3_{args.precision}",
    )
    print(parity_table(result))
    print()
    print(latency_table(result) + "\n(package times: the portable MIL interpreter on this CPU, not device numbers)")
    e2e = result.end_to_end
    print(f"\nend to end: reference {e2e['reference_tokens']} tokens, packages {e2e['package_tokens']}, "
          f"identical {e2e['tokens_identical']}, WER {e2e['wer']['wer']:.4f}")
    for f in result.failures:
        print(f.line())
    print(f"{'PASS' if result.passed else 'FAIL'} in {time.perf_counter() - t0:.0f} s; "
          f"report in bench/results/parity_v3_{args.precision}/")
    sys.exit(0 if result.passed else 1)


if __name__ == "__main__":
    main()
