"""Load a saved ``.mlpackage`` back into a coremltools MIL ``Program`` (no macOS needed)."""

from __future__ import annotations

from pathlib import Path


def load_package(path: str | Path):
    """Return ``(program, model_spec)`` for an ML program package on disk.

    The weights come from the package's own ``weight.bin``, so the program is exactly what
    was written, not the converter's in-memory copy.
    """
    import coremltools as ct
    from coremltools.converters.mil.frontend.milproto.load import load

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(path)
    model = ct.models.MLModel(str(path), skip_model_load=True)
    spec = model.get_spec()
    if spec.WhichOneof("Type") != "mlProgram":
        raise ValueError(f"{path} is not an ML program (type {spec.WhichOneof('Type')!r})")
    program = load(
        model_spec=spec,
        specification_version=spec.specificationVersion,
        file_weights_dir=model.weights_dir,
    )
    return program, spec
