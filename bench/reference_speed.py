"""Reference speed: our pure-PyTorch transcriber against NeMo on the same checkpoint and clip.

For each implementation a fresh process measures the cold start (interpreter start to first
transcript, split into import / load / first transcript) and then the warm time per clip over
``--runs`` repeats. Token ids of both are compared. Both run side by side in one invocation, so
their ratio is meaningful on a shared, noisy machine.

Bytecode caches are enabled for the child processes (a user's install has them) and one
untimed warm-up process per implementation fills them and the page cache first.

    uv run python bench/reference_speed.py                      # v3 shapes, realistic + saturated
    uv run python bench/reference_speed.py --emission random realistic saturated --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench" / ".cache"
RESULTS = ROOT / "bench" / "results"


def child_ours(nemo: str, audio: str, runs: int) -> dict:
    started = time.time()
    t0 = time.perf_counter()
    from parakeet_coreml.checkpoint import load_checkpoint
    from parakeet_coreml.transcribe import Transcriber

    t1 = time.perf_counter()
    transcriber = Transcriber(load_checkpoint(nemo))
    t2 = time.perf_counter()
    first = transcriber.transcribe_file(audio)
    t3 = time.perf_counter()
    warm, enc_times = [], []
    from parakeet_coreml.audio import load_audio

    samples = load_audio(audio, transcriber.cfg.preprocessor.sample_rate).samples
    for _ in range(runs):
        s = time.perf_counter()
        transcriber.transcribe_file(audio)
        warm.append(time.perf_counter() - s)
        s = time.perf_counter()
        transcriber.encode(samples)
        enc_times.append(time.perf_counter() - s)
    return {
        "started_epoch": started, "import_s": t1 - t0, "load_s": t2 - t1, "first_transcript_s": t3 - t2,
        "warm_s": warm, "encode_s": enc_times,
        "tokens": first.transcript.token_ids, "text": first.transcript.text,
    }


def child_nemo(nemo: str, audio: str, runs: int) -> dict:
    import logging

    started = time.time()
    t0 = time.perf_counter()
    import nemo.collections.asr as nemo_asr
    from nemo.utils import logging as nemo_logging

    nemo_logging.setLevel(logging.ERROR)
    t1 = time.perf_counter()
    model = nemo_asr.models.ASRModel.restore_from(nemo, map_location="cpu").eval()
    t2 = time.perf_counter()

    def run() -> list:
        out = model.transcribe([audio], batch_size=1, return_hypotheses=True, verbose=False)
        out = out[0] if isinstance(out, tuple) else out
        return out

    hyps = run()
    t3 = time.perf_counter()
    warm = []
    for _ in range(runs):
        s = time.perf_counter()
        run()
        warm.append(time.perf_counter() - s)
    h = hyps[0]
    return {
        "started_epoch": started, "import_s": t1 - t0, "load_s": t2 - t1, "first_transcript_s": t3 - t2,
        "warm_s": warm, "tokens": [int(t) for t in h.y_sequence], "text": h.text,
    }


def spawn(kind: str, nemo: Path, audio: Path, runs: int) -> dict:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--nemo-path", str(nemo),
           "--audio", str(audio), "--runs", str(runs)]
    spawned = time.time()
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{kind} child failed:\n{proc.stderr[-3000:]}")
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1]
    data = json.loads(line)
    # cold = process spawn to first transcript: interpreter start plus the child's own stages
    data["process_wall_s"] = wall
    data["startup_s"] = max(0.0, data.pop("started_epoch") - spawned)
    data["cold_s"] = data["startup_s"] + data["import_s"] + data["load_s"] + data["first_transcript_s"]
    return data


def checkpoint_for(emission: str) -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"v3_{emission}.nemo"
    if not path.exists():
        from parakeet_coreml.synthetic import make_checkpoint

        make_checkpoint(path, "v3", seed=0, emission=emission)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", choices=["ours", "nemo"], help=argparse.SUPPRESS)
    ap.add_argument("--nemo-path", type=Path, help="checkpoint (default: synthetic v3 per emission)")
    ap.add_argument("--audio", type=Path, default=ROOT / "src/parakeet_coreml/data/speech_15s.wav")
    ap.add_argument("--emission", nargs="+", choices=["random", "realistic", "saturated"],
                    default=["realistic", "saturated"])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--skip-nemo", action="store_true")
    args = ap.parse_args()

    if args.child:
        fn = child_ours if args.child == "ours" else child_nemo
        print(json.dumps(fn(str(args.nemo_path), str(args.audio), args.runs)))
        return

    emissions = args.emission
    kinds = ["ours"] + ([] if args.skip_nemo else ["nemo"])
    rows = []
    for emission in emissions:
        nemo = args.nemo_path or checkpoint_for(emission)
        for kind in kinds:  # untimed: fills bytecode and page caches
            spawn(kind, nemo, args.audio, 0)
        results = {kind: spawn(kind, nemo, args.audio, args.runs) for kind in kinds}
        row = {"emission": emission, "checkpoint": str(nemo), "audio": str(args.audio), **results}
        if "nemo" in results:
            ours, ref = results["ours"], results["nemo"]
            row["tokens_identical"] = ours["tokens"] == ref["tokens"]
            row["cold_speedup"] = ref["cold_s"] / ours["cold_s"]
            row["warm_speedup"] = min(ref["warm_s"]) / min(ours["warm_s"])
        rows.append(row)

    print(f"{'emission':<10} {'impl':<5} {'start':>6} {'import':>7} {'load':>7} {'first':>7} {'cold':>7} "
          f"{'warm min':>9} {'tokens':>7}")
    for row in rows:
        for kind in kinds:
            r = row[kind]
            print(f"{row['emission']:<10} {kind:<5} {r['startup_s']:6.2f} {r['import_s']:7.2f} {r['load_s']:7.2f} "
                  f"{r['first_transcript_s']:7.2f} {r['cold_s']:7.2f} {min(r['warm_s']):9.2f} {len(r['tokens']):7d}")
        if "cold_speedup" in row:
            print(f"{'':<10} ratio: cold {row['cold_speedup']:.1f}x, warm {row['warm_speedup']:.2f}x, "
                  f"tokens identical: {row['tokens_identical']}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "reference_speed.json"
    for row in rows:
        for kind in kinds:
            row[kind].pop("text", None)
            row[kind]["num_tokens"] = len(row[kind]["tokens"])
    out.write_text(json.dumps({
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "runs": args.runs, "rows": rows,
    }, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
