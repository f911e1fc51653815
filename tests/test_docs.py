"""README tells the truth: its tables are the code's and the bench results', not hand-copied."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from parakeet_coreml.validate.tolerances import table_markdown

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _bench_module(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_start_is_exactly_the_two_commands() -> None:
    section = README.split("## Quick start", 1)[1]
    block = re.search(r"```\n(.*?)```", section, re.S).group(1)
    assert block.splitlines() == ["uv run parakeet-coreml demo", "uv run pytest"]


def test_ci_runs_the_readme_test_command() -> None:
    assert "uv run pytest" in (ROOT / ".ci" / "run").read_text()


def test_tolerance_table_is_the_one_compare_uses() -> None:
    assert table_markdown().strip() in README


def test_measured_section_matches_bench_results() -> None:
    tables = _bench_module("readme_tables")
    assert tables.block() in README, "README is stale: run `uv run python bench/readme_tables.py --write`"
