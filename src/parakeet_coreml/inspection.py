"""Describe a saved ``.mlpackage`` without running it: I/O, deployment target, metadata,
op counts, weight storage by compression kind, and known Neural Engine blockers.

Works from the package's protobuf alone (weights are sized from their declared types, never
read), so it is fast and light even for a 1+ GB encoder, and runs on any OS.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .runtime.base import TensorSpec
from .runtime.model_spec import function_names, io_specs

ANE_MAX_DIM = 16384

_DTYPE = {  # MIL proto DataType name -> (short name, bits)
    "BOOL": ("bool", 8), "STRING": ("str", 0), "FLOAT16": ("fp16", 16), "FLOAT32": ("fp32", 32),
    "FLOAT64": ("fp64", 64), "BFLOAT16": ("bf16", 16), "INT8": ("int8", 8), "INT16": ("int16", 16),
    "INT32": ("int32", 32), "INT64": ("int64", 64), "INT4": ("int4", 4), "UINT8": ("uint8", 8),
    "UINT16": ("uint16", 16), "UINT32": ("uint32", 32), "UINT64": ("uint64", 64),
    "UINT4": ("uint4", 4), "UINT2": ("uint2", 2), "UINT1": ("uint1", 1), "UINT6": ("uint6", 6),
    "UINT3": ("uint3", 3), "FLOAT8E4M3FN": ("fp8e4m3", 8), "FLOAT8E5M2": ("fp8e5m2", 8),
}

_TARGETS = {
    4: "iOS13", 5: "iOS14", 6: "iOS15 / macOS12", 7: "iOS16 / macOS13", 8: "iOS17 / macOS14",
    9: "iOS18 / macOS15",
}


@dataclass
class WeightGroup:
    """Stored weights of one compression kind."""

    kind: str
    tensors: int = 0
    params: int = 0  # elements of the dense (decompressed) weights
    bytes: int = 0  # bytes as stored in the package


@dataclass
class OpCount:
    """How many ops of one type produce a given output dtype."""

    op: str
    dtype: str
    count: int


@dataclass
class PackageReport:
    path: str
    spec_version: int
    deployment_target: str
    functions: list[str]
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    states: list[TensorSpec]
    metadata: dict[str, str]
    ops: list[OpCount]  # by (op type, output dtype), most frequent first; consts left out
    weights: dict[str, WeightGroup]
    warnings: list[str] = field(default_factory=list)

    @property
    def weight_bytes(self) -> int:
        return sum(g.bytes for g in self.weights.values())

    def op_count(self, op_type: str, dtype: str | None = None) -> int:
        """Ops of ``op_type`` (with output ``dtype`` if given), over all functions."""
        return sum(o.count for o in self.ops if o.op == op_type and dtype in (None, o.dtype))


# ---------------------------------------------------------------- proto helpers


def _tensor_info(value_type) -> tuple[str, int, list[int | None]]:
    """(dtype name, bits, dims with None for unknown) of a MIL ValueType."""
    from coremltools.proto import MIL_pb2

    kind = value_type.WhichOneof("type")
    if kind == "stateType":
        value_type = value_type.stateType.wrappedType
        kind = value_type.WhichOneof("type")
    if kind != "tensorType":
        return kind or "?", 0, []
    tt = value_type.tensorType
    name, bits = _DTYPE.get(MIL_pb2.DataType.Name(tt.dataType), ("?", 0))
    dims = [d.constant.size if d.WhichOneof("dimension") == "constant" else None
            for d in tt.dimensions]
    return name, bits, dims


def _numel(dims) -> int:
    return math.prod(d or 0 for d in dims)


def _walk(block):
    for op in block.operations:
        yield op
        for b in op.blocks:
            yield from _walk(b)


class _Params:
    """Constant parameter values of a constexpr op: (name -> (dtype, bits, dims, blob key))."""

    def __init__(self, op):
        self.values: dict[str, tuple] = {}
        self.refs: dict[str, str] = {}
        for k, v in op.attributes.items():
            if k != "name":
                self.values[k] = self._value(v)
        for k, arg in op.inputs.items():
            for b in arg.arguments:
                if b.WhichOneof("binding") == "value":
                    self.values[k] = self._value(b.value)
                else:
                    self.refs[k] = b.name

    @staticmethod
    def _value(v):
        dt, bits, dims = _tensor_info(v.type)
        key = None
        if v.WhichOneof("value") == "blobFileValue":
            key = (v.blobFileValue.fileName, v.blobFileValue.offset)
        return dt, bits, dims, key


# ---------------------------------------------------------------- main entry


def inspect_package(path: str | Path) -> PackageReport:
    """Summarise an ML program package (see module docstring)."""
    import coremltools as ct

    path = Path(path)
    spec = ct.utils.load_spec(str(path))
    if spec.WhichOneof("Type") != "mlProgram":
        return _legacy_report(path, spec)
    funcs = function_names(spec)
    inputs, outputs, states = io_specs(spec, None)

    ops = []
    for fname in funcs:
        f = spec.mlProgram.functions[fname]
        ops += list(_walk(f.block_specializations[f.opset]))
    producer = {o.name: op for op in ops for o in op.outputs}
    consumers: dict[str, set[str]] = {}
    for op in ops:
        for arg in op.inputs.values():
            for b in arg.arguments:
                if b.WhichOneof("binding") == "name":
                    consumers.setdefault(b.name, set()).add(op.type)

    op_counts: Counter[tuple[str, str]] = Counter()
    for op in ops:
        if op.type != "const":
            op_counts[(op.type, _tensor_info(op.outputs[0].type)[0] if op.outputs else "-")] += 1

    weights: dict[str, WeightGroup] = {}
    seen: set = set()
    warnings: list[str] = []
    for op in ops:
        if op.type == "const":
            _add_dense(op, consumers, weights, seen)
        elif op.type.startswith("constexpr_"):
            out_names = [o.name for o in op.outputs]
            users = set().union(*(consumers.get(n, set()) for n in out_names))
            if users and all(u.startswith("constexpr_") for u in users):
                continue  # an inner link of a compression chain; counted at its root
            kind, nbytes, warn = _describe_chain(op, producer, seen)
            _, _, dims = _tensor_info(op.outputs[-1].type)
            g = weights.setdefault(kind, WeightGroup(kind))
            g.tensors += 1
            g.params += _numel(dims)
            g.bytes += nbytes
            if warn and warn not in warnings:
                warnings.append(warn)

    warnings[:0] = _ane_warnings(ops, inputs, outputs, spec, op_counts)
    return PackageReport(
        path=str(path),
        spec_version=spec.specificationVersion,
        deployment_target=_TARGETS.get(spec.specificationVersion, f"spec {spec.specificationVersion}"),
        functions=funcs,
        inputs=inputs,
        outputs=outputs,
        states=states,
        metadata=_metadata(spec),
        ops=[OpCount(t, d, n) for (t, d), n in sorted(op_counts.items(),
                                                      key=lambda kv: (-kv[1], kv[0]))],
        weights=weights,
        warnings=warnings,
    )


def _metadata(spec) -> dict[str, str]:
    md = spec.description.metadata
    out = {k: v for k, v in (("author", md.author), ("description", md.shortDescription),
                             ("version", md.versionString), ("license", md.license)) if v}
    out.update(dict(md.userDefined))
    return out


def _legacy_report(path: Path, spec) -> PackageReport:
    """Older model types (e.g. a NeuralNetwork ``.mlmodel``): I/O, metadata, layer counts."""
    kind = spec.WhichOneof("Type")
    inputs, outputs, states = io_specs(spec, None)
    layers: Counter[str] = Counter()
    nn = getattr(spec, kind, None)
    for layer in getattr(nn, "layers", []):
        layers[layer.WhichOneof("layer")] += 1
    return PackageReport(
        path=str(path),
        spec_version=spec.specificationVersion,
        deployment_target=_TARGETS.get(spec.specificationVersion, f"spec {spec.specificationVersion}"),
        functions=[],
        inputs=inputs,
        outputs=outputs,
        states=states,
        metadata=_metadata(spec),
        ops=[OpCount(t, "-", n) for t, n in layers.most_common()],
        weights={},
        warnings=[
            (
                f"not an ML program (model type {kind!r}): weights and Neural Engine checks "
                "are only done for ML programs"
            )
        ],
    )


def _add_dense(op, consumers, weights, seen) -> None:
    v = op.attributes.get("val")
    if v is None:
        return
    dt, bits, dims = _tensor_info(v.type)
    if dt not in ("fp16", "fp32") or not dims:
        return  # parameters (axes, shapes, scalars) are not weights
    users = consumers.get(op.outputs[0].name, set())
    if users and all(u.startswith("constexpr_") for u in users):
        return  # stored as part of a compressed weight
    key = None
    if v.WhichOneof("value") == "blobFileValue":
        key = (v.blobFileValue.fileName, v.blobFileValue.offset)
        if key in seen:
            return
        seen.add(key)
    kind = f"dense {dt}"
    g = weights.setdefault(kind, WeightGroup(kind))
    g.tensors += 1
    g.params += _numel(dims)
    g.bytes += _numel(dims) * bits // 8


def _describe_chain(op, producer, seen) -> tuple[str, int, str | None]:
    """Kind label, stored bytes and an optional ANE warning for a compressed weight."""
    p = _Params(op)
    nbytes = 0
    for dt, bits, dims, key in p.values.values():
        if key is not None:
            if key in seen:
                continue
            seen.add(key)
        nbytes += math.ceil(_numel(dims) * bits / 8)
    inner: dict[str, str] = {}
    warn = None
    for name, ref in p.refs.items():
        src = producer.get(ref)
        if src is not None and src.type.startswith("constexpr_"):
            kind, b, w = _describe_chain(src, producer, seen)
            inner[name] = kind
            nbytes += b
            warn = warn or w

    t = op.type
    if t == "constexpr_affine_dequantize":
        q = p.values["quantized_data"][0]
        label = f"affine {q}"
    elif t == "constexpr_blockwise_shift_scale":
        data_dims = p.values["data"][2] if "data" in p.values else _ref_dims(p.refs["data"], producer)
        scale_dims = p.values["scale"][2]
        blocks = [d // s if s else 1 for d, s in zip(data_dims, scale_dims)]
        src = p.values["data"][0] if "data" in p.values else None
        if "data" in inner:
            label = f"{inner['data']}+scale"
        elif src in ("fp16", "fp32"):  # a float palette with per-channel scales
            label = f"{src} scaled"
        elif any(s > 1 for s in scale_dims[1:]):
            label = f"blockwise {src} (block {max(b for b in blocks[1:] if b)})"
            warn = ("per-block dequantisation (constexpr_blockwise_shift_scale with blocks "
                    "along the input axis) may fall back to CPU instead of the Neural Engine")
        else:
            label = f"affine {src}"
    elif t == "constexpr_lut_to_dense":
        if "lut" in p.values:
            lut_dims = p.values["lut"][2]
        else:
            lut_dims = _ref_dims(p.refs["lut"], producer)
        if "shape" in p.values:  # iOS16: flat palette
            label = f"lut {int(math.log2(max(_numel(lut_dims), 1)))}-bit"
        else:
            label = f"lut {int(math.log2(max(lut_dims[-2], 1)))}-bit"
            if any(d > 1 for d in lut_dims[:-2]):
                label += " grouped"
            if lut_dims[-1] > 1:
                label += f" vector{lut_dims[-1]}"
        if "lut" in inner:
            label += f" ({inner['lut']} palette)"
    elif t == "constexpr_sparse_to_dense":
        label = "sparse" + (f"+{inner['nonzero_data']}" if "nonzero_data" in inner else "")
    elif t == "constexpr_lut_to_sparse":
        lut_dims = p.values["lut"][2]
        label = f"lut {int(math.log2(max(lut_dims[-2], 1)))}-bit"
    elif t == "constexpr_sparse_blockwise_shift_scale":
        label = f"affine {p.values['nonzero_data'][0]}"
    elif t == "constexpr_cast":
        label = "fp16 cast to fp32"
    else:
        label = t
    return label, nbytes, warn


def _ref_dims(name: str, producer) -> list:
    src = producer.get(name)
    if src is None:
        return []
    for o in src.outputs:
        if o.name == name:
            return _tensor_info(o.type)[2]
    return []


def _ane_warnings(ops, inputs, outputs, spec, op_counts) -> list[str]:
    warns = []
    n_lstm = sum(n for (t, _), n in op_counts.items() if t == "lstm")
    if n_lstm:
        warns.append(f"{n_lstm} lstm op(s): the Neural Engine has no LSTM kernel, so this "
                     "part runs on CPU/GPU")
    big = []
    for kind, feats in (("input", spec.description.input), ("output", spec.description.output)):
        for f in feats:
            arr = f.type.multiArrayType
            dims = list(arr.shape)
            if arr.WhichOneof("ShapeFlexibility") == "shapeRange":
                dims += [r.upperBound for r in arr.shapeRange.sizeRanges if r.upperBound > 0]
            if any(d > ANE_MAX_DIM for d in dims):
                big.append(f"{kind} {f.name!r} {max(dims)}")
    for op in ops:
        for o in op.outputs:
            _, _, dims = _tensor_info(o.type)
            if any(d and d > ANE_MAX_DIM for d in dims) and op.type != "const":
                big.append(f"{op.type} {o.name!r} {max(d for d in dims if d)}")
    if big:
        shown = "; ".join(big[:5]) + (f"; ... ({len(big)} in all)" if len(big) > 5 else "")
        warns.append(f"tensor dimension above {ANE_MAX_DIM} (does not compile for the Neural "
                     f"Engine on iPhone): {shown}")
    return warns


# ---------------------------------------------------------------- text


def _human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in rows]
    return ["  " + x.rstrip() for x in out]


def format_report(report: PackageReport) -> str:
    """Readable plain-text summary of :func:`inspect_package`'s result."""
    lines = [f"Package: {report.path}",
             f"Spec version {report.spec_version} (minimum deployment {report.deployment_target})"]
    if len(report.functions) > 1:
        lines.append(f"Functions: {', '.join(report.functions)}")
    for k, v in report.metadata.items():
        lines.append(f"{k}: {v}")
    for title, specs in (("Inputs", report.inputs), ("Outputs", report.outputs),
                         ("States", report.states)):
        if specs:
            lines += ["", f"{title}:"]
            lines += _table(["name", "dtype", "shape"],
                            [[s.name, s.dtype, "[" + ", ".join(map(str, s.shape)) + "]"]
                             for s in specs])
    lines += ["", "Weights:"]
    rows = [[g.kind, str(g.tensors), f"{g.params:,}", _human(g.bytes)]
            for g in sorted(report.weights.values(), key=lambda g: -g.bytes)]
    rows.append(["total", str(sum(g.tensors for g in report.weights.values())),
                 f"{sum(g.params for g in report.weights.values()):,}", _human(report.weight_bytes)])
    lines += _table(["kind", "tensors", "params", "stored"], rows)
    lines += ["", "Ops:"]
    lines += _table(["op", "dtype", "count"], [[o.op, o.dtype, str(o.count)] for o in report.ops])
    lines += ["", "Warnings:" if report.warnings else "Warnings: none"]
    lines += [f"  - {w}" for w in report.warnings]
    return "\n".join(lines) + "\n"
