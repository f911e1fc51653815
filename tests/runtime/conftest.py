"""Runtime test configuration: keep coremltools' Linux warnings out of the output."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest

warnings.filterwarnings("ignore")
logging.getLogger("coremltools").setLevel(logging.ERROR)


_THIRD_PARTY_NOISE = (
    "ignore::DeprecationWarning",
    "ignore::torch.jit.TracerWarning",
    "ignore::UserWarning:coremltools.*",
    "ignore::RuntimeWarning:coremltools.*",
)


def pytest_collection_modifyitems(config, items):
    """coremltools and torch.jit.trace warn a lot on this stack; none of it is ours."""
    for item in items:
        if "runtime" in str(item.fspath):
            for f in _THIRD_PARTY_NOISE:
                item.add_marker(pytest.mark.filterwarnings(f))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
