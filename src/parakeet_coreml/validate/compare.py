"""The parity gate: every exported package against the torch reference, then the transcript.

Each component gets the same inputs on both sides (the reference's own upstream outputs, so
errors do not compound), and its outputs are scored against one tolerance table
(:mod:`.tolerances`). The end-to-end check decodes the validation audio through the packages
exactly as an app would and compares token ids and text with the reference model's. Any
failure is a :class:`Failure` line; the CLI exits non-zero when there is one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..audio import load_audio
from ..checkpoint import Checkpoint
from ..contract import COMPONENTS, build_contract
from ..decoding import TorchSteps, greedy_decode, to_transcript
from ..errors import ParakeetError
from ..export.convert import METADATA_FILE
from ..export.package import merge_json_atomic
from ..model import ParakeetModel
from ..pipeline import PackageSet
from ..runtime import Runtime
from ..runtime.torch import TorchRuntime
from .metrics import Diff, agreement, diff, per_frame_l2, topk_overlap
from .tolerances import DECISION_TOLERANCES, MAX_WER, Tol, float_tolerance
from .wer import word_error_rate

DEFAULT_AUDIO = Path(__file__).resolve().parents[1] / "data" / "speech_15s.wav"


@dataclass
class Failure:
    component: str
    metric: str
    value: float
    tolerance: str

    def line(self) -> str:
        return f"{self.component}: {self.metric} = {self.value:.6g} (tolerance {self.tolerance})"


@dataclass
class ComponentReport:
    name: str
    precision: str
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    decisions: dict[str, float] = field(default_factory=dict)
    latency: dict[str, Any] = field(default_factory=dict)
    series: dict[str, Any] = field(default_factory=dict)  # arrays for plots (not serialised)
    match: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "precision": self.precision,
            "match": self.match,
            "outputs": self.outputs,
            "decisions": self.decisions,
            "latency": self.latency,
        }


@dataclass
class CompareResult:
    model_dir: Path
    runtime: str
    audio: str
    components: dict[str, ComponentReport] = field(default_factory=dict)
    end_to_end: dict[str, Any] = field(default_factory=dict)
    fused: dict[str, Any] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "runtime": self.runtime,
            "runtime_note": RUNTIME_NOTES.get(self.runtime, ""),
            "audio": self.audio,
            "components": {k: v.to_dict() for k, v in self.components.items()},
            "fused_vs_separate": self.fused,
            "end_to_end": self.end_to_end,
            "failures": [f.line() for f in self.failures],
        }


RUNTIME_NOTES = {
    "mil": "package timings come from the portable MIL interpreter (torch kernels on this CPU); "
    "they are not device numbers",
    "coreml": "package timings come from native Core ML on this Mac",
}


def time_calls(fn: Callable[[], Any], runs: int, warmup: int) -> dict[str, float]:
    """First call, then ``warmup`` untimed calls, then ``runs`` timed ones (milliseconds)."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    a = np.array(times) * 1e3
    return {
        "first_ms": first * 1e3,
        "mean_ms": float(a.mean()) if a.size else float("nan"),
        "median_ms": float(np.median(a)) if a.size else float("nan"),
        "p95_ms": float(np.percentile(a, 95)) if a.size else float("nan"),
        "runs": runs,
    }


class _Gate:
    """Collects scores and failures for one component."""

    def __init__(self, result: CompareResult, report: ComponentReport):
        self.result, self.report = result, report

    def fail(self, metric: str, value: float, tolerance: str) -> None:
        self.report.match = False
        self.result.failures.append(Failure(self.report.name, metric, value, tolerance))

    def floats(self, output: str, ref: np.ndarray, got: np.ndarray, tol: Tol) -> Diff:
        d = diff(ref, got)
        limit = tol.limit(d.scale)
        entry = {**d.to_dict(), "limit_max_abs": limit, "min_quality": tol.min_quality}
        self.report.outputs[output] = entry
        if not np.all(np.isfinite(np.asarray(got, dtype=np.float64))):
            self.fail(f"{output} non-finite values", float(np.sum(~np.isfinite(got))), "0")
        if d.max_abs > limit:
            self.fail(f"{output} max_abs", d.max_abs, f"{limit:.3g} = {tol.atol:g} + {tol.rtol:g} x scale {d.scale:.3g}")
        if d.quality < tol.min_quality:
            self.fail(f"{output} quality", d.quality, f">= {tol.min_quality:g}")
        return d

    def exact(self, output: str, ref: np.ndarray, got: np.ndarray) -> None:
        ok = bool(np.array_equal(np.asarray(ref), np.asarray(got)))
        self.report.outputs[output] = {"equal": ok, "reference": np.asarray(ref).tolist(), "package": np.asarray(got).tolist()}
        if not ok:
            self.fail(f"{output} equal", 0.0, "identical")

    def at_least(self, metric: str, value: float, floor: float) -> None:
        self.report.decisions[metric] = value
        if value < floor:
            self.fail(metric, value, f">= {floor:g}")


