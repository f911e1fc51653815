"""Portable-runtime benchmark: the v3 fp16 encoder package against the torch fp32 reference.

Both sides get the same input: the log-mel of the built-in 15 s clip (one full window,
1501 frames -> 188 encoder frames). Each side runs in its own fresh process so its peak
resident memory (``getrusage``) is its own: load, one untimed first call, ``--warmup`` more,
then ``--runs`` timed calls. The two processes run back to back in one invocation, so the
time ratio is meaningful on a shared machine; the packages' numbers are the MIL interpreter on
this CPU, not Core ML device numbers. Prints a table and writes ``bench/results/runtime.json``.

    uv run python bench/runtime.py                 # synthetic v3, fp16 encoder package
    uv run python bench/runtime.py --runs 10
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench" / ".cache"
RESULTS = ROOT / "bench" / "results"
AUDIO = ROOT / "src" / "parakeet_coreml" / "data" / "speech_15s.wav"


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def child(kind: str, nemo: Path, package: Path, mel_file: Path, out_file: Path, runs: int, warmup: int) -> dict:
    t0 = time.perf_counter()
    data = np.load(mel_file)
    inputs = {"mel": data["mel"], "mel_length": data["mel_length"]}
    if kind == "torch":
        from parakeet_coreml.checkpoint import load_checkpoint
        from parakeet_coreml.contract import build_contract
        from parakeet_coreml.model import ParakeetModel
        from parakeet_coreml.runtime.torch import TorchRuntime

        ckpt = load_checkpoint(nemo)
        rt = TorchRuntime(ParakeetModel.from_checkpoint(ckpt), build_contract(ckpt.config, 15.0), "encoder")
    else:
        from parakeet_coreml.runtime import MilRuntime

        rt = MilRuntime(package)
    load_s = time.perf_counter() - t0
    from parakeet_coreml.validate.compare import time_calls

    ms = time_calls(lambda: rt.predict(inputs), runs, warmup)
    timing = {"first_s": ms["first_ms"] / 1e3, "median_s": ms["median_ms"] / 1e3, "p95_s": ms["p95_ms"] / 1e3}
    out = rt.predict(inputs)  # untimed: the output compared with the other side's
    np.savez(out_file, encoder=out["encoder"], encoder_length=out["encoder_length"])
    import torch

    return {"kind": kind, "load_s": load_s, **timing, "peak_rss_gib": _peak_rss_gib(),
            "threads": torch.get_num_threads()}


def prepare(nemo: Path, package_dir: Path, mel_file: Path) -> None:
    """Make the checkpoint, the fp16 encoder package and the reference mel input once."""
    from parakeet_coreml.audio import load_audio
    from parakeet_coreml.checkpoint import load_checkpoint
    from parakeet_coreml.contract import build_contract
    from parakeet_coreml.model import ParakeetModel
    from parakeet_coreml.runtime.torch import TorchRuntime
    from parakeet_coreml.synthetic import make_checkpoint

    CACHE.mkdir(parents=True, exist_ok=True)
    if not nemo.exists():
        make_checkpoint(nemo, "v3", seed=0, emission="realistic")
    ckpt = load_checkpoint(nemo)
    if not (package_dir / "parakeet_encoder.mlpackage").exists():
        from parakeet_coreml.export.convert import convert

        print(f"converting the fp16 encoder of {nemo} into {package_dir} (once)")
        convert(ckpt, package_dir, components=["encoder"], precision="fp16", overwrite=True)
    if not mel_file.exists():
        contract = build_contract(ckpt.config, 15.0)
        pre = TorchRuntime(ParakeetModel.from_checkpoint(ckpt), contract, "preprocessor")
        samples = load_audio(AUDIO, contract.sample_rate).samples
        window = np.zeros((1, contract.window_samples), np.float32)
        window[0, : len(samples)] = samples
        mel = pre.predict({"audio_signal": window, "audio_length": np.array([len(samples)], np.int32)})
        np.savez(mel_file, mel=mel["mel"], mel_length=mel["mel_length"])


def spawn(kind: str, args: argparse.Namespace, package: Path, mel_file: Path, out_file: Path) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--nemo-path", str(args.nemo_path),
           "--package", str(package), "--mel", str(mel_file), "--out", str(out_file),
           "--runs", str(args.runs), "--warmup", str(args.warmup)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} child failed:\n{proc.stderr[-3000:]}")
    return json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", choices=["torch", "mil"], help=argparse.SUPPRESS)
    ap.add_argument("--package", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--mel", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--nemo-path", type=Path, default=CACHE / "v3_realistic.nemo")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    args = ap.parse_args()

    if args.child:
        result = child(args.child, args.nemo_path, args.package, args.mel, args.out, args.runs, args.warmup)
        print(json.dumps(result))
        return

    package_dir = CACHE / f"{args.nemo_path.stem}_encoder_fp16"
    mel_file = CACHE / f"{args.nemo_path.stem}_mel_15s.npz"
    prepare(args.nemo_path, package_dir, mel_file)
    package = package_dir / "parakeet_encoder.mlpackage"
    outs = {k: CACHE / f"runtime_out_{k}.npz" for k in ("torch", "mil")}
    rows = {k: spawn(k, args, package, mel_file, outs[k]) for k in ("torch", "mil")}

    from parakeet_coreml.validate.metrics import diff

    ref, got = np.load(outs["torch"]), np.load(outs["mil"])
    frames = int(ref["encoder_length"][0])  # valid frames of the clip
    d = diff(ref["encoder"][..., :frames], got["encoder"][..., :frames]).to_dict()
    d["lengths_equal"] = bool(np.array_equal(ref["encoder_length"], got["encoder_length"]))
    ratio = rows["mil"]["median_s"] / rows["torch"]["median_s"]

    print(f"{'side':<28} {'load s':>7} {'first s':>8} {'median s':>9} {'p95 s':>7} {'peak GiB':>9}")
    for k, label in (("torch", "torch fp32 reference"), ("mil", "MIL runtime, fp16 package")):
        r = rows[k]
        print(f"{label:<28} {r['load_s']:7.2f} {r['first_s']:8.2f} {r['median_s']:9.2f} {r['p95_s']:7.2f} "
              f"{r['peak_rss_gib']:9.2f}")
    print(f"time ratio (median, MIL / torch): {ratio:.2f}x  (target <= 3x)")
    print(f"output vs reference: max_abs {d['max_abs']:.4g}, quality {d['quality']:.5f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "runtime.json"
    path.write_text(json.dumps({
        "checkpoint": str(args.nemo_path), "package": str(package), "audio": str(AUDIO),
        "window_seconds": 15.0, "runs": args.runs, "warmup": args.warmup,
        "torch": rows["torch"], "mil": rows["mil"], "time_ratio_median": ratio, "parity": d,
        "note": "MIL runtime = the portable interpreter on this CPU, not Core ML device numbers",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
    }, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
