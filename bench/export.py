"""Export benchmark: convert every component of a v3-shape checkpoint, timing and memory.

Runs ``parakeet_coreml.export.convert.convert`` in this process (what ``parakeet-coreml
convert`` does) while a sampler thread reads the resident set size every 20 ms, so each
component gets the peak RSS seen while it was traced, converted and saved (the first one also
carries checkpoint loading). Prints a table and writes ``bench/results/export_<precision>.json``.

    uv run python bench/export.py                    # synthetic v3, fp16 (the default precision)
    uv run python bench/export.py --precision fp32
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class Sampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(0.02)

    def take(self) -> int:
        peak, self.peak = max(self.peak, rss_bytes()), rss_bytes()
        return peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nemo-path", type=Path, default=ROOT / "bench/.cache/v3_realistic.nemo")
    ap.add_argument("--precision", choices=["fp16", "fp32"], default="fp16")
    ap.add_argument("--target", choices=["ios17", "ios18"], default="ios17")
    ap.add_argument("--keep", type=Path, help="keep the packages here instead of a temporary folder")
    args = ap.parse_args()

    t_start = time.perf_counter()
    if not args.nemo_path.exists():
        from parakeet_coreml.synthetic import make_checkpoint

        args.nemo_path.parent.mkdir(parents=True, exist_ok=True)
        make_checkpoint(args.nemo_path, "v3", seed=0, emission="realistic")
    from parakeet_coreml.checkpoint import load_checkpoint
    from parakeet_coreml.export.convert import convert

    sampler = Sampler()
    sampler.start()
    base_rss = rss_bytes()
    t0 = time.perf_counter()
    ckpt = load_checkpoint(args.nemo_path)
    marks: list[tuple[str, float, int]] = []
    last = [time.perf_counter()]

    def progress(msg: str) -> None:
        now = time.perf_counter()
        marks.append((msg.split(":")[0], now - last[0], sampler.take()))
        last[0] = now

    work = Path(tempfile.mkdtemp(prefix="export-bench-"))
    out = args.keep or work / "packages"
    try:
        result = convert(ckpt, out, precision=args.precision, target=args.target, overwrite=True, progress=progress)
        total = time.perf_counter() - t0
        sampler.stop.set()
        peak_total = max(m[2] for m in marks)
        rows = []
        for (name, wall, peak), comp in zip(marks, result.components):
            rows.append({
                "component": name, "wall_s": wall, "peak_rss_gib": peak / 2**30, "precision": comp.precision,
                "trace_s": comp.trace_seconds, "convert_s": comp.convert_seconds, "save_s": comp.save_seconds,
                "size_mib": comp.size_bytes / 2**20,
            })
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    print(f"{'component':<28} {'prec':<5} {'wall s':>7} {'trace':>6} {'convert':>8} {'save':>5} {'peak GiB':>9} {'MiB':>8}")
    for r in rows:
        print(f"{r['component']:<28} {r['precision']:<5} {r['wall_s']:7.1f} {r['trace_s']:6.1f} {r['convert_s']:8.1f} "
              f"{r['save_s']:5.1f} {r['peak_rss_gib']:9.2f} {r['size_mib']:8.1f}")
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"{'total (all seven)':<28} {'':<5} {total:7.1f} {'':>6} {'':>8} {'':>5} {peak_total / 2**30:9.2f}")
    print(f"process peak RSS (getrusage): {max_rss / 2**30:.2f} GiB; baseline before loading {base_rss / 2**30:.2f} GiB")
    res = ROOT / "bench" / "results"
    res.mkdir(parents=True, exist_ok=True)
    path = res / f"export_{args.precision}.json"
    path.write_text(json.dumps({
        "checkpoint": str(args.nemo_path), "precision": args.precision, "target": args.target,
        "total_s": total, "peak_rss_gib": max_rss / 2**30, "components": rows,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "setup_s": t0 - t_start,
    }, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
