"""Markdown form of a compare run: the parity table, decisions, transcript and latency."""

from __future__ import annotations

from typing import Any

from .tolerances import table_markdown


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def parity_table(result: Any) -> str:
    lines = [
        "| component | precision | output | max abs | limit | max rel | mean abs | quality | match |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, c in result.components.items():
        for out, e in c.outputs.items():
            if "max_abs" in e:
                lines.append(
                    f"| {name} | {c.precision} | {out} | {e['max_abs']:.3g} | {e['limit_max_abs']:.3g} | "
                    f"{e['max_rel']:.3g} | {e['mean_abs']:.3g} | {e['quality']:.6f} | {'yes' if c.match else 'NO'} |"
                )
            else:
                lines.append(f"| {name} | {c.precision} | {out} | equal: {e['equal']} | | | | | {'yes' if c.match else 'NO'} |")
        for metric, value in c.decisions.items():
            lines.append(f"| {name} | {c.precision} | {metric} | {_fmt(value)} | | | | | {'yes' if c.match else 'NO'} |")
    return "\n".join(lines)


def latency_table(result: Any) -> str:
    lines = ["| component | reference median ms | package median ms | package first ms | package p95 ms | speedup | RTF (package) |",
             "|---|---|---|---|---|---|---|"]
    for name, c in result.components.items():
        if not c.latency:
            continue
        ref = c.latency["reference_torch"]
        pkg = next(v for k, v in c.latency.items() if k.startswith("package_"))
        rtf = f"{pkg['rtf']:.4f}" if "rtf" in pkg else ""
        lines.append(
            f"| {name} | {ref['median_ms']:.2f} | {pkg['median_ms']:.2f} | {pkg['first_ms']:.2f} | {pkg['p95_ms']:.2f} | "
            f"{ref['median_ms'] / max(pkg['median_ms'], 1e-9):.2f}x | {rtf} |"
        )
    return "\n".join(lines)


def markdown_report(result: Any) -> str:
    from .compare import RUNTIME_NOTES

    e2e = result.end_to_end
    parts = [
        "# Parakeet CoreML parity report",
        "",
        f"- Packages: `{result.model_dir}`",
        f"- Runtime: {result.runtime} ({RUNTIME_NOTES.get(result.runtime, '')})",
        f"- Audio: `{result.audio}`",
        f"- Result: **{'PASS' if result.passed else 'FAIL'}**",
        "",
        "## Parity",
        "",
        parity_table(result),
        "",
        "## End to end",
        "",
    ]
    if "skipped" in e2e:
        parts.append(f"Skipped: {e2e['skipped']}.")
    else:
        parts += [
            f"- Tokens: reference {e2e['reference_tokens']}, packages {e2e['package_tokens']}; identical: "
            f"{e2e['tokens_identical']}; token agreement {e2e['token_agreement']:.4f}",
            f"- WER between the transcripts: {e2e['wer']['wer']:.4f} "
            f"(S {e2e['wer']['substitutions']}, D {e2e['wer']['deletions']}, I {e2e['wer']['insertions']})",
            f"- Reference: `{e2e['reference_text']}`",
            f"- Packages: `{e2e['package_text']}`",
        ]
    parts += ["", "## Latency", "", latency_table(result), ""]
    if result.fused:
        parts += ["## Fused against separate", ""]
        for k, v in result.fused.items():
            extras = ", ".join(f"{m} {v[m]:.4g}" for m in ("max_abs", "quality", "token_id_agreement", "duration_agreement") if m in v)
            parts.append(f"- {k}: fused {v['fused']['median_ms']:.2f} ms, separate {v['separate']['median_ms']:.2f} ms; {extras}")
        parts.append("")
    if result.failures:
        parts += ["## Failures", ""] + [f"- {f.line()}" for f in result.failures] + [""]
    parts += ["## Tolerances", "", table_markdown(), ""]
    return "\n".join(parts)
