"""Native Core ML (macOS only): Apple's runtime agrees with the portable interpreter and torch.

On Linux there is no MLModel.predict, so this module is skipped there; the macOS workflow in
.github/workflows/macos.yml runs it on every push.
"""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np
import pytest

from parakeet_coreml.contract import COMPONENTS, build_contract
from parakeet_coreml.export.convert import example_inputs
from parakeet_coreml.model import ParakeetModel
from parakeet_coreml.runtime import load_runtime
from parakeet_coreml.validate.metrics import diff

pytestmark = pytest.mark.skipif(
    platform.system() != "Darwin", reason="native Core ML prediction needs macOS"
)


@pytest.mark.parametrize("component", COMPONENTS)
def test_native_matches_portable_runtime_fp32(
    component: str, tiny_export_fp32: Path, tiny_ckpt
) -> None:
    model = ParakeetModel.from_checkpoint(tiny_ckpt)
    contract = build_contract(tiny_ckpt.config)
    feed = example_inputs(model, contract)[component]
    path = tiny_export_fp32 / f"parakeet_{component}.mlpackage"
    native = load_runtime(path, "coreml", compute_units="CPU_ONLY").predict(feed)
    portable = load_runtime(path, "mil").predict(feed)
    for t in contract[component].outputs:
        if t.dtype == "int32":
            agree = np.mean(native[t.name] == portable[t.name])
            assert agree >= 0.99, (t.name, agree)
        else:
            d = diff(portable[t.name], native[t.name])
            assert d.max_abs <= 1e-3 * max(d.scale, 1e-6), (t.name, d)
