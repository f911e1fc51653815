"""Portable MIL interpreter: execute saved Core ML ML programs with torch, on any OS.

``MilRuntime(path)`` loads an ``.mlpackage`` back into a coremltools MIL program exactly as
written to disk and runs its ops in order with torch kernels on the CPU, so packages can be
validated on Linux. Modules:

- ``loader``: package -> MIL ``Program`` (+ model spec for declared I/O names)
- ``plan``: program -> execution plan (constants, compressed weights, folding, liveness)
- ``executor`` / ``control``: the interpreter loop; ``while_loop`` and ``cond`` blocks
- ``constexpr``: decompression of compressed-weight ops, once at load
- ``ops_*``: kernels, registered by op type in ``registry``
- ``runtime``: ``MilRuntime`` and the fp16 numerics model (see its docstring)
"""

from .registry import supported_op_types
from .runtime import MilRuntime

__all__ = ["MilRuntime", "supported_op_types"]