def compare(
    model_dir: str | Path,
    ckpt: Checkpoint,
    audio: str | Path | None = None,
    runtime: str = "auto",
    compute_units: str = "ALL",
    runs: int = 10,
    warmup: int = 3,
    symbol_steps: int = 32,
    atol: dict[str, float] | None = None,
    rtol: dict[str, float] | None = None,
    plots_dir: str | Path | None = Path("plots/compare-components"),
    report_dir: str | Path | None = None,
    progress: Callable[[str], None] = lambda msg: None,
) -> CompareResult:
    """Score every package in ``model_dir`` against ``ckpt``'s reference (see module doc)."""
    import platform

    packages = PackageSet(model_dir, runtime, compute_units)
    kind = ("coreml" if platform.system() == "Darwin" else "mil") if runtime == "auto" else runtime
    meta = packages.metadata
    _check_source(meta, ckpt, packages.dir)
    model_info = meta["model"]
    contract = build_contract(ckpt.config, model_info["window_seconds"], model_info["top_k"])
    if contract.summary() != {k: model_info.get(k) for k in contract.summary()}:
        raise ParakeetError(f"{packages.dir}: metadata.json describes another model or window than {ckpt.source}")
    model = ParakeetModel.from_checkpoint(ckpt)
    audio_path = Path(audio) if audio else DEFAULT_AUDIO
    samples = load_audio(audio_path, contract.sample_rate).samples
    inputs = packages.window_inputs(samples, str(audio_path))
    result = CompareResult(packages.dir, kind, str(audio_path))
    atol, rtol = atol or {}, rtol or {}

    def tol(name: str, precision: str) -> Tol:
        return float_tolerance(name, precision, atol.get(name, atol.get("*")), rtol.get(name, rtol.get("*")))

    # The reference chain on the padded window: the inputs every component receives.
    ref = {name: TorchRuntime(model, contract, name) for name in COMPONENTS}
    r_pre = ref["preprocessor"].predict(inputs)
    r_enc = ref["encoder"].predict({"mel": r_pre["mel"], "mel_length": r_pre["mel_length"]})
    valid_mel = int(r_pre["mel_length"][0])
    valid_enc = int(r_enc["encoder_length"][0])

    # The reference transcript on the unpadded clip (what NeMo would do).
    with torch.inference_mode():
        audio_t = torch.from_numpy(samples).unsqueeze(0)
        enc_u, enc_len_u = model.encode(audio_t, torch.tensor([len(samples)]))
    ref_tokens = greedy_decode(TorchSteps(model, enc_u[0]), int(enc_len_u[0]), ckpt.config.blank_id,
                               ckpt.config.durations, ckpt.config.max_symbols)
    ref_transcript = to_transcript(ref_tokens, ckpt.tokenizer, ckpt.config)

    start_state = np.zeros(contract["decoder"].input("h_in").shape, dtype=np.float32)
    r_dec0 = ref["decoder"].predict({
        "targets": np.array([[ckpt.config.blank_id]], np.int32), "target_length": np.array([1], np.int32),
        "h_in": start_state, "c_in": start_state,
    })
    joint_inputs = {"encoder": r_enc["encoder"], "decoder": r_dec0["decoder"]}

    for name, entry in packages.components.items():
        if name not in COMPONENTS:
            continue
        progress(f"comparing {name} ({entry['precision']})")
        pkg = packages.runtime(name)
        report = ComponentReport(name, entry["precision"])
        result.components[name] = report
        gate = _Gate(result, report)
        t = tol(name, entry["precision"])
        decisions = DECISION_TOLERANCES[entry["precision"]]
        if name in ("preprocessor", "encoder", "mel_encoder"):
            feed = inputs if name != "encoder" else {"mel": r_pre["mel"], "mel_length": r_pre["mel_length"]}
            want = r_pre if name == "preprocessor" else r_enc
            got = pkg.predict(feed)
            if name == "preprocessor":
                gate.floats("mel", want["mel"][..., :valid_mel], got["mel"][..., :valid_mel], t)
                gate.exact("mel_length", want["mel_length"], got["mel_length"])
                report.series = {"ref": want["mel"][0, :, :valid_mel], "got": got["mel"][0, :, :valid_mel]}
            else:
                gate.floats("encoder", want["encoder"][..., :valid_enc], got["encoder"][..., :valid_enc], t)
                gate.exact("encoder_length", want["encoder_length"], got["encoder_length"])
                report.series = {"time_l2": per_frame_l2(want["encoder"][..., :valid_enc], got["encoder"][..., :valid_enc], 2)}
            lat_inputs = feed
        elif name == "decoder":
            steps = _decoder_steps(ref["decoder"], pkg, ckpt, ref_transcript.token_ids, symbol_steps, start_state)
            for output in ("decoder", "h_out", "c_out"):
                gate.floats(output, steps["ref"][output], steps["got"][output], t)
            report.decisions["steps"] = float(len(steps["tokens"]))
            report.series = {"step_l2": steps["step_l2"], "tokens": steps["tokens"]}
            lat_inputs = steps["first_inputs"]
        elif name == "joint":
            want = ref["joint"].predict(joint_inputs)["logits"][:, :valid_enc]
            got = pkg.predict(joint_inputs)["logits"][:, :valid_enc]
            gate.floats("logits", want, got, t)
            vb = ckpt.config.vocab_size + 1
            overlap = topk_overlap(want[..., :vb], got[..., :vb], contract.top_k)
            gate.at_least(f"top{contract.top_k}_overlap", float(overlap.mean()), decisions.topk_overlap)
            report.series = {"time_l2": per_frame_l2(want, got, 1), "topk_overlap": overlap, "logits": (want, got)}
            lat_inputs = joint_inputs
        elif name == "joint_decision":
            want = ref["joint_decision"].predict(joint_inputs)
            got = pkg.predict(joint_inputs)
            _score_decisions(gate, want, got, valid_enc, t, decisions)
            report.series = {"ref": want, "got": got, "valid": valid_enc}
            lat_inputs = joint_inputs
        else:  # joint_decision_single_step
            want_all, got_all = _single_steps(ref[name], pkg, r_enc["encoder"], r_dec0["decoder"], valid_enc)
            _score_decisions(gate, want_all, got_all, valid_enc, t, decisions)
            gate.floats("top_k_logits", want_all["top_k_logits"], got_all["top_k_logits"], t)
            k = want_all["top_k_ids"].shape[-1]
            same_ids = np.mean([len(set(a) & set(b)) / k for a, b in zip(
                want_all["top_k_ids"].reshape(-1, k)[:valid_enc], got_all["top_k_ids"].reshape(-1, k)[:valid_enc])])
            gate.at_least("top_k_ids_overlap", float(same_ids), decisions.topk_overlap)
            lat_inputs = {"encoder_step": np.ascontiguousarray(r_enc["encoder"][:, :, :1]), "decoder_step": r_dec0["decoder"]}
        report.latency = {
            "reference_torch": time_calls(lambda: ref[name].predict(lat_inputs), runs, warmup),
            f"package_{kind}": time_calls(lambda: pkg.predict(lat_inputs), runs, warmup),
        }
        if name in ("preprocessor", "encoder", "mel_encoder"):
            for k in list(report.latency):
                report.latency[k]["rtf"] = report.latency[k]["median_ms"] / 1e3 / contract.window_seconds

    result.fused = _fused_vs_separate(packages, inputs, joint_inputs, ckpt, valid_enc, result, runs, warmup)
    result.end_to_end = _end_to_end(packages, samples, ckpt, ref_transcript, result, kind)
    if plots_dir is not None:
        from .plots import write_plots

        result.plots = write_plots(result, Path(plots_dir))
    _write_reports(result, packages.dir, Path(report_dir) if report_dir else packages.dir)
    return result


