"""``parakeet-coreml demo``: the README's first command, run for real in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("parakeet-coreml")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([str(exe), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_demo_converts_compares_and_passes(tmp_path: Path) -> None:
    run = _cli("demo", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    demo = tmp_path / "parakeet_demo"
    packages = demo / "packages"
    meta = json.loads((packages / "metadata.json").read_text())
    assert len(list(packages.glob("parakeet_*.mlpackage"))) == len(meta["components"]) == 7
    assert meta["validation"]["passed"] is True and meta["validation"]["runtime"] == "mil"
    plots = sorted((demo / "plots" / "compare-components").glob("*.png"))
    assert len(plots) == 11
    # the parity table, the end-to-end line and where the plots are, as printed
    assert "| encoder | fp16 | encoder |" in out
    assert "identical True" in out and f"({len(plots)} PNG)" in out
    assert out.rstrip().splitlines()[-1].startswith("PASS")
    assert "Traceback" not in run.stderr and "RuntimeWarning" not in run.stderr

    # a second run reuses its own folder; a folder it did not make is refused, untouched
    other = tmp_path / "mine"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    refused = _cli("demo", "--output-dir", str(other), cwd=tmp_path)
    assert refused.returncode == 1
    assert refused.stderr.strip().count("\n") == 0 and "not made by the demo" in refused.stderr
    assert [p.name for p in other.iterdir()] == ["keep.txt"]
