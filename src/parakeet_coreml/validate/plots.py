"""Parity and latency plots for a compare run (PNG, every one titled, axes labelled with units)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np


def _figure(w: float = 8.0, h: float = 4.0) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(w, h))


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.tight_layout()
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def write_plots(result: Any, out: Path) -> list[Path]:
    """Write every plot the data of ``result`` supports into ``out``; returns the files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    comps = result.components
    label = "package (" + result.runtime + ")"

    pre = comps.get("preprocessor")
    if pre is not None and pre.series:
        ref, got = pre.series["ref"], pre.series["got"]
        fig, axes = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
        for ax, data, title in zip(axes, (ref, got, np.abs(got - ref)), ("reference (torch)", label, "|difference|")):
            im = ax.imshow(data, aspect="auto", origin="lower", cmap="magma" if title != "|difference|" else "viridis")
            ax.set_title(f"log-mel, {title}")
            ax.set_ylabel("mel bin")
            fig.colorbar(im, ax=ax, label="normalised log energy" if title != "|difference|" else "abs error")
        axes[-1].set_xlabel("frame (10 ms)")
        fig.suptitle("Preprocessor: mel features, reference vs package")
        written.append(_save(fig, out / "mel_composite.png"))

    for name, file, what in (("encoder", "encoder_time_l2.png", "encoder"), ("mel_encoder", "mel_encoder_time_l2.png", "mel+encoder")):
        c = comps.get(name)
        if c is not None and "time_l2" in c.series:
            fig, ax = _figure()
            ax.plot(c.series["time_l2"], lw=1.2)
            ax.set_title(f"{what.capitalize()} output error over time ({c.precision}, {result.runtime})")
            ax.set_xlabel("encoder frame (80 ms)")
            ax.set_ylabel("L2 norm of error (feature units)")
            ax.grid(alpha=0.3)
            written.append(_save(fig, out / file))

    dec = comps.get("decoder")
    if dec is not None and "step_l2" in dec.series:
        fig, ax = _figure()
        ax.plot(dec.series["step_l2"], marker="o", ms=3)
        ax.set_title(f"Decoder output error per symbol step, state carried ({dec.precision})")
        ax.set_xlabel("symbol step")
        ax.set_ylabel("L2 norm of error (output units)")
        ax.grid(alpha=0.3)
        written.append(_save(fig, out / "decoder_steps_l2.png"))

    joint = comps.get("joint")
    if joint is not None and "topk_overlap" in joint.series:
        fig, ax = _figure()
        ax.plot(joint.series["topk_overlap"], lw=1.2)
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"Joint: top-k token overlap per frame ({joint.precision})")
        ax.set_xlabel("encoder frame (80 ms)")
        ax.set_ylabel("overlap of top-k ids (fraction)")
        ax.grid(alpha=0.3)
        written.append(_save(fig, out / "joint_topk.png"))
        fig, ax = _figure()
        ax.plot(joint.series["time_l2"], lw=1.2)
        ax.set_title(f"Joint logits error over time ({joint.precision})")
        ax.set_xlabel("encoder frame (80 ms)")
        ax.set_ylabel("L2 norm of logit error (logit units)")
        ax.grid(alpha=0.3)
        written.append(_save(fig, out / "joint_time_l2.png"))

    jd = comps.get("joint_decision")
    if jd is not None and "ref" in jd.series:
        v = jd.series["valid"]
        r, g = jd.series["ref"], jd.series["got"]
        rid, gid = r["token_id"].reshape(-1)[:v], g["token_id"].reshape(-1)[:v]
        fig, ax = _figure()
        frames = np.arange(v)
        same = rid == gid
        ax.scatter(frames[same], rid[same], s=10, label="agree", color="tab:green")
        ax.scatter(frames[~same], gid[~same], s=16, label="package differs", color="tab:red", marker="x")
        ax.set_title(f"Joint decision: token id per frame, agreement {same.mean():.3f}")
        ax.set_xlabel("encoder frame (80 ms)")
        ax.set_ylabel("token id")
        ax.legend()
        written.append(_save(fig, out / "joint_decision_token_agree.png"))
        fig, ax = _figure()
        ax.plot(r["token_prob"].reshape(-1)[:v], label="reference (torch)")
        ax.plot(g["token_prob"].reshape(-1)[:v], label=label, ls="--")
        ax.set_title("Joint decision: probability of the chosen token")
        ax.set_xlabel("encoder frame (80 ms)")
        ax.set_ylabel("softmax probability")
        ax.legend()
        written.append(_save(fig, out / "joint_decision_prob.png"))

    lat = {k: c.latency for k, c in comps.items() if c.latency}
    if lat:
        names = list(lat)
        pkg_key = next(k for k in next(iter(lat.values())) if k.startswith("package_"))
        ref_ms = [lat[n]["reference_torch"]["median_ms"] for n in names]
        pkg_ms = [lat[n][pkg_key]["median_ms"] for n in names]
        x = np.arange(len(names))
        fig, ax = _figure(10, 4.5)
        ax.bar(x - 0.2, ref_ms, 0.4, label="reference (torch, CPU)")
        ax.bar(x + 0.2, pkg_ms, 0.4, label=label)
        ax.set_yscale("log")
        ax.set_xticks(x, names, rotation=20, ha="right")
        ax.set_ylabel("median latency (ms, log scale)")
        ax.set_title("Latency per component" + (" (portable interpreter, not device timing)" if result.runtime == "mil" else ""))
        ax.legend()
        written.append(_save(fig, out / "latency_summary.png"))
        fig, ax = _figure(10, 4.5)
        ax.bar(x, np.array(ref_ms) / np.maximum(pkg_ms, 1e-9))
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xticks(x, names, rotation=20, ha="right")
        ax.set_ylabel("speedup (reference ms / package ms)")
        ax.set_title(f"Package speedup over the torch reference ({result.runtime})")
        written.append(_save(fig, out / "latency_speedup.png"))

    if result.fused:
        keys = list(result.fused)
        fused_ms = [result.fused[k]["fused"]["median_ms"] for k in keys]
        sep_ms = [result.fused[k]["separate"]["median_ms"] for k in keys]
        x = np.arange(len(keys))
        fig, ax = _figure(9, 4.5)
        ax.bar(x - 0.2, sep_ms, 0.4, label="separate packages")
        ax.bar(x + 0.2, fused_ms, 0.4, label="fused package")
        ax.set_xticks(x, [k.replace("_vs_", "\nvs ") for k in keys])
        ax.set_ylabel("median latency (ms)")
        ax.set_title(f"Fused against separate ({result.runtime})")
        ax.legend()
        written.append(_save(fig, out / "latency_fused_vs_separate.png"))
    return written