def _check_source(meta: dict[str, Any], ckpt: Checkpoint, where: Path) -> None:
    src = meta.get("source") or {}
    if ckpt.model_id and src.get("model_id") == ckpt.model_id:
        return
    if src.get("sha256") and ckpt.sha256() and src["sha256"] != ckpt.sha256():
        raise ParakeetError(
            f"{where}: packages were converted from {src.get('nemo_path') or src.get('model_id')} "
            f"(sha256 {src['sha256'][:12]}...), not from {ckpt.source}"
        )


def _decoder_steps(
    ref: Runtime, pkg: Runtime, ckpt: Checkpoint, tokens: list[int], symbol_steps: int, zeros: np.ndarray
) -> dict[str, Any]:
    """Unroll both decoders over real tokens, each carrying its own LSTM state."""
    seq = [ckpt.config.blank_id] + list(tokens)
    if len(seq) < symbol_steps:  # a short transcript: continue with a fixed token walk
        seq += [(7 * i + 3) % ckpt.config.vocab_size for i in range(symbol_steps - len(seq))]
    seq = seq[:symbol_steps]
    state_r = (zeros, zeros.copy())
    state_p = (zeros.copy(), zeros.copy())
    acc: dict[str, dict[str, list[np.ndarray]]] = {"ref": {}, "got": {}}
    step_l2 = []
    first = None
    for tok in seq:
        feed = {"targets": np.array([[tok]], np.int32), "target_length": np.array([1], np.int32)}
        r = ref.predict({**feed, "h_in": state_r[0], "c_in": state_r[1]})
        fp = {**feed, "h_in": state_p[0], "c_in": state_p[1]}
        first = first or fp
        p = pkg.predict(fp)
        for side, out in (("ref", r), ("got", p)):
            for k, v in out.items():
                acc[side].setdefault(k, []).append(v)
        step_l2.append(float(np.linalg.norm(p["decoder"].astype(np.float64) - r["decoder"])))
        state_r, state_p = (r["h_out"], r["c_out"]), (p["h_out"], p["c_out"])
    return {
        "ref": {k: np.stack(v) for k, v in acc["ref"].items()},
        "got": {k: np.stack(v) for k, v in acc["got"].items()},
        "step_l2": np.array(step_l2),
        "tokens": seq,
        "first_inputs": first,
    }


