"""Render README's "Measured" section from the JSON the bench scripts wrote.

README numbers must come from ``bench/results/``; this renders them and, with ``--write``,
replaces the block between the ``bench:begin`` / ``bench:end`` markers in README.md. A test
fails when the committed README and the committed results disagree.

    uv run python bench/readme_tables.py            # print
    uv run python bench/readme_tables.py --write    # update README.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
README = ROOT / "README.md"
BEGIN, END = "<!-- bench:begin (bench/readme_tables.py --write) -->", "<!-- bench:end -->"


def _load(name: str) -> Any:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else None


def reference_speed() -> list[str]:
    data = _load("reference_speed.json")
    if not data:
        return []
    lines = [
        f"**Reference transcriber against NeMo 3.0** (`bench/reference_speed.py`, 15 s clip, "
        f"warm = best of {data['runs']}; cold = fresh process to first transcript):",
        "",
        "| emission | tokens | ours cold s | NeMo cold s | cold speed-up | ours warm s | NeMo warm s | warm speed-up | tokens identical |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in data["rows"]:
        o, n = r["ours"], r["nemo"]
        lines.append(
            f"| {r['emission']} | {o['num_tokens']} | {o['cold_s']:.2f} | {n['cold_s']:.2f} | {r['cold_speedup']:.1f}x | "
            f"{min(o['warm_s']):.2f} | {min(n['warm_s']):.2f} | {r['warm_speedup']:.2f}x | {r['tokens_identical']} |"
        )
    parts = ", ".join(
        f"{r['emission']}: ours import {r['ours']['import_s']:.1f} + load {r['ours']['load_s']:.1f} + first "
        f"{r['ours']['first_transcript_s']:.1f} s, NeMo import {r['nemo']['import_s']:.1f} + restore "
        f"{r['nemo']['load_s']:.1f} + first {r['nemo']['first_transcript_s']:.1f} s"
        for r in data["rows"]
    )
    verdict = "; ".join(
        f"{r['emission']}: cold {'met' if r['cold_speedup'] >= 8 else 'missed'}, "
        f"warm {'met' if r['warm_speedup'] >= 1.5 else 'missed'}"
        for r in data["rows"]
    )
    return lines + ["", f"Cold start split: {parts}.", "",
                    f"Targets (cold at least 8x, warm at least 1.5x NeMo, identical tokens): {verdict}.", ""]


def export() -> list[str]:
    rows = [(p, _load(f"export_{p}.json")) for p in ("fp16", "fp32")]
    rows = [(p, d) for p, d in rows if d]
    if not rows:
        return []
    lines = [
        "**Export of all seven components** (`bench/export.py`, v3 shapes, one process; peak = resident set "
        "size including the loaded checkpoint):",
        "",
        "| precision | total | peak memory | encoder | mel_encoder | packages on disk |",
        "|---|---|---|---|---|---|",
    ]
    for p, d in rows:
        comp = {c["component"]: c for c in d["components"]}
        size = sum(c["size_mib"] for c in d["components"])
        lines.append(
            f"| {p} | {d['total_s']:.0f} s | {d['peak_rss_gib']:.1f} GiB | {comp['encoder']['wall_s']:.0f} s | "
            f"{comp['mel_encoder']['wall_s']:.0f} s | {size / 1024:.2f} GiB |"
        )
    ok = all(d["total_s"] <= 180 and d["peak_rss_gib"] <= 8 for _, d in rows)
    return lines + ["", f"Target (all seven in at most 3 min and 8 GiB): {'met' if ok else 'missed'}.", ""]


def runtime() -> list[str]:
    d = _load("runtime.json")
    if not d:
        return []
    t, m = d["torch"], d["mil"]
    return [
        f"**Portable MIL runtime** (`bench/runtime.py`, v3 fp16 encoder package on one 15 s window, "
        f"median of {d['runs']}, each side in its own process):",
        "",
        "| side | load s | first call s | median s | peak memory |",
        "|---|---|---|---|---|",
        f"| torch fp32 reference | {t['load_s']:.2f} | {t['first_s']:.2f} | {t['median_s']:.2f} | {t['peak_rss_gib']:.2f} GiB |",
        f"| MIL runtime, fp16 package | {m['load_s']:.2f} | {m['first_s']:.2f} | {m['median_s']:.2f} | {m['peak_rss_gib']:.2f} GiB |",
        "",
        f"Time ratio {d['time_ratio_median']:.2f}x the torch reference; output against the reference: max abs "
        f"{d['parity']['max_abs']:.3g}, quality {d['parity']['quality']:.4f}. These are an interpreter on this CPU, "
        "not Core ML device numbers. "
        f"Target (at most 3x): {'met' if d['time_ratio_median'] <= 3 else 'missed'}.",
        "",
    ]


def parity() -> list[str]:
    reports = [(p, _load(f"parity_v3_{p}/compare_report.json")) for p in ("fp16", "fp32")]
    reports = [(p, r) for p, r in reports if r]
    if not reports:
        return []
    head = " | ".join(f"{p} max abs | {p} limit | {p} quality" for p, _ in reports)
    lines = [
        "**Parity of a v3 export** (`bench/parity.py`, the `compare` gate through the MIL runtime on the "
        "built-in 15 s clip; limit = atol + rtol x scale from the table above):",
        "",
        f"| component | output | {head} |",
        "|---|---|" + "---|" * (3 * len(reports)),
    ]
    first = reports[0][1]["components"]
    for name, comp in first.items():
        for out in comp["outputs"]:
            cells = []
            for _, r in reports:
                e = r["components"].get(name, {}).get("outputs", {}).get(out, {})
                if "max_abs" in e:
                    cells += [f"{e['max_abs']:.3g}", f"{e['limit_max_abs']:.3g}", f"{e['quality']:.5f}"]
                else:
                    cells += [f"equal: {e.get('equal')}", "", ""]
            lines.append(f"| {name} | {out} | " + " | ".join(cells) + " |")
        for metric in comp["decisions"]:
            cells = []
            for _, r in reports:
                v = r["components"].get(name, {}).get("decisions", {}).get(metric)
                cells += [f"{v:.4g}" if isinstance(v, float) else str(v), "", ""]
            lines.append(f"| {name} | {metric} | " + " | ".join(cells) + " |")
    lines.append("")
    for p, r in reports:
        e = r["end_to_end"]
        lines.append(
            f"- {p}: gate {'PASS' if r['passed'] else 'FAIL'}; end to end, reference {e['reference_tokens']} tokens, "
            f"packages {e['package_tokens']}, identical: {e['tokens_identical']}, WER {e['wer']['wer']:.3f}; "
            f"plots in `plots/compare-components-v3-{p}/`, report in `bench/results/parity_v3_{p}/`."
        )
    return lines + [""]


def render() -> str:
    blocks = [reference_speed(), export(), runtime(), parity()]
    return "\n".join(line for block in blocks for line in block).rstrip() + "\n"


def block() -> str:
    return f"{BEGIN}\n{render()}{END}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", action="store_true", help="replace the marked block in README.md")
    args = ap.parse_args()
    if not args.write:
        print(render())
        return
    text = README.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    README.write_text(text[:start] + block() + text[end:])
    print(f"updated {README}")


if __name__ == "__main__":
    main()
