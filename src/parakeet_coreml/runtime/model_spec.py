"""Read input/output/state descriptions from a Core ML model spec (protobuf).

Shared by the native Core ML runtime, the MIL runtime (for the declared output names and
order) and package inspection; needs only the spec, which loads on any OS.
"""

from __future__ import annotations

from .base import TensorSpec

_ARRAY_DTYPE = {
    "FLOAT32": "float32",
    "FLOAT16": "float16",
    "DOUBLE": "float64",
    "INT32": "int32",
    "INT8": "int8",
}


def _array_spec(name: str, arr) -> TensorSpec:
    from coremltools.proto import FeatureTypes_pb2 as ft

    dtype = _ARRAY_DTYPE.get(ft.ArrayFeatureType.ArrayDataType.Name(arr.dataType), "float32")
    shape = [int(d) for d in arr.shape]
    flex = arr.WhichOneof("ShapeFlexibility")
    if flex == "shapeRange":
        ranges = arr.shapeRange.sizeRanges
        shape = [
            int(r.lowerBound) if r.lowerBound == r.upperBound else -1 for r in ranges
        ]
    elif flex == "enumeratedShapes" and arr.enumeratedShapes.shapes:
        shapes = [list(s.shape) for s in arr.enumeratedShapes.shapes]
        shape = [
            int(col[0]) if all(c == col[0] for c in col) else -1 for col in zip(*shapes)
        ]
    return TensorSpec(name, tuple(shape), dtype)


def feature_spec(feature) -> TensorSpec | None:
    """TensorSpec of a FeatureDescription (multiarray or state); None for other kinds."""
    kind = feature.type.WhichOneof("Type")
    if kind == "multiArrayType":
        return _array_spec(feature.name, feature.type.multiArrayType)
    if kind == "stateType":
        return _array_spec(feature.name, feature.type.stateType.arrayType)
    if kind == "doubleType":
        return TensorSpec(feature.name, (), "float64")
    if kind == "int64Type":
        return TensorSpec(feature.name, (), "int64")
    return None


def function_names(spec) -> list[str]:
    """Function names of a (possibly multifunction) ML program spec."""
    if spec.WhichOneof("Type") == "mlProgram":
        return list(spec.mlProgram.functions.keys())
    return ["main"]


def default_function(spec) -> str:
    return spec.description.defaultFunctionName or "main"


def _description(spec, function: str | None):
    desc = spec.description
    if desc.functions:
        name = function or default_function(spec)
        for f in desc.functions:
            if f.name == name:
                return f
        raise ValueError(f"function {name!r} not in model; has {[f.name for f in desc.functions]}")
    return desc


def io_specs(
    spec, function: str | None = None
) -> tuple[list[TensorSpec], list[TensorSpec], list[TensorSpec]]:
    """(inputs, outputs, states) declared by the model description, in declared order."""
    d = _description(spec, function)
    inputs, states = [], []
    for f in d.input:
        s = feature_spec(f)
        if s is None:
            continue
        (states if f.type.WhichOneof("Type") == "stateType" else inputs).append(s)
    states += [s for s in (feature_spec(f) for f in getattr(d, "state", [])) if s is not None]
    outputs = [s for s in (feature_spec(f) for f in d.output) if s is not None]
    return inputs, outputs, states