def _single_steps(ref: Runtime, pkg: Runtime, encoder: np.ndarray, decoder: np.ndarray, frames: int) -> tuple[dict, dict]:
    outs: tuple[dict[str, list], dict[str, list]] = ({}, {})
    for t in range(frames):
        feed = {"encoder_step": np.ascontiguousarray(encoder[:, :, t : t + 1]), "decoder_step": decoder}
        for side, rt in zip(outs, (ref, pkg)):
            for k, v in rt.predict(feed).items():
                side.setdefault(k, []).append(v)
    want = {k: np.concatenate(v, axis=1) for k, v in outs[0].items()}
    got = {k: np.concatenate(v, axis=1) for k, v in outs[1].items()}
    return want, got


def _score_decisions(gate: _Gate, want: dict, got: dict, valid: int, tol: Tol, dec: Any) -> None:
    gate.at_least("token_id agreement", agreement(want["token_id"][:, :valid], got["token_id"][:, :valid]), dec.token_agreement)
    if "duration" in want:
        gate.at_least("duration agreement", agreement(want["duration"][:, :valid], got["duration"][:, :valid]), dec.duration_agreement)
    gate.floats("token_prob", want["token_prob"][:, :valid], got["token_prob"][:, :valid], tol)


def _fused_vs_separate(
    packages: PackageSet, inputs: dict, joint_inputs: dict, ckpt: Checkpoint, valid: int,
    result: CompareResult, runs: int, warmup: int,
) -> dict[str, Any]:
    """Fused packages against the chain of separate ones (both are packages)."""
    out: dict[str, Any] = {}
    comps = packages.components
    if {"mel_encoder", "preprocessor", "encoder"} <= set(comps):
        fused = packages.runtime("mel_encoder")
        pre, enc = packages.runtime("preprocessor"), packages.runtime("encoder")

        def chain() -> dict:
            mel = pre.predict(inputs)
            return enc.predict({"mel": mel["mel"], "mel_length": mel["mel_length"]})

        a, b = fused.predict(inputs)["encoder"][..., :valid], chain()["encoder"][..., :valid]
        out["mel_encoder_vs_preprocessor_encoder"] = {
            **diff(b, a).to_dict(),
            "fused": time_calls(lambda: fused.predict(inputs), runs, warmup),
            "separate": time_calls(chain, runs, warmup),
        }
    if {"joint_decision", "joint"} <= set(comps):
        fused = packages.runtime("joint_decision")
        joint = packages.runtime("joint")
        vb = ckpt.config.vocab_size + 1

        def host() -> dict:
            logits = joint.predict(joint_inputs)["logits"]
            tokens = logits[..., :vb]
            out = {"token_id": tokens.argmax(-1).astype(np.int32)}
            if ckpt.config.durations:
                out["duration"] = logits[..., vb:].argmax(-1).astype(np.int32)
            return out

        f, h = fused.predict(joint_inputs), host()
        entry = {
            "token_id_agreement": agreement(h["token_id"][:, :valid], f["token_id"][:, :valid]),
            "fused": time_calls(lambda: fused.predict(joint_inputs), runs, warmup),
            "separate": time_calls(host, runs, warmup),
        }
        if "duration" in h:
            entry["duration_agreement"] = agreement(h["duration"][:, :valid], f["duration"][:, :valid])
        out["joint_decision_vs_joint_host"] = entry
    return out


