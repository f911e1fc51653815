"""Runtimes that predict like a Core ML model: native Core ML (macOS), and a portable MIL
interpreter that runs a saved package's program with torch on any OS.

``load_runtime`` picks one; everything downstream talks to the :class:`Runtime` protocol.
"""

from __future__ import annotations

import platform
from pathlib import Path

from .base import Runtime, TensorSpec, validate_inputs
from .coreml import CoreMLRuntime
from .mil import MilRuntime

__all__ = [
    "CoreMLRuntime",
    "MilRuntime",
    "Runtime",
    "TensorSpec",
    "load_runtime",
    "validate_inputs",
]

_KINDS = ("auto", "coreml", "mil")


def load_runtime(
    path: str | Path,
    runtime: str = "auto",
    compute_units: str = "ALL",
    function: str | None = None,
) -> Runtime:
    """Open an ``.mlpackage`` for prediction.

    ``runtime="auto"`` uses native Core ML on macOS and the MIL interpreter elsewhere;
    ``function`` selects a function of a multifunction package (default: its default one).
    """
    if runtime not in _KINDS:
        raise ValueError(f"runtime must be one of {_KINDS}, got {runtime!r}")
    if runtime == "auto":
        runtime = "coreml" if platform.system() == "Darwin" else "mil"
    if runtime == "coreml":
        return CoreMLRuntime(path, compute_units=compute_units, function=function)
    return MilRuntime(path, function=function)
