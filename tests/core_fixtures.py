"""Fixtures for checkpoints and exports built by the toolkit itself (no NeMo needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from parakeet_coreml.synthetic import make_checkpoint


@pytest.fixture(scope="session")
def tiny_nemo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random TDT checkpoint written by ``make-checkpoint`` (seed 0)."""
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.nemo", "tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_ckpt(tiny_nemo: Path):
    from parakeet_coreml.checkpoint import load_checkpoint

    return load_checkpoint(tiny_nemo)


def _export(tmp_path_factory: pytest.TempPathFactory, tiny_ckpt, precision: str, **kw) -> Path:
    from parakeet_coreml.export.convert import convert

    out = tmp_path_factory.mktemp(f"export_{precision}") / "packages"
    convert(tiny_ckpt, out, precision=precision, **kw)
    return out


@pytest.fixture(scope="session")
def tiny_export_fp32(tmp_path_factory: pytest.TempPathFactory, tiny_ckpt) -> Path:
    """Every component of the tiny model, fp32, iOS17, 15 s window."""
    return _export(tmp_path_factory, tiny_ckpt, "fp32")


@pytest.fixture(scope="session")
def tiny_export_fp16(tmp_path_factory: pytest.TempPathFactory, tiny_ckpt) -> Path:
    """Every component of the tiny model, fp16 (preprocessor fp32), iOS18 target."""
    return _export(tmp_path_factory, tiny_ckpt, "fp16", target="ios18")