def _end_to_end(
    packages: PackageSet, samples: np.ndarray, ckpt: Checkpoint, ref: Any, result: CompareResult, kind: str
) -> dict[str, Any]:
    """Greedy decoding through the packages against the reference transcript."""
    needed = {"preprocessor", "encoder", "decoder", "joint_decision_single_step"}
    if not needed <= set(packages.components):
        return {"skipped": f"needs {', '.join(sorted(needed))}"}
    t0 = time.perf_counter()
    got = packages.transcribe_samples(samples, ckpt.config)
    seconds = time.perf_counter() - t0
    ids_ref, ids_got = ref.token_ids, got.token_ids
    token_err = word_error_rate(" ".join(map(str, ids_ref)), " ".join(map(str, ids_got)), normalise=False)
    wer = word_error_rate(ref.text, got.text)
    precisions = {packages.components[c]["precision"] for c in ("encoder", "decoder", "joint_decision_single_step")}
    precision = "fp16" if "fp16" in precisions else "fp32"
    entry = {
        "precision": precision,
        "reference_tokens": len(ids_ref),
        "package_tokens": len(ids_got),
        "tokens_identical": ids_ref == ids_got,
        "token_agreement": 1.0 - token_err.wer if ids_ref else float(ids_got == []),
        "wer": wer.to_dict(),
        "reference_text": ref.text,
        "package_text": got.text,
        "decode_seconds": seconds,
    }
    if precision == "fp32" and ids_ref != ids_got:
        result.failures.append(Failure("end_to_end", "token ids differ; token agreement", entry["token_agreement"], "identical"))
    if wer.wer > MAX_WER[precision]:
        result.failures.append(Failure("end_to_end", "WER vs reference", wer.wer, f"<= {MAX_WER[precision]:g}"))
    return entry


def _write_reports(result: CompareResult, model_dir: Path, report_dir: Path) -> None:
    from .report import markdown_report
    from ..export.package import write_json_atomic

    data = result.to_dict()
    report_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(report_dir / "compare_report.json", data)
    tmp = report_dir / ".compare_report.md.tmp"
    tmp.write_text(markdown_report(result))
    tmp.replace(report_dir / "compare_report.md")
    validation = {
        "passed": result.passed,
        "runtime": result.runtime,
        "audio": result.audio,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "components": {k: {"match": v.match, "precision": v.precision,
                           **{o: {m: e[m] for m in ("max_abs", "max_rel", "mean_abs", "quality") if m in e}
                              for o, e in v.outputs.items() if "max_abs" in e},
                           **v.decisions}
                       for k, v in result.components.items()},
        "end_to_end": {k: v for k, v in result.end_to_end.items() if k not in ("reference_text", "package_text")},
        "failures": [f.line() for f in result.failures],
    }
    merge_json_atomic(model_dir / METADATA_FILE, {"validation": validation})
